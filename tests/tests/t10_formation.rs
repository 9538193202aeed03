//! Identical nodes form one cluster; every node agrees on the leader and lists every
//! node alive; a node started later joins as a learner and its replica catches up.

use eventide_tests::{http, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

/// Waits until every running node reports `count` nodes, all alive, and the same leader.
fn wait_for_full_view(cluster: &Cluster, count: usize) -> Vec<Value> {
    wait_until("every node to see the whole cluster alive", DEADLINE, || {
        let statuses: Vec<Value> = cluster.statuses().into_iter().map(|(_, s)| s).collect();
        let running = cluster.running().count();
        let complete = statuses.len() == running
            && statuses.iter().all(|s| {
                let nodes = s["nodes"].as_array().map_or(&[][..], Vec::as_slice);
                nodes.len() == count
                    && nodes.iter().all(|n| n["alive"] == Value::Bool(true))
                    && s["leader"]["id"].is_string()
                    && s["leader"]["id"] == statuses[0]["leader"]["id"]
            });
        complete.then_some(statuses)
    })
}

fn formation(count: usize) {
    let cluster = Cluster::start(count, Options { bootstrap_expect: count, ..Options::default() });
    let statuses = wait_for_full_view(&cluster, count);
    for status in &statuses {
        assert_eq!(status["voters"].as_u64(), Some(count.min(7) as u64), "{status}");
        let leaders = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["raft"] == "leader")
            .count();
        assert_eq!(leaders, 1, "exactly one leader in {status}");
        assert!(status["term"].as_u64().is_some_and(|t| t >= 1));
    }
    // Every node id is distinct.
    let ids: std::collections::BTreeSet<String> = statuses
        .iter()
        .map(|s| s["node"]["id"].as_str().expect("id is a string").to_owned())
        .collect();
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
            let status = cluster.nodes[late].status()?;
            let me = status["node"]["id"].clone();
            let role = status["nodes"].as_array()?.iter().find(|n| n["id"] == me)?["raft"].clone();
            (role == "learner" && status["applied_index"].as_u64()? >= 2).then_some(status)
        });
    assert!(status["leader"]["id"].is_string());
    // The replica serves the data written before it joined.
    let (code, repos) = http::get(cluster.nodes[late].addr, "/api/v1/repos").expect("get");
    assert_eq!(code, 200);
    assert!(repos.contains(&repo.path().display().to_string()), "{repos}");
    // Everyone sees 4 nodes, 3 of them voters.
    wait_for_full_view(&cluster, 4);
}
