//! Tables for people, fitting an 80-column terminal.

use std::collections::BTreeMap;
use std::fmt::Write;

use eventide_api::{
    BuildDoc, Forge, JobDoc, NodeRole, NodeStatus, RepoDoc, RepoSettingsDoc, RunnerState, StatusDoc,
};

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
    let count = |role: NodeRole| doc.nodes.iter().filter(|n| role_of(n) == role).count();
    let _ = writeln!(
        out,
        "nodes:   {} ({} alive): {} voters, {} standby, {} clients; auth: {}",
        doc.nodes.len(),
        alive,
        doc.voters,
        count(NodeRole::Standby),
        count(NodeRole::Client),
        doc.auth
    );
    if let Some(server) = doc.served_by.as_ref().filter(|s| s.id != doc.node.id) {
        let line =
            format!("served:  by {} ({}); {} is a client", server.name, server.addr, doc.node.name);
        let _ = writeln!(out, "{}", fit(&line, 80));
    }
    let _ = writeln!(
        out,
        "queue:   {} queued, {} running, {} finished",
        doc.queue.queued, doc.queue.running, doc.queue.finished
    );
    if let Some(line) = sandbox_line(&doc.nodes) {
        let _ = writeln!(out, "{}", fit(&line, 80));
    }
    let failing: Vec<_> = doc.repos.iter().filter(|r| r.error.is_some()).collect();
    let _ = writeln!(out, "repos:   {} watched, {} failing", doc.repos.len(), failing.len());
    for repo in failing {
        let line = format!("  {}: {}", repo.url, repo.error.as_deref().unwrap_or_default());
        let _ = writeln!(out, "{}", fit(&line, 80));
    }
    for repo in doc.repos.iter().filter(|r| r.forge_error.is_some()) {
        let refused = repo.forge_error.as_deref().unwrap_or_default();
        let line = format!("  {}: forge refused a status: {refused}", repo.url);
        let _ = writeln!(out, "{}", fit(&line, 80));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<20} {:<21} {:<5} {:<7} {:>5}",
        "NAME", "ID", "ADDRESS", "STATE", "ROLE", "SLOTS"
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
            role_of(node),
            format!("{}/{}", node.busy, node.slots),
        );
    }
    for node in doc.nodes.iter().filter(|n| matches!(n.runner, RunnerState::Paused { .. })) {
        let _ = writeln!(out, "{}", fit(&format!("runner on {}: {}", node.name, node.runner), 80));
    }
    for node in doc.nodes.iter().filter(|n| n.slots > 0 && n.sandbox.as_deref() == Some("none")) {
        let line = format!("no sandbox on {}: its jobs see the node's files", node.name);
        let _ = writeln!(out, "{}", fit(&line, 80));
    }
    out
}

/// A node's role; answers of versions before servers and clients only have `raft`.
fn role_of(node: &NodeStatus) -> NodeRole {
    node.role.unwrap_or_else(|| node.raft.into())
}

/// `sandbox: bwrap on 2 runners, none on 1; limits: cgroup v2` for the runners that said.
fn sandbox_line(nodes: &[NodeStatus]) -> Option<String> {
    let mut sandboxes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut limits: BTreeMap<&str, usize> = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.slots > 0) {
        // A runner without a sandbox says nothing of one.
        *sandboxes.entry(node.sandbox.as_deref().unwrap_or("none")).or_default() += 1;
        if let Some(limit) = node.limits.as_deref() {
            *limits.entry(limit).or_default() += 1;
        }
    }
    if sandboxes.keys().all(|name| *name == "none") {
        return None;
    }
    let count = |map: &BTreeMap<&str, usize>| {
        map.iter()
            .map(|(name, n)| format!("{name} on {n} runner{}", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!("sandbox: {}; limits: {}", count(&sandboxes), count(&limits)))
}

/// The repositories table: id, forge, last fetch (as an age at `now`, in ms since the
/// epoch), url; then a line per problem under its repository.
pub fn repos(repos: &[RepoDoc], now: u64) -> String {
    if repos.is_empty() {
        return "no repositories are watched; add one with `eventide-node repo add PATH`\n"
            .to_owned();
    }
    let mut out = format!("{:<4} {:<7} {:<11} {}\n", "ID", "FORGE", "LAST FETCH", "URL");
    for repo in repos {
        let forge = repo.settings.forge.map_or("-", forge_name);
        let fetched = repo.last_fetch_at.map_or_else(
            || "-".to_owned(),
            |at| format!("{} ago", duration(now.saturating_sub(at))),
        );
        let _ = writeln!(out, "{:<4} {:<7} {:<11} {}", repo.id, forge, fetched, fit(&repo.url, 60));
        if let Some(error) = &repo.error {
            let _ = writeln!(out, "     error: {}", fit(error, 110));
        }
        if let Some(error) = &repo.forge_error {
            let _ = writeln!(out, "     forge refused a status: {}", fit(error, 95));
        }
        if repo.statuses_waiting > 0 {
            let _ =
                writeln!(out, "     {} status(es) waiting for the forge", repo.statuses_waiting);
        }
    }
    out
}

fn forge_name(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "github",
        Forge::Gitlab => "gitlab",
        Forge::Gitea => "gitea",
    }
}

/// A repository's settings, one per line, as `repo set` prints them.
pub fn repo_settings(settings: &RepoSettingsDoc) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            let _ = writeln!(out, "  {name:<15} {value}");
        }
    };
    line("forge", settings.forge.map(|forge| forge_name(forge).to_owned()));
    line("api url", settings.api_url.clone());
    line("token", settings.token.clone().map(|name| format!("secret {name}")));
    line("ssh key", settings.ssh_key.clone().map(|name| format!("secret {name}")));
    line("known hosts", settings.known_hosts.clone().map(|name| format!("secret {name}")));
    line("webhook secret", settings.webhook_secret.clone().map(|name| format!("secret {name}")));
    line("ca file", settings.ca_file.clone());
    line("branches", Some(settings.branches.join(",")).filter(|text| !text.is_empty()));
    line("poll interval", settings.poll_interval_ms.map(duration));
    line("status context", settings.status_context.clone());
    out
}

/// A duration for people: 850ms, 12.3s, 4m05s.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

pub fn jobs_header() -> String {
    format!(
        "{:<6} {:<9} {:<16} {:<8} {:>8} {:<12} {:>3} {:>9}",
        "ID", "STATE", "BRANCH", "COMMIT", "DURATION", "RUNNER", "TRY", "TESTS"
    )
}

pub fn job_row(job: &JobDoc, names: &BTreeMap<String, String>) -> String {
    let runner = job.runner.as_ref().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()));
    let tests = job.summary.as_ref().map_or_else(String::new, |s| {
        if s.failed > 0 {
            format!("{} failed", s.failed)
        } else {
            format!("{} ok", s.passed)
        }
    });
    format!(
        "{:<6} {:<9} {:<16} {:<8} {:>8} {:<12} {:>3} {:>9}",
        job.id,
        fit(job.state.as_str(), 9),
        fit(&job.branch, 16),
        &job.commit[..job.commit.len().min(8)],
        job.duration_ms.map(duration).unwrap_or_default(),
        fit(&runner.unwrap_or_default(), 12),
        job.attempt,
        fit(&tests, 9),
    )
}

pub fn jobs(jobs: &[JobDoc], names: &BTreeMap<String, String>) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let mut out = jobs_header();
    out.push('\n');
    for job in jobs {
        out.push_str(&job_row(job, names));
        out.push('\n');
    }
    out
}

/// Builds, newest first: a line per build (state, branch, commit, subject, author,
/// trigger, duration), then a line per job in plan order.
pub fn builds(builds: &[BuildDoc], names: &BTreeMap<String, String>) -> String {
    if builds.is_empty() {
        return "no builds\n".to_owned();
    }
    let mut out = String::new();
    for build in builds {
        let trigger = match &build.by {
            Some(by) => format!("{} ({by})", build.trigger),
            None => build.trigger.to_string(),
        };
        let _ = writeln!(
            out,
            "build {:<5} {:<9} {:<16} {:<8} {:>8}  {}",
            build.id,
            build.state.as_str(),
            fit(&build.branch, 16),
            &build.commit[..build.commit.len().min(8)],
            build.duration_ms.map(duration).unwrap_or_default(),
            fit(&build.subject, 28),
        );
        let _ = writeln!(out, "      {} · {}", fit(&build.author, 40), fit(&trigger, 30));
        if let Some(reason) = &build.cancelled {
            let _ = writeln!(out, "      cancelled: {}", fit(reason, 60));
        }
        for job in &build.jobs {
            let runner =
                job.runner.as_ref().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()));
            let mut line = format!(
                "  {:<6} {:<9} {:<28} {:<12} {:>8}",
                job.id,
                job.state.as_str(),
                fit(&job.name, 28),
                fit(&runner.unwrap_or_default(), 12),
                job.duration_ms.map(duration).unwrap_or_default(),
            );
            if !job.artifacts.is_empty() {
                let count = job.artifacts.len();
                let _ = write!(line, "  {count} artifact{}", if count == 1 { "" } else { "s" });
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if let (Some(message), true) = (&job.message, job.state.is_final()) {
                let _ = writeln!(out, "         {}", fit(message, 70));
            }
        }
    }
    out
}

/// One line saying how a job ended, for `log` and `rerun --wait`.
pub fn job_summary_line(job: &JobDoc) -> String {
    let mut line = format!(
        "job {} {} ({} on {})",
        job.id,
        job.state,
        &job.commit[..job.commit.len().min(8)],
        job.branch
    );
    if let Some(code) = job.exit_code {
        line.push_str(&format!(", exit code {code}"));
    }
    if let Some(ms) = job.duration_ms {
        line.push_str(&format!(", {}", duration(ms)));
    }
    if let Some(summary) = &job.summary {
        line.push_str(&format!(
            ", tests: {} passed, {} failed, {} skipped",
            summary.passed, summary.failed, summary.skipped
        ));
        for name in summary.failing.iter().take(5) {
            line.push_str(&format!("\n  failing: {name}"));
        }
    }
    if let Some(message) = &job.message {
        line.push_str(&format!("\n  {message}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use eventide_api::{
        Auth, JobState, NodeRef, QueueStatus, RaftRole, RepoStatus, SummaryDoc, Trigger,
    };

    use super::*;

    fn doc(leader: bool) -> StatusDoc {
        let node = |n: u32| NodeStatus {
            id: format!("1844674407370955161{n}"),
            name: format!("a-rather-long-node-name-{n}"),
            addr: format!("127.0.0.1:780{n}"),
            alive: n != 3,
            raft: if n == 1 { RaftRole::Leader } else { RaftRole::Voter },
            role: None,
            slots: 2,
            busy: 1,
            labels: vec![],
            version: "0.1.0".into(),
            runner: if n == 2 {
                RunnerState::Paused { reason: "disk: 120 MiB free < 1 GiB".into() }
            } else {
                RunnerState::Ok
            },
            sandbox: Some(if n == 3 { "none" } else { "bwrap" }.into()),
            limits: Some("cgroup v2".into()),
        };
        let me = NodeRef { id: node(1).id, name: node(1).name, addr: node(1).addr };
        StatusDoc {
            served_by: None,
            node: me.clone(),
            leader: leader.then_some(me),
            term: 4,
            auth: Auth::Off,
            waiting: None,
            voters: 3,
            applied_index: 10,
            nodes: vec![node(1), node(2), node(3)],
            queue: QueueStatus { queued: 1, running: 2, finished: 3 },
            repos: vec![RepoStatus {
                id: "1".into(),
                url: "/srv/a/very/long/path/to/a/repository/that/does/not/exist/anymore/at/all"
                    .into(),
                error: Some("failed to fetch: could not find repository at that path".into()),
                forge: None,
                forge_error: None,
            }],
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
    fn the_jobs_table_fits_80_columns() {
        let job = JobDoc {
            id: 123456,
            repo: "/srv/a-repository-with-a-long-name".into(),
            repo_id: "1".into(),
            branch: "feature/a-very-long-branch-name".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            trigger: Trigger::Push,
            labels: vec![],
            state: JobState::TimedOut,
            attempt: 3,
            runner: Some("18446744073709551615".into()),
            exit_code: None,
            duration_ms: Some(3_599_999),
            created_at: 0,
            started_at: None,
            finished_at: Some(1),
            message: None,
            summary: Some(SummaryDoc { passed: 1000, failed: 12345, skipped: 0, failing: vec![] }),
            build: Some(99999),
            name: Some("test (python=3.12, os=debian-bookworm)".into()),
        };
        let text = jobs(&[job], &BTreeMap::new());
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}");
        }
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_340), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
    }

    #[test]
    fn the_status_says_when_there_is_no_leader() {
        let text = status(&doc(false));
        assert!(text.starts_with("leader:  none: no quorum"), "{text}");
        assert!(text.contains("dead"));
        let text = status(&doc(true));
        assert!(text.contains("term 4"));
        assert!(text.contains("auth: off"));
        assert!(text.contains(" voter "), "roles are padded to their column: {text}");
        let paused = "runner on a-rather-long-node-name-2: paused (disk: 120 MiB free < 1 GiB)";
        assert!(text.contains(paused), "{text}");
        assert_eq!(text.matches("runner on").count(), 1, "only paused runners: {text}");
        assert!(
            text.contains("sandbox: bwrap on 2 runners, none on 1 runner; limits: cgroup v2 on 3"),
            "{text}"
        );
        assert!(text.contains("no sandbox on a-rather-long-node-name-3: its jobs see"), "{text}");
    }
}
