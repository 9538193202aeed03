//! Cluster formation and membership: bootstrap (a node with no Raft state) and
//! autopilot (on the leader), plus publishing this node's Raft role by gossip.
//!
//! - `bootstrap`: the pure `--bootstrap-expect` rule.
//! - `autopilot`: the pure membership rules (voters, standbys, clients).
//!
//! ```text
//!  gossip members ─┐
//!  RaftView ───────┼─> tick ─> no Raft state? ─> bootstrap::decide ─> raft.initialize
//!  every 250 ms ───┘             leader?      ─> Autopilot::next_change ─> change_membership
//! ```
//!
//! A change runs beside the loop, one at a time: openraft answers it only once its entry
//! commits, which never happens to a leader cut off with a minority and then removed
//! from the group, and the loop must still see that node lose its leadership and
//! publish it. A change is dropped when the node stops leading, or after
//! [`CHANGE_TIMEOUT`]; autopilot then decides again from the membership it finds.

mod autopilot;
mod bootstrap;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide_consensus::runtime::set_ticking;
use eventide_consensus::types::Raft;
use eventide_consensus::{NodeId, NodeInfo};
use openraft::ChangeMembers;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

pub use self::autopilot::{Autopilot, Change, MembershipView, Sizes};
pub use self::bootstrap::{decide, Bootstrap};
use crate::gossip::{effective_role, Gossip, RaftRole, Servers};
use crate::health::Phase;
use crate::raft_view::{RaftStatus, RaftView};

/// A learner within this many entries of the leader's log may become a voter.
const CAUGHT_UP_ENTRIES: u64 = 100;

/// How often membership is re-evaluated when nothing else wakes the loop.
const TICK: Duration = Duration::from_millis(250);

/// How long one membership change may wait for its entry to commit.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long gossip's view of the live nodes must hold still before a cluster is formed
/// from it (five default gossip rounds).
const BOOTSTRAP_SETTLE: Duration = Duration::from_secs(1);

/// How often a client that no cluster has made a member looks at gossip again.
const CLIENT_RECHECK: Duration = Duration::from_secs(2);

/// Settings of the cluster task.
pub struct ClusterSettings {
    pub me: NodeId,
    pub bootstrap_expect: usize,
    pub voters: usize,
    pub standby: usize,
    pub dead_voter_grace: Duration,
}

/// What of Raft's state the cluster loop acts on: its role and term, the leader, the
/// membership and whether it is changing, and which followers are caught up.
#[derive(Debug, PartialEq, Eq)]
struct ActedOn {
    role: RaftRole,
    leader: Option<NodeId>,
    term: u64,
    membership: MembershipView,
}

impl ActedOn {
    fn of(status: &RaftStatus) -> ActedOn {
        ActedOn {
            role: status.role,
            leader: status.leader,
            term: status.term,
            membership: membership_view(status),
        }
    }
}

fn membership_view(status: &RaftStatus) -> MembershipView {
    let last = status.last_log_index;
    let caught_up = status
        .matched
        .iter()
        .filter(|(_, matched)| matched.is_some_and(|m| m + CAUGHT_UP_ENTRIES >= last))
        .map(|(id, _)| *id)
        .collect();
    MembershipView {
        voters: status.voters.iter().copied().collect(),
        nodes: status.nodes.clone(),
        changing: status.changing,
        caught_up,
    }
}

/// Runs until the process stops: forms the cluster if needed, keeps gossip's `raft`
/// key current, and on the leader applies autopilot's changes one at a time. It reads
/// Raft through `view` and changes its membership through `raft`.
pub async fn run(
    settings: ClusterSettings,
    view: RaftView,
    raft: Raft,
    gossip: Arc<Gossip>,
    phase: watch::Sender<Phase>,
) {
    let sizes = Sizes { voters: settings.voters, standby: settings.standby };
    let mut autopilot = Autopilot::new(sizes, settings.dead_voter_grace);
    let mut changes = view.changes();
    let mut gossip_rx = gossip.changes().await;
    // How long the loop sleeps when nothing wakes it: a tick, or for a client that no
    // cluster has made a member, until it looks at gossip again (Raft wakes it the
    // moment the cluster adds it).
    let mut pause = TICK;
    let mut was_leader = false;
    // Since when this node has been a client that no cluster has added: it looks at
    // gossip again only every CLIENT_RECHECK, not on every tick.
    let mut client_since: Option<Instant> = None;
    // The live nodes gossip showed at the last tick, and since when it has shown them:
    // a cluster is formed only from a view that held still for BOOTSTRAP_SETTLE, so that
    // nodes started together do not each found a cluster of the few they saw first.
    let mut seen: (Vec<NodeId>, Instant) = (Vec::new(), Instant::now());
    // Raft's timer runs only on a node with Raft state: a client's would wake it (and
    // every watcher of its metrics) twenty times a second for nothing.
    let mut ticking = true;
    let mut published: Option<(RaftRole, Option<Servers>)> = None;
    // The membership change under way on this leader, if any.
    let mut change_task: Option<JoinHandle<()>> = None;
    // When the next tick is due, whatever woke the loop in between.
    let mut due = tokio::time::Instant::now() + pause;
    // What of Raft's state the loop acted on last: a wake by Raft that changed none of
    // it (an entry applied, a follower's progress within the caught-up margin) is
    // skipped, not paid for with a copy of every member, once an entry on a busy cluster.
    let mut acted_on: Option<ActedOn> = None;
    loop {
        let by_raft = tokio::select! {
            () = tokio::time::sleep_until(due) => false,
            changed = changes.changed() => if changed { true } else { return },
            _ = gossip_rx.changed() => false,
        };
        let status = changes.latest();
        let now_on = ActedOn::of(&status);
        if by_raft && acted_on.as_ref() == Some(&now_on) {
            continue;
        }
        acted_on = Some(now_on);
        let leader = status.role == RaftRole::Leader;
        // A client's tick reads no gossip: only a node whose replica says it is a
        // member needs the leader's list of servers, and only a leader or a node still
        // bootstrapping needs every member.
        let unchanged_client = status.role == RaftRole::None
            && (!status.nodes.is_empty()
                || client_since.is_some_and(|since| since.elapsed() < CLIENT_RECHECK));
        let members = if unchanged_client { None } else { Some(gossip.members().await) };
        pause = if unchanged_client { CLIENT_RECHECK } else { TICK };
        due = tokio::time::Instant::now() + pause;
        let role = match &members {
            Some(members) => effective_role(settings.me, status.role, status.term, members),
            None => RaftRole::None,
        };
        let has_state = status.role != RaftRole::None || !status.nodes.is_empty();
        if has_state != ticking {
            set_ticking(&raft, has_state);
            ticking = has_state;
        }
        let servers = leader
            .then(|| Servers { term: status.term, ids: status.nodes.keys().copied().collect() });
        if published.as_ref() != Some(&(role, servers.clone())) {
            gossip.set_raft_role(role, servers.clone()).await;
            published = Some((role, servers));
        }
        phase.send_if_modified(|p| replace(&mut p.role, role));
        // A client of a formed cluster starts its own gossip rounds at the client pace; a
        // server, or a node still forming a cluster, at every tick.
        gossip
            .set_client_pace(
                role == RaftRole::None && (!status.nodes.is_empty() || client_since.is_some()),
            )
            .await;

        if status.role == RaftRole::None && status.nodes.is_empty() {
            let Some(members) = members else { continue };
            match decide(settings.me, &members, settings.bootstrap_expect) {
                Bootstrap::Wait(reason) => {
                    phase.send_if_modified(|p| replace(&mut p.waiting, Some(reason)));
                }
                Bootstrap::Client => {
                    client_since = Some(Instant::now());
                    phase.send_if_modified(|p| replace(&mut p.waiting, None));
                }
                Bootstrap::Initialize(voters) => {
                    let live: Vec<NodeId> =
                        members.iter().filter(|m| m.alive).map(|m| m.id).collect();
                    if live != seen.0 {
                        seen = (live, Instant::now());
                    }
                    if seen.1.elapsed() < BOOTSTRAP_SETTLE {
                        let reason = format!(
                            "waiting for gossip to settle before forming a cluster ({} nodes seen)",
                            seen.0.len()
                        );
                        phase.send_if_modified(|p| replace(&mut p.waiting, Some(reason)));
                        continue;
                    }
                    if !prove_all(&gossip, &voters).await {
                        continue;
                    }
                    let ids: Vec<String> = voters.keys().map(|id| id.to_string()).collect();
                    info!(voters = ?ids, "forming a new cluster");
                    set_ticking(&raft, true);
                    ticking = true;
                    match raft.initialize(voters).await {
                        Ok(()) => {}
                        Err(error) => warn!(error = %error, "initialize refused"),
                    }
                }
            }
            continue;
        }
        phase.send_if_modified(|p| replace(&mut p.waiting, None));

        if leader && !was_leader {
            info!(term = status.term, "became leader");
        }
        if !leader {
            if was_leader {
                info!(term = status.term, "no longer leader");
            }
            if let Some(task) = change_task.take() {
                task.abort();
            }
            autopilot.reset();
            was_leader = false;
            continue;
        }
        was_leader = true;
        if change_task.as_ref().is_some_and(|task| !task.is_finished()) {
            continue;
        }
        change_task = None;
        let members = members.unwrap_or_default();
        let membership = membership_view(&status);
        if let Some(change) = autopilot.next_change(&membership, &members, Instant::now()) {
            let (raft, gossip) = (raft.clone(), gossip.clone());
            let task = async move {
                let described = format!("{change:?}");
                if tokio::time::timeout(CHANGE_TIMEOUT, apply(&raft, &gossip, change))
                    .await
                    .is_err()
                {
                    warn!(change = %described, timeout_s = CHANGE_TIMEOUT.as_secs(), "autopilot change not committed in time; will decide again");
                }
            };
            change_task = Some(tokio::spawn(task.in_current_span()));
        }
    }
}

/// Whether every node about to form the cluster proves the secret over TCP (gossip is
/// only a hint); the next tick tries again if one does not.
async fn prove_all(gossip: &Gossip, voters: &BTreeMap<NodeId, NodeInfo>) -> bool {
    for (id, info) in voters {
        if let Err(error) = gossip.prove_peer(&info.addr).await {
            warn!(peer = %id, addr = %info.addr, error = %error, "not forming a cluster with a node that failed to prove the cluster secret");
            return false;
        }
    }
    true
}

fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        false
    } else {
        *slot = value;
        true
    }
}

async fn apply(raft: &Raft, gossip: &Gossip, change: Change) {
    let result = match &change {
        Change::AddLearner { id, info } => {
            // Gossip is only a hint: a node becomes a member only after it proved the
            // cluster secret over an authenticated RPC.
            if let Err(error) = gossip.prove_peer(&info.addr).await {
                warn!(peer = %id, addr = %info.addr, error = %error, "autopilot: not adding a node that failed to prove the cluster secret");
                return;
            }
            info!(peer = %id, addr = %info.addr, "autopilot: adding learner");
            raft.add_learner(*id, info.clone(), false).await.map(|_| ())
        }
        Change::SetVoters { voters } => {
            let ids: Vec<String> = voters.iter().map(|id| id.to_string()).collect();
            info!(voters = ?ids, "autopilot: changing voters");
            raft.change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false)
                .await
                .map(|_| ())
        }
        Change::RemoveLearners { ids } => {
            let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            info!(learners = ?list, "autopilot: removing learners (dead, opted out or beyond the standbys); live ones carry on as clients");
            raft.change_membership(ChangeMembers::RemoveNodes(ids.clone()), false).await.map(|_| ())
        }
    };
    if let Err(error) = result {
        warn!(error = %error, change = ?change, "autopilot change failed; will retry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_close_to_the_leader_s_log_are_caught_up() {
        let nodes: BTreeMap<NodeId, NodeInfo> = (1..=4)
            .map(|id| (NodeId(id), NodeInfo::new(format!("127.0.0.1:{id}"), format!("n{id}"))))
            .collect();
        let status = RaftStatus {
            role: RaftRole::Leader,
            leader: Some(NodeId(1)),
            term: 3,
            applied_index: 500,
            last_log_index: 500,
            voters: vec![NodeId(1), NodeId(2)],
            nodes: nodes.clone(),
            changing: false,
            matched: BTreeMap::from([
                (NodeId(1), Some(500)),
                (NodeId(2), Some(400)),
                (NodeId(3), Some(399)),
                (NodeId(4), None),
            ]),
        };
        let view = membership_view(&status);
        assert_eq!(view.voters, [NodeId(1), NodeId(2)].into());
        assert_eq!(view.nodes, nodes);
        assert!(!view.changing);
        assert_eq!(view.caught_up, [NodeId(1), NodeId(2)].into());

        // Entries applied and replicated within the margin change nothing the loop acts
        // on; a follower falling behind it, a new term or a changing membership do.
        let acted_on = ActedOn::of(&status);
        let mut busy = status.clone();
        busy.applied_index = 520;
        busy.last_log_index = 520;
        busy.matched.insert(NodeId(1), Some(520));
        busy.matched.insert(NodeId(2), Some(430));
        assert_eq!(ActedOn::of(&busy), acted_on);
        let mut behind = busy.clone();
        behind.last_log_index = 531;
        assert_ne!(ActedOn::of(&behind), acted_on, "n2 no longer caught up");
        let mut newer = status.clone();
        newer.term = 4;
        assert_ne!(ActedOn::of(&newer), acted_on);
        let mut changing = status.clone();
        changing.changing = true;
        assert_ne!(ActedOn::of(&changing), acted_on);
        let mut follower = status;
        follower.role = RaftRole::Voter;
        assert_ne!(ActedOn::of(&follower), acted_on);
    }
}
