//! Writes from any node: a command proposed on a follower is forwarded to the leader, so
//! that nobody outside Raft ever has to find the leader.
//!
//! A write is retried only when it certainly was not applied (the leader could not be
//! dialled, or the node dialled is no longer leader). A request that reached the leader
//! but got no answer is reported, not retried: commands are fenced (compare-and-set,
//! attempts) but a rerun would be queued twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

use super::batch::{Local, Proposer};
use super::rpc::{Codec, CodecReply, RpcClient, RpcError};
use super::WRITE_PATH;
use crate::auth::Signer;
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
    /// Proposed on the leader, but not committed within `waited_ms`: the leader lost its
    /// quorum, or its leadership, meanwhile. (Last, so that older nodes still decode
    /// every other variant.)
    #[error("the write was proposed but not committed within {waited_ms} ms (the leader may have lost its quorum); it may or may not have happened")]
    NotCommitted { waited_ms: u64 },
}

/// Where the leader is when this node's own Raft does not know: a node that is no Raft
/// member (a client) follows no leader, and asks whatever knows (gossip) instead.
pub type LeaderHint =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<(NodeId, NodeInfo)>> + Send>> + Send + Sync>;

/// Proposes commands through the local node, forwarding to the leader when needed.
#[derive(Clone)]
pub struct Writer {
    proposer: Proposer,
    /// Where the nodes named by a redirect are (its membership).
    raft: Raft,
    /// Asked when the local Raft knows no leader.
    hint: Option<LeaderHint>,
    /// Unpooled, see [`RpcClient::unpooled`]. Its failures reach the writer's caller as
    /// [`WriteError`]s; they are not part of the node's RPC failure counts.
    rpc: RpcClient,
    /// How long a write waits for a leader (an election in progress), and a local
    /// proposal for its entry to commit, before giving up.
    leader_wait: Duration,
}

/// How long a forwarded write waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

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
        let rpc = RpcClient::unpooled(signer)?;
        // A local proposal is bounded like the rest of the write: a leader cut off from
        // its quorum never gets an answer for it from openraft.
        let proposer = Proposer::new(raft.clone(), leader_wait);
        Ok(Writer { proposer, raft, hint: None, rpc, leader_wait })
    }

    /// The same writer, asking `hint` for the leader when the local Raft knows none.
    pub fn with_leader_hint(mut self, hint: LeaderHint) -> Writer {
        self.hint = Some(hint);
        self
    }

    async fn hinted_leader(&self) -> Option<(NodeId, NodeInfo)> {
        match &self.hint {
            Some(hint) => hint().await,
            None => None,
        }
    }

    /// Where node `id` is: this node's membership, else the leader gossip names if it is
    /// that node.
    async fn node_of(&self, id: NodeId) -> Option<NodeInfo> {
        let member =
            self.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned();
        match member {
            Some(node) => Some(node),
            None => {
                self.hinted_leader().await.filter(|(leader, _)| *leader == id).map(|(_, node)| node)
            }
        }
    }

    /// Commits `command` through the leader and returns the state machine's reply.
    ///
    /// A node that forwarded to says who leads now, and the next try goes there: this
    /// node's own Raft may keep naming a leader of the past for as long as it hears from
    /// no one (a learner removed from the membership), and the node it names answers
    /// "not the leader" without forwarding again.
    pub async fn write(&self, command: Command) -> Result<Reply, WriteError> {
        let deadline = Instant::now() + self.leader_wait;
        let mut redirect: Option<NodeId> = None;
        // Redirects in a row: two nodes that name each other do not spin.
        let mut hops = 0;
        loop {
            let redirected = match redirect.take() {
                Some(leader) => self.node_of(leader).await.map(|node| (leader, node)),
                None => None,
            };
            let (tried, error) = match redirected {
                Some((leader, node)) => match self.forward(leader, &node, &command).await {
                    Ok(reply) => return Ok(reply),
                    Err(Retry::No(error)) => return Err(error),
                    Err(Retry::Yes(error)) => (Some(leader), error),
                },
                None => match self.proposer.propose(command.clone()).await {
                    Local::Applied(reply) => return Ok(reply),
                    Local::Failed(reason) => return Err(WriteError::Raft { reason }),
                    Local::NotCommitted { waited_ms } => {
                        return Err(WriteError::NotCommitted { waited_ms })
                    }
                    Local::NoLeader => match self.hinted_leader().await {
                        None => (None, WriteError::NoLeader),
                        Some((leader, node)) => match self.forward(leader, &node, &command).await {
                            Ok(reply) => return Ok(reply),
                            Err(Retry::No(error)) => return Err(error),
                            Err(Retry::Yes(error)) => (Some(leader), error),
                        },
                    },
                    Local::Forward(leader, node) => {
                        match self.forward(leader, &node, &command).await {
                            Ok(reply) => return Ok(reply),
                            Err(Retry::No(error)) => return Err(error),
                            Err(Retry::Yes(error)) => (Some(leader), error),
                        }
                    }
                },
            };
            if let WriteError::NotLeader { leader: Some(named) } = &error {
                if Some(*named) != tried {
                    redirect = Some(*named);
                }
            }
            hops = if redirect.is_some() { hops + 1 } else { 0 };
            let now = Instant::now();
            if now >= deadline {
                return Err(error);
            }
            debug!(error = %error, redirect = ?redirect, "write not placed yet, retrying");
            if redirect.is_none() || hops > 2 {
                tokio::time::sleep((deadline - now).min(Duration::from_millis(50))).await;
            }
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        node: &NodeInfo,
        command: &Command,
    ) -> Result<Reply, Retry> {
        let reply: Result<Reply, WriteError> =
            self.rpc.call(&node.addr, WRITE_PATH, command, FORWARD_TIMEOUT).await.map_err(
                |error| match error {
                    RpcError::Encode { reason } => Retry::No(WriteError::Raft { reason }),
                    error => {
                        let retry = error.is_connect();
                        let error = WriteError::LeaderUnreachable {
                            leader,
                            addr: node.addr.clone(),
                            reason: error.to_string(),
                        };
                        if retry {
                            Retry::Yes(error)
                        } else {
                            Retry::No(error)
                        }
                    }
                },
            )?;
        reply.map_err(|error| match error {
            WriteError::NotLeader { .. } | WriteError::NoLeader => Retry::Yes(error),
            other => Retry::No(other),
        })
    }
}

/// Handles a write forwarded by another node: applies it here if this node leads.
#[instrument(level = "debug", skip_all)]
pub(super) async fn write(
    State(proposer): State<Proposer>,
    Codec(command): Codec<Command>,
) -> CodecReply<Result<Reply, WriteError>> {
    let reply = match proposer.propose(command).await {
        Local::Applied(reply) => Ok(reply),
        Local::Forward(leader, _) => Err(WriteError::NotLeader { leader: Some(leader) }),
        Local::NoLeader => Err(WriteError::NotLeader { leader: None }),
        Local::Failed(reason) => Err(WriteError::Raft { reason }),
        Local::NotCommitted { waited_ms } => Err(WriteError::NotCommitted { waited_ms }),
    };
    CodecReply(reply)
}
