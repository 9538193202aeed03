//! The read side of this node's Raft handle: the only code that reads openraft's
//! metrics. Roles and handlers ask it who leads, where the leader is, what this node is
//! in the membership and how far it has applied, and wait on it for changes; none of them
//! holds the metrics watch itself.
//!
//! ```text
//!   openraft metrics watch ──> RaftView ── is_leader / leader_addr / stopped / status ──> roles, api
//!                                 └── changes() ── changed / latest ──> watchers (cluster, claims)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use eventide_api::RaftRole;
use eventide_consensus::types::{Raft, RaftMetrics};
use eventide_consensus::{NodeId, NodeInfo};
use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

/// A cheap clone of the Raft handle's read side.
#[derive(Clone)]
pub struct RaftView {
    raft: Raft,
}

/// One consistent reading of this node's Raft metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's role: leader, voter, learner or none (not a member).
    pub role: RaftRole,
    /// The leader this node follows, if it knows one.
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The last log index this node applied (0 before any).
    pub applied_index: u64,
    /// The last log index this node holds (0 before any).
    pub last_log_index: u64,
    /// Voters of the current membership.
    pub voters: Vec<NodeId>,
    /// Every node of the current membership (voters and learners).
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// A membership change is under way: a joint configuration is in force, or the
    /// latest membership is not applied yet.
    pub changing: bool,
    /// On the leader: the last log index each follower is known to hold.
    pub matched: BTreeMap<NodeId, Option<u64>>,
}

impl RaftStatus {
    fn read(metrics: &RaftMetrics) -> RaftStatus {
        let membership = metrics.membership_config.membership();
        let matched = metrics
            .replication
            .iter()
            .flatten()
            .map(|(id, matched)| (*id, matched.map(|m| m.index)))
            .collect();
        RaftStatus {
            role: role_of(metrics),
            leader: metrics.current_leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            voters: membership.voter_ids().collect(),
            nodes: membership.nodes().map(|(id, info)| (*id, info.clone())).collect(),
            // A joint configuration, or one this node has not applied yet (a leader's
            // first membership before its first commit): a change cannot start now.
            changing: membership.get_joint_config().len() > 1
                || metrics.last_applied.map(|id| id.index)
                    < metrics.membership_config.log_id().map(|id| id.index),
            matched,
        }
    }
}

/// This node's role from its metrics.
fn role_of(metrics: &RaftMetrics) -> RaftRole {
    let membership = metrics.membership_config.membership();
    if metrics.state == ServerState::Leader {
        RaftRole::Leader
    } else if membership.voter_ids().any(|id| id == metrics.id) {
        RaftRole::Voter
    } else if membership.nodes().any(|(id, _)| *id == metrics.id) {
        RaftRole::Learner
    } else {
        RaftRole::None
    }
}

impl RaftView {
    pub fn new(raft: Raft) -> RaftView {
        RaftView { raft }
    }

    fn read<T>(&self, f: impl FnOnce(&RaftMetrics) -> T) -> T {
        f(&self.raft.metrics().borrow())
    }

    /// Everything at once, from one reading.
    pub fn status(&self) -> RaftStatus {
        self.read(RaftStatus::read)
    }

    pub fn is_leader(&self) -> bool {
        self.read(|m| m.state == ServerState::Leader)
    }

    /// The address of node `id` in the Raft membership this node knows.
    pub fn node_addr(&self, id: NodeId) -> Option<String> {
        self.read(|m| m.membership_config.membership().get_node(&id).map(|n| n.addr.clone()))
    }

    /// The address of the leader this node follows, if it knows one.
    pub fn leader_addr(&self) -> Option<String> {
        self.read(leader_addr_of)
    }

    /// Why Raft stopped for good (a fatal storage error), if it did.
    pub fn stopped(&self) -> Option<String> {
        self.read(|m| m.running_state.as_ref().err().map(ToString::to_string))
    }

    /// A subscription to every change of the metrics from now on.
    pub fn changes(&self) -> RaftChanges {
        RaftChanges { metrics: self.raft.metrics() }
    }

    /// Whether this node has applied log index `index`, waiting up to `timeout` for it.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut changes = self.changes();
        let deadline = Instant::now() + timeout;
        loop {
            let applied = changes.metrics.borrow_and_update().last_applied.map_or(0, |id| id.index);
            if applied >= index {
                return true;
            }
            if !changes.changed_before(deadline).await {
                return false;
            }
        }
    }

    /// The leader's address, waiting up to `timeout` for one to be known.
    pub async fn wait_leader_addr(&self, timeout: Duration) -> Option<String> {
        let mut changes = self.changes();
        let deadline = Instant::now() + timeout;
        loop {
            let addr = leader_addr_of(&changes.metrics.borrow_and_update());
            if addr.is_some() {
                return addr;
            }
            if tokio::time::timeout_at(deadline, changes.metrics.changed()).await.is_err() {
                return None;
            }
        }
    }
}

fn leader_addr_of(metrics: &RaftMetrics) -> Option<String> {
    let leader = metrics.current_leader?;
    metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
}

/// Wakes its holder on each change of the Raft metrics (a new leader, term, membership
/// or applied entry).
pub struct RaftChanges {
    metrics: watch::Receiver<RaftMetrics>,
}

impl RaftChanges {
    /// Waits for the next change; false once Raft has shut down.
    pub async fn changed(&mut self) -> bool {
        self.metrics.changed().await.is_ok()
    }

    /// Waits for the next change until `deadline`; false at the deadline or once Raft
    /// has shut down.
    pub async fn changed_before(&mut self, deadline: Instant) -> bool {
        matches!(tokio::time::timeout_at(deadline, self.metrics.changed()).await, Ok(Ok(())))
    }

    /// Waits until this node has applied past `applied` or its role or term changed,
    /// until `deadline`; false at the deadline or once Raft has shut down. Metrics that
    /// change with every heartbeat (replication progress) do not wake it.
    pub async fn applied_or_role_changed_before(
        &mut self,
        applied: u64,
        deadline: Instant,
    ) -> bool {
        let (state, term) = {
            let metrics = self.metrics.borrow();
            (metrics.state, metrics.current_term)
        };
        loop {
            if !self.changed_before(deadline).await {
                return false;
            }
            let metrics = self.metrics.borrow_and_update();
            let now = metrics.last_applied.map_or(0, |id| id.index);
            if now > applied || metrics.state != state || metrics.current_term != term {
                return true;
            }
        }
    }

    /// The current reading, marked as seen (the next `changed` waits for a newer one).
    pub fn latest(&mut self) -> RaftStatus {
        RaftStatus::read(&self.metrics.borrow_and_update())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eventide_consensus::testing::{LocalNode, DEADLINE};
    use eventide_consensus::RaftTiming;

    use super::*;

    fn config() -> Arc<openraft::Config> {
        Arc::new(RaftTiming::default().to_config("raft-view-test").expect("valid timing"))
    }

    #[tokio::test]
    async fn a_node_reads_as_no_member_then_as_the_leader_of_its_cluster() {
        let node = LocalNode::start_for_test(1, config()).await;
        let view = RaftView::new(node.raft.clone());
        let before = view.status();
        assert_eq!((before.role, before.leader, before.applied_index), (RaftRole::None, None, 0));
        assert!(before.nodes.is_empty() && before.voters.is_empty());
        assert!(!view.is_leader());
        assert_eq!(view.leader_addr(), None);
        assert_eq!(view.stopped(), None);
        assert_eq!(view.wait_leader_addr(Duration::from_millis(20)).await, None);

        let mut changes = view.changes();
        node.raft.initialize(BTreeMap::from([(node.id, node.info())])).await.expect("initialize");
        let addr = view.wait_leader_addr(DEADLINE).await;
        assert_eq!(addr.as_deref(), Some(node.addr.as_str()));
        assert!(changes.changed_before(Instant::now() + DEADLINE).await);
        node.wait_applied(1).await;
        let after = view.status();
        assert_eq!((after.role, after.leader), (RaftRole::Leader, Some(node.id)));
        assert_eq!(after.voters, [node.id]);
        assert_eq!(view.node_addr(node.id).as_deref(), Some(node.addr.as_str()));
        assert!(view.is_leader() && after.term >= 1 && after.applied_index >= 1);
        assert!(!after.changing);
        node.kill().await;
    }
}
