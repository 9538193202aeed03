//! Cluster formation: when a node with no Raft state may call `initialize`, and with
//! which voters. Pure: gossip's view in, a decision out.

use std::collections::BTreeMap;

use eventide_consensus::{NodeId, NodeInfo};

use crate::gossip::{Member, RaftRole};

/// What a node without Raft state should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Keep waiting, for the reason given (shown by `status`).
    Wait(String),
    /// A cluster exists: this node is one of its clients until the leader's autopilot
    /// makes it a server (if it ever does); nothing to wait for.
    Client,
    /// Form the cluster with these voters (this node is the smallest id among them).
    Initialize(BTreeMap<NodeId, NodeInfo>),
}

/// The `--bootstrap-expect` rule: once gossip shows `expect` live nodes and none of them
/// belongs to a cluster yet, the node with the smallest id initializes with the
/// `expect` smallest ids as voters; every other node is a client of that cluster. Only
/// nodes eligible to be servers count (`--server-eligible false` opts a node out).
pub fn decide(me: NodeId, members: &[Member], expect: usize) -> Bootstrap {
    if members.iter().any(|m| m.alive && m.raft != RaftRole::None) {
        return Bootstrap::Client;
    }
    let live: Vec<&Member> = members.iter().filter(|m| m.alive && m.server_eligible).collect();
    if !live.iter().any(|m| m.id == me) {
        return Bootstrap::Wait(format!(
            "waiting for a cluster to form ({} eligible servers seen; this node is not eligible)",
            live.len()
        ));
    }
    if live.len() < expect {
        return Bootstrap::Wait(format!(
            "waiting for {expect} nodes to form a cluster ({} seen)",
            live.len()
        ));
    }
    let mut founders: Vec<&Member> = live;
    founders.sort_by_key(|m| m.id);
    founders.truncate(expect);
    if founders.first().map(|m| m.id) != Some(me) {
        return Bootstrap::Wait(format!("waiting for node {} to form the cluster", founders[0].id));
    }
    let voters = founders
        .into_iter()
        .map(|m| (m.id, NodeInfo::new(m.addr.to_string(), m.name.clone())))
        .collect();
    Bootstrap::Initialize(voters)
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;

    pub(crate) fn member(id: u64, alive: bool) -> Member {
        crate::gossip::member_for_test(id, alive)
    }

    #[test]
    fn waits_until_enough_nodes_are_alive() {
        let members = [member(1, true), member(2, true), member(3, false)];
        let decision = decide(NodeId(1), &members, 3);
        assert_eq!(
            decision,
            Bootstrap::Wait("waiting for 3 nodes to form a cluster (2 seen)".into())
        );
    }

    #[test]
    fn only_the_smallest_id_initializes_with_the_smallest_ids() {
        let members = [member(9, true), member(4, true), member(7, true), member(5, true)];
        let Bootstrap::Initialize(voters) = decide(NodeId(4), &members, 3) else {
            panic!("node 4 has the smallest id and must initialize");
        };
        assert_eq!(
            voters.keys().copied().collect::<Vec<_>>(),
            vec![NodeId(4), NodeId(5), NodeId(7)]
        );
        assert_eq!(voters[&NodeId(5)].addr, "127.0.0.1:7805");
        for other in [5, 7, 9] {
            assert!(matches!(decide(NodeId(other), &members, 3), Bootstrap::Wait(_)));
        }
    }

    #[test]
    fn never_forms_a_second_cluster_next_to_an_existing_one() {
        let mut members = vec![member(1, true), member(2, true), member(3, true)];
        members[2].raft = RaftRole::Leader;
        assert_eq!(decide(NodeId(1), &members, 3), Bootstrap::Client);
        members[2].raft = RaftRole::Voter;
        assert_eq!(decide(NodeId(1), &members, 3), Bootstrap::Client);
        // A dead member of an old cluster does not block a new one.
        members[2].alive = false;
        members.push(member(4, true));
        assert!(matches!(decide(NodeId(1), &members, 3), Bootstrap::Initialize(_)));
    }

    #[test]
    fn nodes_that_may_not_be_servers_neither_count_nor_found() {
        let mut members = vec![member(1, true), member(2, true), member(3, true), member(4, true)];
        members[0].server_eligible = false;
        let Bootstrap::Initialize(voters) = decide(NodeId(2), &members, 3) else {
            panic!("node 2 is the smallest eligible id");
        };
        assert_eq!(
            voters.keys().copied().collect::<Vec<_>>(),
            vec![NodeId(2), NodeId(3), NodeId(4)]
        );
        assert!(matches!(decide(NodeId(1), &members, 3), Bootstrap::Wait(_)));
        members[3].server_eligible = false;
        assert_eq!(
            decide(NodeId(2), &members, 3),
            Bootstrap::Wait("waiting for 3 nodes to form a cluster (2 seen)".into())
        );
    }

    #[test]
    fn a_single_node_cluster_forms_alone() {
        assert!(matches!(decide(NodeId(8), &[member(8, true)], 1), Bootstrap::Initialize(_)));
    }
}
