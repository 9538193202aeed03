//! Kill -9 the leader: another node leads; the old one, restarted with its data dir,
//! comes back as a follower with the same id. SIGTERM stops a node cleanly.

use eventide_api::RaftRole;
use eventide_tests::{wait_until, Cluster, Options, DEADLINE};

#[test]
fn a_killed_leader_is_replaced_and_rejoins_as_a_follower() {
    let mut cluster = Cluster::start(3, Options::default());
    let leader = cluster.wait_for_agreed_leader();
    let old_id = cluster.nodes[leader].id().expect("leader answers");

    cluster.kill(leader);
    let new_leader = cluster.wait_for_agreed_leader();
    let new_id = cluster.nodes[new_leader].id().expect("new leader answers");
    assert_ne!(new_id, old_id);
    // The survivors see the old leader dead.
    wait_until("survivors to report the old leader dead", DEADLINE, || {
        cluster
            .status_docs()
            .iter()
            .all(|(_, s)| s.nodes.iter().any(|n| n.id == old_id && !n.alive))
            .then_some(())
    });

    cluster.restart(leader);
    wait_until("the old leader to rejoin as a follower with its id", DEADLINE, || {
        let status = cluster.nodes[leader].status_doc()?;
        let me = status.node.id;
        let role = status.nodes.iter().find(|n| n.id == me)?.raft;
        let follows = status.leader.is_some_and(|l| l.id != me);
        (me == old_id && role == RaftRole::Voter && follows).then_some(())
    });
    let agreed = cluster.wait_for_agreed_leader();
    assert_ne!(cluster.nodes[agreed].id().as_deref(), Some(old_id.as_str()));
}

#[test]
fn sigterm_stops_a_node_cleanly_and_the_rest_carry_on() {
    let mut cluster = Cluster::start(3, Options::default());
    let leader = cluster.wait_for_agreed_leader();
    let status = cluster.stop(leader);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert!(cluster.nodes[leader].log_text().contains("stopped"));
    cluster.wait_for_agreed_leader();
}
