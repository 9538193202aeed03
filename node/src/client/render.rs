//! Tables for people, fitting an 80-column terminal.

use std::fmt::Write;

use crate::api::repos::RepoDoc;
use crate::api::status::StatusDoc;

/// Cuts `text` to `width` characters, marking the cut with `…`.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

pub fn status(doc: &StatusDoc) -> String {
    let mut out = String::new();
    match &doc.leader {
        Some(leader) => {
            let _ = writeln!(out, "leader:  {} ({}), term {}", leader.name, leader.addr, doc.term);
        }
        None => {
            let why = doc.waiting.clone().unwrap_or_else(|| {
                format!("no quorum or an election is running ({} voters)", doc.voters)
            });
            let _ = writeln!(out, "leader:  none: {why}");
        }
    }
    let alive = doc.nodes.iter().filter(|n| n.alive).count();
    let _ = writeln!(
        out,
        "nodes:   {} ({} alive), {} voters, auth: {}",
        doc.nodes.len(),
        alive,
        doc.voters,
        doc.auth
    );
    let _ = writeln!(
        out,
        "queue:   {} queued, {} running, {} finished",
        doc.queue.queued, doc.queue.running, doc.queue.finished
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:<21} {:<5} {:<7} {:>5}",
        "NAME", "ID", "ADDRESS", "STATE", "RAFT", "SLOTS"
    );
    for node in &doc.nodes {
        let marker = if node.id == doc.node.id { "*" } else { "" };
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:<21} {:<5} {:<7} {:>5}",
            fit(&format!("{}{}", node.name, marker), 16),
            fit(&node.id, 20),
            fit(&node.addr, 21),
            if node.alive { "alive" } else { "dead" },
            node.raft,
            format!("{}/{}", node.busy, node.slots),
        );
    }
    out
}

pub fn repos(repos: &[RepoDoc]) -> String {
    if repos.is_empty() {
        return "no repositories are watched; add one with `eventide-node repo add PATH`\n"
            .to_owned();
    }
    let mut out = format!("{:<4} {}\n", "ID", "URL");
    for repo in repos {
        let _ = writeln!(out, "{:<4} {}", repo.id, fit(&repo.url, 75));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::status::{NodeRef, NodeStatus, QueueStatus};

    fn doc(leader: bool) -> StatusDoc {
        let node = |n: u32| NodeStatus {
            id: format!("1844674407370955161{n}"),
            name: format!("a-rather-long-node-name-{n}"),
            addr: format!("127.0.0.1:780{n}"),
            alive: n != 3,
            raft: if n == 1 { "leader".into() } else { "voter".into() },
            slots: 2,
            busy: 1,
            labels: vec![],
            version: "0.1.0".into(),
        };
        let me = NodeRef { id: node(1).id, name: node(1).name, addr: node(1).addr };
        StatusDoc {
            node: me.clone(),
            leader: leader.then_some(me),
            term: 4,
            auth: "off".into(),
            waiting: None,
            voters: 3,
            applied_index: 10,
            nodes: vec![node(1), node(2), node(3)],
            queue: QueueStatus { queued: 1, running: 2, finished: 3 },
        }
    }

    #[test]
    fn the_status_table_fits_80_columns() {
        for text in [status(&doc(true)), status(&doc(false))] {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line:?}");
            }
        }
    }

    #[test]
    fn the_status_says_when_there_is_no_leader() {
        let text = status(&doc(false));
        assert!(text.starts_with("leader:  none: no quorum"), "{text}");
        assert!(text.contains("dead"));
        let text = status(&doc(true));
        assert!(text.contains("term 4"));
    }
}
