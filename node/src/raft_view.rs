//! The read side of this node's Raft handle: the only code that reads openraft's
//! metrics. Roles and handlers ask it who leads, where the leader is, what this node is
//! in the membership and how far it has applied, and wait on it for changes; none of them
//! holds the metrics watch itself.
//!
//! ```text
//!   openraft metrics watch ──> RaftView ── is_leader / leader_addr / stopped / status ──> roles, api
//!          │ every change
//!          v
//!   relay: what watchers care about ── changed? ──> changes() ── changed / latest ──> watchers
//! ```
//!
//! openraft publishes its metrics on every heartbeat answered (the time since the quorum
//! last acknowledged the leader changes each time): on a leader 20 times a second per
//! follower. Every claim a runner holds open and every loop waiting on Raft would wake for
//! each of those, so one relay task per node reads them and wakes the watchers only when
//! something they can act on changed: the role, term, leader, what is applied and held,
//! the membership, replication progress, or Raft stopping.

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
    /// Bumped by the relay when a [`Watched`] part of the metrics changed; closed once
    /// Raft has shut down.
    watched: watch::Receiver<Watched>,
}

/// The parts of the metrics a watcher acts on; the rest (heartbeat times) changes with
/// every heartbeat and wakes nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watched {
    state: ServerState,
    term: u64,
    leader: Option<NodeId>,
    applied: Option<u64>,
    last_log: Option<u64>,
    /// Every membership is a log entry: its log id names it.
    membership: Option<u64>,
    matched: Option<Vec<(NodeId, Option<u64>)>>,
    stopped: bool,
}

impl Watched {
    fn of(metrics: &RaftMetrics) -> Watched {
        Watched {
            state: metrics.state,
            term: metrics.current_term,
            leader: metrics.current_leader,
            applied: metrics.last_applied.map(|id| id.index),
            last_log: metrics.last_log_index,
            membership: metrics.membership_config.log_id().map(|id| id.index),
            matched: metrics.replication.as_ref().map(|replication| {
                replication.iter().map(|(id, matched)| (*id, matched.map(|m| m.index))).collect()
            }),
            stopped: metrics.running_state.is_err(),
        }
    }
}

/// Reads every change of `metrics` and passes on those that change what [`Watched`]
/// holds; ends (closing `watched`) when Raft shuts down.
async fn relay(mut metrics: watch::Receiver<RaftMetrics>, watched: watch::Sender<Watched>) {
    while metrics.changed().await.is_ok() {
        let now = Watched::of(&metrics.borrow_and_update());
        watched.send_if_modified(|seen| {
            let changed = *seen != now;
            if changed {
                *seen = now;
            }
            changed
        });
    }
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
    /// Starts the relay of changes on the current Tokio runtime.
    pub fn new(raft: Raft) -> RaftView {
        let metrics = raft.metrics();
        let (sender, watched) = watch::channel(Watched::of(&metrics.borrow()));
        tokio::spawn(relay(metrics, sender));
        RaftView { raft, watched }
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

    /// A subscription to the changes that matter to a watcher (a new leader, term,
    /// membership, applied entry or replication progress). Its first wait returns at once
    /// if anything changed since this node's Raft started: a watcher that starts after
    /// the node became leader must not wait for a next change that may never come.
    pub fn changes(&self) -> RaftChanges {
        RaftChanges { metrics: self.raft.metrics(), watched: self.watched.clone() }
    }

    /// Whether this node has applied log index `index`, waiting up to `timeout` for it.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut changes = self.changes();
        let deadline = Instant::now() + timeout;
        loop {
            let applied = changes.metrics.borrow().last_applied.map_or(0, |id| id.index);
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
            let addr = leader_addr_of(&changes.metrics.borrow());
            if addr.is_some() {
                return addr;
            }
            if !changes.changed_before(deadline).await {
                return None;
            }
        }
    }
}

fn leader_addr_of(metrics: &RaftMetrics) -> Option<String> {
    let leader = metrics.current_leader?;
    metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
}

/// Wakes its holder on each change of the Raft metrics that a watcher acts on (a new
/// leader, term, membership, applied entry or replication progress), not on heartbeats.
pub struct RaftChanges {
    /// Read for the values: always the newest metrics.
    metrics: watch::Receiver<RaftMetrics>,
    /// Waited on for the changes.
    watched: watch::Receiver<Watched>,
}

impl RaftChanges {
    /// Waits for the next change; false once Raft has shut down.
    pub async fn changed(&mut self) -> bool {
        self.watched.changed().await.is_ok()
    }

    /// Waits for the next change until `deadline`; false at the deadline or once Raft
    /// has shut down.
    pub async fn changed_before(&mut self, deadline: Instant) -> bool {
        matches!(tokio::time::timeout_at(deadline, self.watched.changed()).await, Ok(Ok(())))
    }

    /// Waits until this node has applied past `applied` or its role or term changed,
    /// until `deadline`; false at the deadline or once Raft has shut down. Replication
    /// progress alone does not end the wait.
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
            let metrics = self.metrics.borrow();
            let now = metrics.last_applied.map_or(0, |id| id.index);
            if now > applied || metrics.state != state || metrics.current_term != term {
                return true;
            }
        }
    }

    /// The current reading, marked as seen (the next `changed` waits for a newer one).
    pub fn latest(&mut self) -> RaftStatus {
        self.watched.mark_unchanged();
        RaftStatus::read(&self.metrics.borrow())
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
        // A watcher that subscribes after the node became leader (and nothing changes
        // any more) is woken at once, not by a next change.
        let mut late = view.changes();
        assert!(late.changed_before(Instant::now() + DEADLINE).await);
        node.kill().await;
    }

    #[tokio::test]
    async fn heartbeats_wake_no_watcher_and_an_applied_entry_does() {
        // Elections far off: only heartbeats may change the metrics in the quiet window.
        let timing = RaftTiming {
            election_min: Duration::from_secs(2),
            election_max: Duration::from_secs(4),
            ..RaftTiming::default()
        };
        let config = Arc::new(timing.to_config("raft-view-quiet").expect("valid timing"));
        let (nodes, leader_id) =
            eventide_consensus::testing::start_cluster_for_test(3, config).await;
        let leader = nodes.iter().find(|n| n.id == leader_id).expect("the leader is a node");
        // Quiet means the leader applied all it holds and every follower holds it too.
        leader
            .raft
            .wait(Some(DEADLINE))
            .metrics(
                |m| {
                    let last = m.last_log_index;
                    let replication = m.replication.as_ref();
                    m.last_applied.map(|id| id.index) == last
                        && replication.is_some_and(|r| {
                            r.len() >= 2
                                && r.values().all(|matched| matched.map(|id| id.index) == last)
                        })
                },
                "the leader applied and every follower caught up",
            )
            .await
            .expect("caught up within the deadline");
        let view = RaftView::new(leader.raft.clone());
        let mut changes = view.changes();
        let mut raw = leader.raft.metrics();
        raw.mark_unchanged();
        let window = Instant::now() + Duration::from_millis(600);
        let mut raw_changes = 0;
        let woke = tokio::select! {
            woke = changes.changed_before(window) => woke,
            () = async {
                while raw.changed().await.is_ok() {
                    raw_changes += 1;
                }
            } => false,
        };
        assert!(!woke, "a watcher woke without anything applied, elected or replicated");
        assert!(
            raw_changes >= 3,
            "heartbeats changed the raw metrics {raw_changes} times in 600 ms"
        );

        let applied = view.status().applied_index;
        let command = eventide_consensus::Command::AddRepo {
            url: "file:///srv/app.git".into(),
            at: eventide_consensus::Timestamp(1),
        };
        leader.raft.client_write(command).await.expect("written");
        let deadline = Instant::now() + DEADLINE;
        assert!(changes.changed_before(deadline).await, "the write woke the watcher");
        while changes.latest().applied_index <= applied {
            assert!(changes.changed_before(deadline).await, "the entry's applying woke it");
        }
        for node in nodes {
            node.kill().await;
        }
    }
}
