//! The wire of every internal call between nodes (Raft, forwarded writes, the
//! dispatcher's claims and renewals, the gossip admission handshake), written once.
//!
//! A call is a signed `POST` of a codec-encoded request under the codec content type;
//! its answer is a 2xx with a codec-encoded reply, or an error status with a text body.
//! [`RpcClient::call`] sends one and sorts its failures into [`RpcError`], counting them
//! per RPC in [`RpcErrors`]; on the answering side, [`Codec`] decodes a request (or
//! answers 400 `malformed request: <reason>`) and [`CodecReply`] encodes a reply.
//!
//! ```text
//!  RpcClient::call ── encode, sign, POST ──> Codec<T> ── handler ──> CodecReply<R>
//!        ▲                                  └ 400 malformed request: <reason>
//!        └── status, decode <── answer ─────────────────────────────────┘
//! ```

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use super::CODEC_CONTENT_TYPE;
use crate::auth::Signer;
use crate::codec;

/// How much of an error answer's body an [`RpcError`] keeps.
const BODY_EXCERPT: usize = 512;
/// How long a connection may take to open, unless a client asks for another limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an idle pooled connection is kept (heartbeats reuse it).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an internal call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("failed to encode the request: {reason}")]
    Encode { reason: String },
    /// The peer could not be dialled: the request certainly was not received.
    #[error("failed to connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The request may have been received, but no whole answer came back.
    #[error("the connection to {addr} broke: {reason}")]
    Broken { addr: String, reason: String },
    /// The peer refused the caller (401 or 403): it is up, but does not take this call
    /// from this node (another secret, or a request not meant for it).
    #[error("HTTP {status}: {body_excerpt}")]
    Refused { status: u16, body_excerpt: String },
    /// Any other answer outside 2xx.
    #[error("HTTP {status}: {body_excerpt}")]
    Status { status: u16, body_excerpt: String },
    #[error("failed to decode the answer: {reason}")]
    Decode { reason: String },
}

impl RpcError {
    /// True when the peer could not be dialled, so the call certainly did not happen
    /// and may be retried (elsewhere, or later) without running twice.
    pub fn is_connect(&self) -> bool {
        matches!(self, RpcError::Connect { .. })
    }

    /// True when the peer answered, but refused the caller.
    pub fn is_refused(&self) -> bool {
        matches!(self, RpcError::Refused { .. })
    }

    fn from_status(status: StatusCode, body: &[u8]) -> RpcError {
        let body_excerpt = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
        let (status, body_excerpt) = (status.as_u16(), body_excerpt.into_owned());
        match status {
            401 | 403 => RpcError::Refused { status, body_excerpt },
            _ => RpcError::Status { status, body_excerpt },
        }
    }

    fn from_transport(error: reqwest::Error, addr: &str, timeout: Duration) -> RpcError {
        let addr = addr.to_owned();
        if error.is_connect() {
            RpcError::Connect { addr, reason: with_sources(&error) }
        } else if error.is_timeout() {
            RpcError::Timeout { addr, timeout }
        } else {
            RpcError::Broken { addr, reason: with_sources(&error) }
        }
    }
}

/// An error and its causes on one line (reqwest keeps the useful part in the causes).
fn with_sources(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Failed internal calls sent by a node, by RPC (the last segment of its path:
/// `append`, `claim`, …), for the node's metrics. Clones share the counts. A call
/// counts when [`RpcClient::call`] returns an error; an answer that carries the remote
/// side's own error (a Raft error, a refused write) is an answer and does not count.
#[derive(Clone, Debug, Default)]
pub struct RpcErrors(Arc<Mutex<BTreeMap<String, u64>>>);

impl RpcErrors {
    /// The name an RPC is counted under: the last segment of its path.
    pub fn rpc_name(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }

    /// Lists the RPCs of `paths` in [`RpcErrors::counts`] even before they fail.
    pub fn expect(&self, paths: &[&str]) {
        let mut counts = self.lock();
        for path in paths {
            counts.entry(Self::rpc_name(path).to_owned()).or_insert(0);
        }
    }

    /// One failed call to `path`.
    pub fn record(&self, path: &str) {
        let name = Self::rpc_name(path);
        let mut counts = self.lock();
        match counts.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                counts.insert(name.to_owned(), 1);
            }
        }
    }

    /// Failures so far, by RPC name, in name order.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.lock().iter().map(|(name, count)| (name.clone(), *count)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A poisoned lock only means a panic elsewhere; the counts stay usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sends internal calls: one HTTP connection pool, the node's [`Signer`] and failure
/// counts. Cheap to clone (clones share all three).
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    signer: Signer,
    errors: RpcErrors,
}

/// How a client's connections are made.
#[derive(Clone, Copy, Debug)]
struct Connections {
    connect_timeout: Duration,
    /// Whether idle connections are kept for the next call.
    pooled: bool,
}

impl RpcClient {
    /// A client that keeps idle connections alive between calls (heartbeats), with
    /// counts of its own.
    pub fn new(signer: Signer) -> Result<RpcClient, reqwest::Error> {
        let connections = Connections { connect_timeout: CONNECT_TIMEOUT, pooled: true };
        RpcClient::build(signer, RpcErrors::default(), connections)
    }

    /// A client that opens a new connection for every call, with counts of its own: a
    /// call to a peer that just died then fails to connect (certainly not received)
    /// rather than breaking on a stale connection (maybe received).
    pub fn unpooled(signer: Signer) -> Result<RpcClient, reqwest::Error> {
        let connections = Connections { connect_timeout: CONNECT_TIMEOUT, pooled: false };
        RpcClient::build(signer, RpcErrors::default(), connections)
    }

    /// A client with the same signer and counts, whose connections may take up to
    /// `connect_timeout` to open (a pool of its own).
    pub fn with_connect_timeout(
        &self,
        connect_timeout: Duration,
    ) -> Result<RpcClient, reqwest::Error> {
        let connections = Connections { connect_timeout, pooled: true };
        RpcClient::build(self.signer.clone(), self.errors.clone(), connections)
    }

    fn build(
        signer: Signer,
        errors: RpcErrors,
        connections: Connections,
    ) -> Result<RpcClient, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(connections.connect_timeout);
        let builder = if connections.pooled {
            builder.pool_idle_timeout(POOL_IDLE_TIMEOUT)
        } else {
            builder.pool_max_idle_per_host(0)
        };
        Ok(RpcClient { http: builder.build()?, signer, errors })
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The failure counts of this client (and of those that share them).
    pub fn errors(&self) -> RpcErrors {
        self.errors.clone()
    }

    /// Calls `path` on the node at `addr` (`host:port`) with `request`, waiting at most
    /// `timeout` for the whole answer. A failure is counted and logged (debug) here.
    pub async fn call<Req, Resp>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let result = async {
            let body =
                codec::encode(request).map_err(|e| RpcError::Encode { reason: e.to_string() })?;
            let post = self.http.post(format!("http://{addr}{path}"));
            let response = self
                .signer
                .sign_post(post, path, &body)
                .header(header::CONTENT_TYPE, CODEC_CONTENT_TYPE)
                .timeout(timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| RpcError::from_transport(e, addr, timeout))?;
            let status = response.status();
            let bytes =
                response.bytes().await.map_err(|e| RpcError::from_transport(e, addr, timeout))?;
            if !status.is_success() {
                return Err(RpcError::from_status(status, &bytes));
            }
            codec::decode(&bytes).map_err(|e| RpcError::Decode { reason: e.to_string() })
        }
        .await;
        if let Err(error) = &result {
            self.errors.record(path);
            debug!(peer = %addr, path, error = %error, "internal rpc failed");
        }
        result
    }
}

/// Names the RPCs of a router in the log line of a refused request (`raft` gives
/// "refused malformed raft rpc"): a router adds it as an `Extension` layer.
#[derive(Clone, Copy, Debug)]
pub struct RpcService(pub &'static str);

/// A request body decoded with the codec. A body that does not decode is answered 400
/// `malformed request: <reason>` and logged; bad input is refused, never a panic.
#[derive(Debug)]
pub struct Codec<T>(pub T);

impl<T, S> FromRequest<S> for Codec<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Codec<T>, Response> {
        let path = request.uri().path().to_owned();
        let service = request.extensions().get::<RpcService>().map_or("internal", |s| s.0);
        let body =
            Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        decode_request(service, &path, &body).map(Codec)
    }
}

/// Decodes the body of a request to `path` as [`Codec`] does, or gives its 400 answer
/// and logs why (`service` names the RPCs in the log line).
#[allow(clippy::result_large_err)]
pub fn decode_request<T: DeserializeOwned>(
    service: &str,
    path: &str,
    body: &[u8],
) -> Result<T, Response> {
    codec::decode(body).map_err(|error| {
        warn!(path, error = %error, bytes = body.len(), "refused malformed {service} rpc");
        (StatusCode::BAD_REQUEST, format!("malformed request: {error}")).into_response()
    })
}

/// A reply encoded with the codec, under the codec content type.
#[derive(Debug)]
pub struct CodecReply<T>(pub T);

impl<T: Serialize> IntoResponse for CodecReply<T> {
    fn into_response(self) -> Response {
        match codec::encode(&self.0) {
            Ok(bytes) => ([(header::CONTENT_TYPE, CODEC_CONTENT_TYPE)], bytes).into_response(),
            Err(error) => {
                warn!(error = %error, "failed to encode an rpc reply");
                (StatusCode::INTERNAL_SERVER_ERROR, "failed to encode reply").into_response()
            }
        }
    }
}

#[cfg(test)]
#[path = "rpc_test.rs"]
mod tests;
