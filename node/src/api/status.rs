//! `GET /api/v1/status`: the leader, the term, every node with its liveness, Raft role
//! and runner load, and the queue, as this node sees them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use eventide_consensus::NodeId;
use serde::{Deserialize, Serialize};

use eventide_consensus::store::StateMachineStore;
use tokio::sync::watch;

use crate::cluster::Phase;
use crate::gossip::{Gossip, RaftRole};
use crate::observer::ObserverHealth;
use crate::raft_view::RaftView;

/// A node as other documents refer to it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The node id, as a string: a u64 does not fit a JavaScript number.
    pub id: String,
    pub name: String,
    pub addr: String,
}

/// One node of the cluster.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: String,
    pub name: String,
    pub addr: String,
    /// Alive according to gossip's failure detector.
    pub alive: bool,
    /// `leader`, `voter`, `learner` or `none` (not a Raft member).
    pub raft: String,
    pub slots: u32,
    pub busy: u32,
    pub labels: Vec<String>,
    pub version: String,
    /// The runner: `ok` (claims jobs), `off` (no slots) or `paused (<why>)`, such as
    /// `paused (disk: 120 MiB free < 1 GiB)`.
    #[serde(default)]
    pub runner: String,
}

/// The `runner` field of a node's status.
fn runner_state(slots: u32, paused: Option<&str>) -> String {
    match (slots, paused) {
        (_, Some(reason)) => format!("paused ({reason})"),
        (0, None) => "off".to_owned(),
        (_, None) => "ok".to_owned(),
    }
}

/// Job counts by phase.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStatus {
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
}

/// The whole `status` document.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusDoc {
    /// The node that answered.
    pub node: NodeRef,
    /// The leader this node follows, or null (no quorum, election, not formed yet).
    pub leader: Option<NodeRef>,
    pub term: u64,
    /// `on` when a cluster secret authenticates internal traffic, else `off`.
    pub auth: String,
    /// Why the node is not part of a cluster yet, if it is not.
    pub waiting: Option<String>,
    /// Voters in the current Raft membership.
    pub voters: usize,
    /// The last log index this node applied.
    pub applied_index: u64,
    pub nodes: Vec<NodeStatus>,
    pub queue: QueueStatus,
    /// Watched repositories; `error` is the observer's latest problem with one (only
    /// the leader's observer runs, so only the leader reports errors).
    pub repos: Vec<RepoStatus>,
}

/// A watched repository in `status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepoStatus {
    pub id: String,
    pub url: String,
    pub error: Option<String>,
}

/// What `status` reads.
pub struct StatusState {
    pub id: NodeId,
    pub name: String,
    pub advertise: SocketAddr,
    /// A cluster secret is set.
    pub auth: bool,
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    pub gossip: Arc<Gossip>,
    /// Why this node is not in a cluster yet (from the cluster task).
    pub phase: watch::Receiver<Phase>,
    /// The observer's latest error per repository.
    pub observer_health: Arc<ObserverHealth>,
}

pub async fn get_status(State(api): State<Arc<StatusState>>) -> Json<StatusDoc> {
    Json(build(&api).await)
}

async fn build(api: &StatusState) -> StatusDoc {
    let raft = api.raft.status();
    let voters = &raft.voters;
    let gossip: BTreeMap<NodeId, _> =
        api.gossip.members().await.into_iter().map(|m| (m.id, m)).collect();
    let leader_id = raft.leader;

    let mut nodes: BTreeMap<NodeId, NodeStatus> = BTreeMap::new();
    for (id, info) in &raft.nodes {
        let role = if Some(*id) == leader_id {
            RaftRole::Leader
        } else if voters.contains(id) {
            RaftRole::Voter
        } else {
            RaftRole::Learner
        };
        let member = gossip.get(id);
        nodes.insert(
            *id,
            NodeStatus {
                id: id.to_string(),
                name: member.map_or_else(|| info.name.clone(), |m| m.name.clone()),
                addr: info.addr.clone(),
                alive: member.is_some_and(|m| m.alive),
                raft: role.as_str().to_owned(),
                slots: member.map_or(0, |m| m.slots),
                busy: member.map_or(0, |m| m.busy),
                labels: member.map(|m| m.labels.iter().cloned().collect()).unwrap_or_default(),
                version: member.map(|m| m.version.clone()).unwrap_or_default(),
                runner: runner_state(
                    member.map_or(0, |m| m.slots),
                    member.and_then(|m| m.runner_paused.as_deref()),
                ),
            },
        );
    }
    for member in gossip.values() {
        nodes.entry(member.id).or_insert_with(|| NodeStatus {
            id: member.id.to_string(),
            name: member.name.clone(),
            addr: member.addr.to_string(),
            alive: member.alive,
            raft: RaftRole::None.as_str().to_owned(),
            slots: member.slots,
            busy: member.busy,
            labels: member.labels.iter().cloned().collect(),
            version: member.version.clone(),
            runner: runner_state(member.slots, member.runner_paused.as_deref()),
        });
    }
    // Until this node is a member, it reports its own role as gossip shows it.
    if let Some(me) = nodes.get_mut(&api.id) {
        me.alive = true;
        if me.raft == RaftRole::None.as_str() {
            me.raft = raft.role.as_str().to_owned();
        }
    }

    let leader = leader_id.and_then(|id| nodes.get(&id)).map(|n| NodeRef {
        id: n.id.clone(),
        name: n.name.clone(),
        addr: n.addr.clone(),
    });
    let counts = api.state_machine.read(|state| state.queue_counts());
    let errors = api.observer_health.errors();
    let repos = api.state_machine.read(|state| {
        state
            .repos()
            .map(|repo| RepoStatus {
                id: repo.id.to_string(),
                url: repo.url.clone(),
                error: errors.get(&repo.id).cloned(),
            })
            .collect()
    });
    let mut nodes: Vec<NodeStatus> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    StatusDoc {
        node: NodeRef {
            id: api.id.to_string(),
            name: api.name.clone(),
            addr: api.advertise.to_string(),
        },
        leader,
        term: raft.term,
        auth: if api.auth { "on" } else { "off" }.to_owned(),
        waiting: api.phase.borrow().waiting.clone(),
        voters: voters.len(),
        applied_index: raft.applied_index,
        nodes,
        queue: QueueStatus {
            queued: counts.queued,
            running: counts.running,
            finished: counts.finished,
        },
        repos,
    }
}
