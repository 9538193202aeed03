//! The client side of Raft RPC: openraft's `RaftNetworkFactory` over HTTP.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, PayloadTooLarge, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::debug;

use super::plausible::{self, Problem};
use super::{APPEND_PATH, CODEC_CONTENT_TYPE, SNAPSHOT_PATH, VOTE_PATH};
use crate::auth::Signer;
use crate::codec::{self, MESSAGE_LIMIT};
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, NodeId, NodeInfo, RaftError, RpcError, TypeConfig, VoteRequest,
    VoteResponse,
};

/// Makes one [`HttpConnection`] per peer; all share one pooled HTTP client.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
    errors: RpcErrors,
    signer: Signer,
}

/// Outgoing Raft RPCs that failed in transport (peer unreachable, timeout, bad answer),
/// by RPC, for the node's metrics. A remote Raft error is an answer, not counted here.
/// Clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct RpcErrors(Arc<[AtomicU64; 3]>);

impl RpcErrors {
    /// The RPC names, in the order [`RpcErrors::counts`] reports them.
    pub const RPCS: [&'static str; 3] = ["append", "vote", "snapshot"];

    fn record(&self, path: &str) {
        let index = match path {
            APPEND_PATH => 0,
            VOTE_PATH => 1,
            _ => 2,
        };
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Failures so far, by RPC name.
    pub fn counts(&self) -> [(&'static str, u64); 3] {
        let mut counts = [("", 0); 3];
        for (index, name) in Self::RPCS.into_iter().enumerate() {
            counts[index] = (name, self.0[index].load(Ordering::Relaxed));
        }
        counts
    }
}

impl HttpNetwork {
    /// A network whose connections keep idle HTTP connections alive between heartbeats,
    /// signing every request with `signer`.
    pub fn new(signer: Signer) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(HttpNetwork { client, errors: RpcErrors::default(), signer })
    }

    /// The failure counts of every connection this network makes.
    pub fn errors(&self) -> RpcErrors {
        self.errors.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> HttpConnection {
        HttpConnection {
            client: self.client.clone(),
            signer: self.signer.clone(),
            target,
            addr: node.addr.clone(),
            errors: self.errors.clone(),
        }
    }
}

/// The connection to one peer. Connecting is lazy: a dead peer shows up as
/// `Unreachable` on the first call, and openraft backs off.
pub struct HttpConnection {
    client: reqwest::Client,
    signer: Signer,
    target: NodeId,
    addr: String,
    errors: RpcErrors,
}

impl HttpConnection {
    /// [`HttpConnection::send`], counting transport failures.
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: StdError + DeserializeOwned,
    {
        let result = self.send(path, request, timeout).await;
        if let Err(RpcError::Network(_) | RpcError::Unreachable(_)) = &result {
            self.errors.record(path);
        }
        result
    }

    async fn send<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: StdError + DeserializeOwned,
    {
        let body = codec::encode(request).map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
        let url = format!("http://{}{}", self.addr, path);
        let request = self.signer.sign_post(self.client.post(&url), path, &body);
        let response = request
            .header(reqwest::header::CONTENT_TYPE, CODEC_CONTENT_TYPE)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                debug!(peer = %self.target, addr = %self.addr, error = %e, "raft rpc failed");
                if e.is_connect() {
                    RpcError::Unreachable(Unreachable::new(&e))
                } else {
                    RpcError::Network(NetworkError::new(&e))
                }
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            let error = RemoteRefused { status: status.as_u16(), text };
            return Err(RpcError::Network(NetworkError::new(&error)));
        }
        let reply: Result<Resp, RaftError<E>> =
            codec::decode(&bytes).map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
        reply.map_err(|e| RpcError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A peer answered with an HTTP error instead of a Raft reply.
#[derive(Debug, thiserror::Error)]
#[error("peer answered HTTP {status}: {text}")]
struct RemoteRefused {
    status: u16,
    text: String,
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
    answer: Result<T, RpcError<E>>,
    check: impl FnOnce(&T) -> Result<(), Problem>,
) -> Result<T, RpcError<E>> {
    let answer = answer?;
    match check(&answer) {
        Ok(()) => Ok(answer),
        Err(problem) => {
            debug!(problem, "dropped an implausible raft answer");
            Err(RpcError::Network(NetworkError::new(&ImplausibleAnswer { problem })))
        }
    }
}

impl RaftNetwork<TypeConfig> for HttpConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError> {
        // A request the peer would refuse as too large is split by openraft instead.
        let entries = request.entries.len() as u64;
        if entries > 1 {
            let size: usize = request.entries.iter().map(approximate_size).sum();
            if size > MESSAGE_LIMIT / 2 {
                let hint = (entries / 2).max(1);
                return Err(RpcError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
            }
        }
        let answer = self.call(APPEND_PATH, &request, option.hard_ttl()).await;
        plausible_answer(answer, plausible::append_answer)
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<InstallSnapshotError>> {
        let answer = self.call(SNAPSHOT_PATH, &request, option.hard_ttl()).await;
        plausible_answer(answer, |answer: &InstallSnapshotResponse| {
            plausible::answered_vote(&answer.vote)
        })
    }

    async fn vote(
        &mut self,
        request: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RpcError> {
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
