//! `GET /api/v1/status`: the leader, the term, every node with its liveness, Raft role
//! and runner load, and the queue, as this node sees them. A client asks a server and
//! answers with the server's view (`served_by`), unless no cluster has formed yet:
//! then it shows what it waits for, as every node does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Json;
use eventide_api::{
    Auth, ErrorBody, NodeRef, NodeRole, NodeStatus, QueueStatus, RaftRole, RepoStatus, RunnerState,
    StatusDoc,
};
use eventide_consensus::NodeId;

use eventide_consensus::store::StateMachineStore;
use tokio::sync::watch;

use super::proxy::Proxy;
use super::repos::settings_doc;
use super::ApiError;
use crate::gossip::Gossip;
use crate::health::ObserverHealth;
use crate::health::Phase;
use crate::raft_view::RaftView;

/// What `status` reads.
pub struct StatusState {
    /// Whether this node answers itself or asks a server.
    pub proxy: Arc<Proxy>,
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

pub async fn get_status(
    State(api): State<Arc<StatusState>>,
    headers: HeaderMap,
) -> Result<Json<StatusDoc>, ApiError> {
    if api.proxy.is_server() || api.proxy.waiting().is_some() {
        return Ok(Json(build(&api).await));
    }
    let forwarded =
        api.proxy.forward(Method::GET, "/api/v1/status", &headers, Bytes::new()).await?;
    let server = forwarded.server;
    let status = forwarded.response.status();
    let text = forwarded.response.text().await.map_err(|error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("server {} did not answer: {error}", server.name),
        )
    })?;
    if !status.is_success() {
        let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |body| body.error);
        return Err(ApiError::new(status, message));
    }
    let mut doc: StatusDoc = serde_json::from_str(&text).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("server {} answered garbage: {error}", server.name),
        )
    })?;
    doc.served_by = Some(doc.node.clone());
    doc.node =
        NodeRef { id: api.id.to_string(), name: api.name.clone(), addr: api.advertise.to_string() };
    Ok(Json(doc))
}

async fn build(api: &StatusState) -> StatusDoc {
    let raft = api.raft.status();
    let voters = &raft.voters;
    let gossip: BTreeMap<NodeId, _> =
        api.gossip.members().await.into_iter().map(|m| (m.id, m)).collect();
    let leader_id = raft.leader;
    // A node's running jobs as the replica has them (nothing before a cluster exists).
    let ids: Vec<NodeId> = raft.nodes.keys().chain(gossip.keys()).copied().collect();
    let busy: BTreeMap<NodeId, u32> = api.state_machine.read(|state| {
        ids.iter()
            .map(|id| (*id, u32::try_from(state.running_count(*id)).unwrap_or(u32::MAX)))
            .collect()
    });
    let busy_on = |id: &NodeId| busy.get(id).copied().unwrap_or(0);

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
                raft: role,
                role: Some(role.into()),
                slots: member.map_or(0, |m| m.slots),
                busy: busy_on(id),
                labels: member.map(|m| m.labels.iter().cloned().collect()).unwrap_or_default(),
                version: member.map(|m| m.version.clone()).unwrap_or_default(),
                runner: member.map_or(RunnerState::Off, |m| m.runner.clone()),
                sandbox: member.and_then(|m| m.sandbox.clone()),
                limits: member.and_then(|m| m.limits.clone()),
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
            role: Some(NodeRole::Client),
            slots: member.slots,
            busy: busy_on(&member.id),
            labels: member.labels.iter().cloned().collect(),
            version: member.version.clone(),
            runner: member.runner.clone(),
            sandbox: member.sandbox.clone(),
            limits: member.limits.clone(),
        });
    }
    // Until this node is a member, it reports its own role as gossip shows it.
    if let Some(me) = nodes.get_mut(&api.id) {
        me.alive = true;
        if me.raft == RaftRole::None {
            me.raft = raft.role;
            me.role = Some(raft.role.into());
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
                forge: settings_doc(state.repo_settings(repo.id)).forge,
                forge_error: state.forge_refusal(repo.id).map(|refusal| refusal.answer.clone()),
            })
            .collect()
    });
    let mut nodes: Vec<NodeStatus> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let node =
        NodeRef { id: api.id.to_string(), name: api.name.clone(), addr: api.advertise.to_string() };
    StatusDoc {
        served_by: Some(node.clone()),
        node,
        leader,
        term: raft.term,
        auth: if api.auth { Auth::On } else { Auth::Off },
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
