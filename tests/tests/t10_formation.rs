//! Identical nodes form one cluster; every node agrees on the leader and lists every
//! node alive; a node started later joins as a learner and its replica catches up.

use eventide_api::{RaftRole, StatusDoc};
use eventide_tests::{http, wait_until, Cluster, Options, DEADLINE};

/// Waits until every running node reports `count` nodes, all alive, and the same leader.
fn wait_for_full_view(cluster: &Cluster, count: usize) -> Vec<StatusDoc> {
    wait_until("every node to see the whole cluster alive", DEADLINE, || {
        let statuses: Vec<StatusDoc> = cluster.status_docs().into_iter().map(|(_, s)| s).collect();
        let running = cluster.running().count();
        let complete = statuses.len() == running
            && statuses.iter().all(|s| {
                s.nodes.len() == count
                    && s.nodes.iter().all(|n| n.alive)
                    && s.leader.is_some()
                    && s.leader.as_ref().map(|l| &l.id)
                        == statuses[0].leader.as_ref().map(|l| &l.id)
            });
        complete.then_some(statuses)
    })
}

fn formation(count: usize) {
    let cluster = Cluster::start(count, Options { bootstrap_expect: count, ..Options::default() });
    let statuses = wait_for_full_view(&cluster, count);
    for status in &statuses {
        assert_eq!(status.voters, count.min(7), "{status:?}");
        let leaders = status.nodes.iter().filter(|n| n.raft == RaftRole::Leader).count();
        assert_eq!(leaders, 1, "exactly one leader in {status:?}");
        assert!(status.term >= 1);
    }
    // Every node id is distinct.
    let ids: std::collections::BTreeSet<String> =
        statuses.iter().map(|s| s.node.id.clone()).collect();
    assert_eq!(ids.len(), count);
}

#[test]
fn three_identical_nodes_form_one_cluster() {
    formation(3);
}

#[test]
fn five_identical_nodes_form_one_cluster() {
    formation(5);
}

#[test]
fn a_node_started_later_joins_as_a_learner_and_catches_up() {
    let mut cluster = Cluster::start(3, Options::default());
    let leader = cluster.wait_for_agreed_leader();
    let repo = tempfile::tempdir().expect("temp dir");
    let body = format!("{{\"url\": \"{}\"}}", repo.path().display());
    let (code, answer) =
        http::post(cluster.nodes[leader].addr, "/api/v1/repos", &body).expect("post");
    assert_eq!(code, 201, "{answer}");

    let late = cluster.add();
    let status =
        wait_until("the late node to be a learner with the leader's state", DEADLINE, || {
            let status = cluster.nodes[late].status_doc()?;
            let role = status.nodes.iter().find(|n| n.id == status.node.id)?.raft;
            (role == RaftRole::Learner && status.applied_index >= 2).then_some(status)
        });
    assert!(status.leader.is_some());
    // The replica serves the data written before it joined.
    let (code, repos) = http::get(cluster.nodes[late].addr, "/api/v1/repos").expect("get");
    assert_eq!(code, 200);
    assert!(repos.contains(&repo.path().display().to_string()), "{repos}");
    // Everyone sees 4 nodes, 3 of them voters.
    wait_for_full_view(&cluster, 4);
}
