//! Autopilot: a voter dead for longer than the grace period is replaced by a live
//! learner, so the cluster gets back to `--voters` voters.

use eventide_tests::{wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

fn voters_alive(status: &Value) -> Vec<String> {
    status["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| (n["raft"] == "voter" || n["raft"] == "leader") && n["alive"] == true)
                .filter_map(|n| n["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_dead_voter_is_replaced_by_a_learner_after_the_grace_period() {
    let options =
        Options { extra: vec!["--dead-voter-grace".into(), "2s".into()], ..Options::default() };
    let mut cluster = Cluster::start(4, options);
    let leader = cluster.wait_for_agreed_leader();
    // Three voters and one learner, all alive.
    let status = wait_until("3 voters and a learner", DEADLINE, || {
        let status = cluster.nodes[leader].status()?;
        let learners =
            status["nodes"].as_array()?.iter().filter(|n| n["raft"] == "learner").count();
        (voters_alive(&status).len() == 3 && learners == 1).then_some(status)
    });
    let victim_id = voters_alive(&status)
        .into_iter()
        .find(|id| status["leader"]["id"] != id.as_str())
        .expect("a voter that is not the leader");
    let victim = cluster.index_of(&victim_id).expect("victim runs");

    cluster.kill(victim);
    let status = wait_until("autopilot to replace the dead voter", DEADLINE, || {
        let status = cluster.nodes[leader].status()?;
        let voters = voters_alive(&status);
        (status["voters"] == 3 && voters.len() == 3 && !voters.contains(&victim_id))
            .then_some(status)
    });
    assert!(status["nodes"].as_array().expect("nodes").iter().all(|n| n["raft"] != "learner"));
}
