//! `GET /api/v1/status`: the leader, the term, every node with its liveness, Raft role
//! and runner load, and the queue, as this node sees them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use eventide_api::{
    Auth, NodeRef, NodeStatus, QueueStatus, RaftRole, RepoStatus, RunnerState, StatusDoc,
};
use eventide_consensus::NodeId;

use crate::cluster::raft_role;
use crate::node::NodeContext;

pub async fn get_status(State(context): State<Arc<NodeContext>>) -> Json<StatusDoc> {
    Json(build(&context).await)
}

async fn build(context: &NodeContext) -> StatusDoc {
    let metrics = context.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let gossip: BTreeMap<NodeId, _> =
        context.gossip.members().await.into_iter().map(|m| (m.id, m)).collect();
    let leader_id = metrics.current_leader;

    let mut nodes: BTreeMap<NodeId, NodeStatus> = BTreeMap::new();
    for (id, info) in membership.nodes() {
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
                raft: role,
                slots: member.map_or(0, |m| m.slots),
                busy: member.map_or(0, |m| m.busy),
                labels: member.map(|m| m.labels.iter().cloned().collect()).unwrap_or_default(),
                version: member.map(|m| m.version.clone()).unwrap_or_default(),
                runner: member.map_or(RunnerState::Off, |m| m.runner.clone()),
            },
        );
    }
    for member in gossip.values() {
        nodes.entry(member.id).or_insert_with(|| NodeStatus {
            id: member.id.to_string(),
            name: member.name.clone(),
            addr: member.addr.to_string(),
            alive: member.alive,
            raft: RaftRole::None,
            slots: member.slots,
            busy: member.busy,
            labels: member.labels.iter().cloned().collect(),
            version: member.version.clone(),
            runner: member.runner.clone(),
        });
    }
    // Until this node is a member, it reports its own role as gossip shows it.
    if let Some(me) = nodes.get_mut(&context.id) {
        me.alive = true;
        if me.raft == RaftRole::None {
            me.raft = raft_role(&metrics);
        }
    }

    let leader = leader_id.and_then(|id| nodes.get(&id)).map(|n| NodeRef {
        id: n.id.clone(),
        name: n.name.clone(),
        addr: n.addr.clone(),
    });
    let counts = context.state_machine.read(|state| state.queue_counts());
    let errors = context.observer_health.errors();
    let repos = context.state_machine.read(|state| {
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
            id: context.id.to_string(),
            name: context.config.name.clone(),
            addr: context.config.advertise.to_string(),
        },
        leader,
        term: metrics.current_term,
        auth: if context.config.secret.is_some() { Auth::On } else { Auth::Off },
        waiting: context.phase.borrow().waiting.clone(),
        voters: voters.len(),
        applied_index: metrics.last_applied.map_or(0, |id| id.index),
        nodes,
        queue: QueueStatus {
            queued: counts.queued,
            running: counts.running,
            finished: counts.finished,
        },
        repos,
    }
}
