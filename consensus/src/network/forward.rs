//! Writes from any node: a command proposed on a follower is forwarded to the leader, so
//! that nobody outside Raft ever has to find the leader.
//!
//! A write is retried only when it certainly was not applied (the leader could not be
//! dialled, or the node dialled is no longer leader). A request that reached the leader
//! but got no answer is reported, not retried: commands are fenced (compare-and-set,
//! attempts) but a rerun would be queued twice.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

use super::batch::{Local, Proposer};
use super::server::{decode_request, encode_reply};
use super::{CODEC_CONTENT_TYPE, WRITE_PATH};
use crate::auth::Signer;
use crate::codec;
use crate::command::{Command, Reply};
use crate::types::{NodeId, NodeInfo, Raft};

/// Why a write did not happen (or may not have).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    #[error("no leader: the cluster is electing one or has lost its quorum")]
    NoLeader,
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("no answer from leader {leader} at {addr}, the write may or may not have happened: {reason}")]
    LeaderUnreachable { leader: NodeId, addr: String, reason: String },
    #[error("raft failed the write: {reason}")]
    Raft { reason: String },
}

/// Proposes commands through the local node, forwarding to the leader when needed.
#[derive(Clone)]
pub struct Writer {
    proposer: Proposer,
    client: reqwest::Client,
    signer: Signer,
    /// How long a write waits for a leader (an election in progress) before giving up.
    leader_wait: Duration,
}

/// A forwarded write that failed before the leader could have applied it.
enum Retry {
    Yes(WriteError),
    No(WriteError),
}

impl Writer {
    /// `signer` signs forwarded writes.
    pub fn new(
        raft: Raft,
        leader_wait: Duration,
        signer: Signer,
    ) -> Result<Writer, reqwest::Error> {
        // No pooled connections: a write to a leader that just died must fail to connect
        // (certainly not applied, so retried) rather than break on a stale connection
        // (maybe applied, so reported).
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Writer { proposer: Proposer::new(raft), client, signer, leader_wait })
    }

    /// Commits `command` through the leader and returns the state machine's reply.
    pub async fn write(&self, command: Command) -> Result<Reply, WriteError> {
        let deadline = Instant::now() + self.leader_wait;
        loop {
            let error = match self.proposer.propose(command.clone()).await {
                Local::Applied(reply) => return Ok(reply),
                Local::Failed(reason) => return Err(WriteError::Raft { reason }),
                Local::NoLeader => WriteError::NoLeader,
                Local::Forward(leader, node) => match self.forward(leader, &node, &command).await {
                    Ok(reply) => return Ok(reply),
                    Err(Retry::No(error)) => return Err(error),
                    Err(Retry::Yes(error)) => error,
                },
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(error);
            }
            debug!(error = %error, "write not placed yet, retrying");
            tokio::time::sleep((deadline - now).min(Duration::from_millis(50))).await;
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        node: &NodeInfo,
        command: &Command,
    ) -> Result<Reply, Retry> {
        let unreachable = |reason: String| WriteError::LeaderUnreachable {
            leader,
            addr: node.addr.clone(),
            reason,
        };
        let body = codec::encode(command)
            .map_err(|e| Retry::No(WriteError::Raft { reason: e.to_string() }))?;
        let request = self.client.post(format!("http://{}{}", node.addr, WRITE_PATH));
        let response = self
            .signer
            .sign_post(request, WRITE_PATH, &body)
            .header(reqwest::header::CONTENT_TYPE, CODEC_CONTENT_TYPE)
            .timeout(Duration::from_secs(10))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    Retry::Yes(unreachable(e.to_string()))
                } else {
                    Retry::No(unreachable(e.to_string()))
                }
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Retry::No(unreachable(e.to_string())))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(Retry::No(unreachable(format!("HTTP {status}: {text}"))));
        }
        let reply: Result<Reply, WriteError> =
            codec::decode(&bytes).map_err(|e| Retry::No(unreachable(e.to_string())))?;
        reply.map_err(|error| match error {
            WriteError::NotLeader { .. } | WriteError::NoLeader => Retry::Yes(error),
            other => Retry::No(other),
        })
    }
}

/// Handles a write forwarded by another node: applies it here if this node leads.
#[instrument(level = "debug", skip_all)]
pub(super) async fn write(State(proposer): State<Proposer>, body: Bytes) -> Response {
    let command: Command = match decode_request(WRITE_PATH, &body) {
        Ok(command) => command,
        Err(response) => return response,
    };
    let reply = match proposer.propose(command).await {
        Local::Applied(reply) => Ok(reply),
        Local::Forward(leader, _) => Err(WriteError::NotLeader { leader: Some(leader) }),
        Local::NoLeader => Err(WriteError::NotLeader { leader: None }),
        Local::Failed(reason) => Err(WriteError::Raft { reason }),
    };
    encode_reply(&reply)
}
