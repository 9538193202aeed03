//! The client side of Raft RPC: openraft's `RaftNetworkFactory` over HTTP.

use std::error::Error as StdError;
use std::time::Duration;

use openraft::error::{NetworkError, PayloadTooLarge, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::debug;

use super::plausible::{self, Problem};
use super::rpc::{RpcClient, RpcErrors};
use super::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};
use crate::auth::Signer;
use crate::codec::{self, MESSAGE_LIMIT};
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, NodeId, NodeInfo, RaftError, RpcError as RaftRpcError, TypeConfig,
    VoteRequest, VoteResponse,
};

/// Makes one [`HttpConnection`] per peer; all share one [`RpcClient`].
#[derive(Clone)]
pub struct HttpNetwork {
    rpc: RpcClient,
}

impl HttpNetwork {
    /// A network whose connections keep idle HTTP connections alive between heartbeats,
    /// signing every request with `signer`.
    pub fn new(signer: Signer) -> Result<Self, reqwest::Error> {
        Ok(HttpNetwork::with_client(RpcClient::new(signer)?))
    }

    /// A network that sends through `rpc`, counting its failures with the client's
    /// (append, vote and snapshot are listed from the start, at zero).
    pub fn with_client(rpc: RpcClient) -> Self {
        rpc.errors().expect(&[APPEND_PATH, VOTE_PATH, SNAPSHOT_PATH]);
        HttpNetwork { rpc }
    }

    /// The failure counts of every connection this network makes (shared with the
    /// client it was given).
    pub fn errors(&self) -> RpcErrors {
        self.rpc.errors()
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> HttpConnection {
        HttpConnection { rpc: self.rpc.clone(), target, addr: node.addr.clone() }
    }
}

/// The connection to one peer. Connecting is lazy: a dead peer shows up as
/// `Unreachable` on the first call, and openraft backs off.
pub struct HttpConnection {
    rpc: RpcClient,
    target: NodeId,
    addr: String,
}

impl HttpConnection {
    /// Calls `path` on the peer. The answer is the remote call's own result, so a Raft
    /// error travels back as `RemoteError`; a peer that could not be dialled is
    /// `Unreachable`, and every other failure a `NetworkError`.
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RaftRpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: StdError + DeserializeOwned,
    {
        let reply: Result<Resp, RaftError<E>> =
            self.rpc.call(&self.addr, path, request, timeout).await.map_err(|error| {
                if error.is_connect() {
                    RaftRpcError::Unreachable(Unreachable::new(&error))
                } else {
                    RaftRpcError::Network(NetworkError::new(&error))
                }
            })?;
        reply.map_err(|e| RaftRpcError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A peer answered with a term or log id no correct peer has (see `plausible`): the
/// answer is dropped as a transport failure rather than handed to openraft.
#[derive(Debug, thiserror::Error)]
#[error("implausible answer: {problem}")]
struct ImplausibleAnswer {
    problem: Problem,
}

/// Turns an implausible answer into a transport error (openraft's error type, as large
/// as it is).
#[allow(clippy::result_large_err)]
fn plausible_answer<T, E: StdError>(
    answer: Result<T, RaftRpcError<E>>,
    check: impl FnOnce(&T) -> Result<(), Problem>,
) -> Result<T, RaftRpcError<E>> {
    let answer = answer?;
    match check(&answer) {
        Ok(()) => Ok(answer),
        Err(problem) => {
            debug!(problem, "dropped an implausible raft answer");
            Err(RaftRpcError::Network(NetworkError::new(&ImplausibleAnswer { problem })))
        }
    }
}

impl RaftNetwork<TypeConfig> for HttpConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RaftRpcError> {
        // A request the peer would refuse as too large is split by openraft instead.
        let entries = request.entries.len() as u64;
        if entries > 1 {
            let size: usize = request.entries.iter().map(approximate_size).sum();
            if size > MESSAGE_LIMIT / 2 {
                let hint = (entries / 2).max(1);
                return Err(RaftRpcError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
            }
        }
        let answer = self.call(APPEND_PATH, &request, option.hard_ttl()).await;
        plausible_answer(answer, plausible::append_answer)
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RaftRpcError<InstallSnapshotError>> {
        let answer = self.call(SNAPSHOT_PATH, &request, option.hard_ttl()).await;
        plausible_answer(answer, |answer: &InstallSnapshotResponse| {
            plausible::answered_vote(&answer.vote)
        })
    }

    async fn vote(
        &mut self,
        request: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RaftRpcError> {
        let answer = self.call(VOTE_PATH, &request, option.hard_ttl()).await;
        plausible_answer(answer, plausible::vote_answer)
    }

    /// Retry an unreachable peer every 100 ms rather than openraft's 500 ms: a node that
    /// restarts must hear the leader before its own election timeout (150 ms by default)
    /// fires, or it starts an election that disturbs the whole cluster.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}

/// How long openraft waits before retrying a peer that could not be dialled.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(100);

/// The encoded size of an entry, or a size that forces a split if it cannot be encoded
/// (the real encode then reports the error).
fn approximate_size(entry: &crate::types::Entry) -> usize {
    codec::encode(entry).map_or(MESSAGE_LIMIT, |bytes| bytes.len())
}
