//! Servers and clients: a server (a Raft member) answers the public API from its
//! replica; a client (every other node) passes each request to a server and streams the
//! answer back, so that any node serves the whole API and the dashboard.
//!
//! - Writes go to the newest leader gossip shows, reads to the servers in an order of
//!   their own for each client (rendezvous hashing), so that clients spread over them.
//! - Every answer names the server whose replica it comes from ([`SERVED_BY`]) and the
//!   log index that replica had applied ([`APPLIED`]). A client sends the highest index
//!   it has passed on ([`MIN_APPLIED`]); a server behind it waits a moment, then refuses
//!   ([`RETRY`]), and the client asks the next server: a client never answers older than
//!   it answered before.
//! - A request is passed to another server only when the first certainly did not act on
//!   it (no connection, or refused as behind): a rerun is never queued twice.
//! - With no server reachable, the client answers 503 with each server's reason.
//!
//! ```text
//!   request ─> client? ──no──> [MIN_APPLIED? wait] ─> handler ─> + SERVED_BY, APPLIED
//!                 └─yes─> servers (gossip) ─> first that answers ─> stream back, note APPLIED
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventide_consensus::NodeId;
use tokio::sync::watch;
use tracing::debug;

use super::ApiError;
use crate::gossip::{Gossip, Member, RaftRole};
use crate::health::Phase;
use crate::raft_view::RaftView;

/// The id of the server whose replica answered.
pub const SERVED_BY: &str = "x-eventide-served-by";
/// The log index the answering server had applied when it answered.
pub const APPLIED: &str = "x-eventide-applied";
/// Sent by a client: answer from a replica that applied at least this index.
pub const MIN_APPLIED: &str = "x-eventide-min-applied";
/// Sent by a client, with its id: a server that is no server (any more) refuses the
/// request instead of passing it on again.
pub const FORWARDED_BY: &str = "x-eventide-forwarded-by";
/// On a server's refusal that a client may take to another server (the request was not
/// acted on): `behind` or `not-a-server`.
pub const RETRY: &str = "x-eventide-retry";

/// How long a server behind a client's index waits to catch up before refusing.
const CATCH_UP: Duration = Duration::from_secs(1);
/// How long a client waits for a server's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client waits for a server's answer to begin (a log streams after).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Servers a client tries per request.
const ATTEMPTS: usize = 3;

/// Headers that belong to one connection, not to the request or answer passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Decides per request whether this node answers or asks a server.
pub struct Proxy {
    me: NodeId,
    phase: watch::Receiver<Phase>,
    raft: RaftView,
    gossip: Arc<Gossip>,
    http: reqwest::Client,
    /// The highest applied index of any answer this node passed on.
    seen: AtomicU64,
    /// The largest request body passed on.
    body_limit: usize,
}

/// An answer from a server, with which server gave it.
pub struct Forwarded {
    pub response: reqwest::Response,
    pub server: Member,
}

impl Proxy {
    pub fn new(
        me: NodeId,
        phase: watch::Receiver<Phase>,
        raft: RaftView,
        gossip: Arc<Gossip>,
        body_limit: usize,
    ) -> anyhow::Result<Proxy> {
        let http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build()?;
        Ok(Proxy { me, phase, raft, gossip, http, seen: AtomicU64::new(0), body_limit })
    }

    /// Whether this node answers from its own replica: it is a Raft member the leader
    /// counts among its servers.
    pub fn is_server(&self) -> bool {
        self.phase.borrow().role != RaftRole::None
    }

    /// Why this node cannot answer for the cluster yet, if it is still forming one.
    pub fn waiting(&self) -> Option<String> {
        self.phase.borrow().waiting.clone()
    }

    /// Passes a request to a server: the leader first for a write, else this client's
    /// order of the servers. Tries the next server only when the previous one certainly
    /// did not act on the request.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Forwarded, ApiError> {
        let members = self.gossip.members().await;
        let me = self.me;
        let write = !matches!(method, Method::GET | Method::HEAD);
        let mut servers = crate::gossip::servers(&members, |id| rendezvous(me, id));
        if !write {
            servers.sort_by_key(|m| rendezvous(me, m.id));
        }
        servers.retain(|m| m.id != me);
        if servers.is_empty() {
            let why = self.waiting().unwrap_or_else(|| "gossip shows no live server".to_owned());
            return Err(unavailable(format!(
                "this node is a client and no server is known: {why}"
            )));
        }
        let mut reasons = Vec::new();
        for server in servers.into_iter().take(ATTEMPTS) {
            let url = format!("http://{}{}", server.addr, path_and_query);
            let mut request = self.http.request(method.clone(), url).body(body.clone());
            for (name, value) in headers {
                if !is_hop_by_hop(name) && name != axum::http::header::HOST {
                    request = request.header(name, value);
                }
            }
            let seen = self.seen.load(Ordering::Acquire);
            request =
                request.header(MIN_APPLIED, seen.to_string()).header(FORWARDED_BY, me.to_string());
            let sent = tokio::time::timeout(ANSWER_TIMEOUT, request.send()).await;
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(error)) if error.is_connect() => {
                    reasons.push(format!("{} ({}): {}", server.name, server.addr, error));
                    continue;
                }
                Ok(Err(error)) => {
                    return Err(bad_gateway(server, &error.to_string(), write));
                }
                Err(_) => return Err(bad_gateway(server, "no answer in time", write)),
            };
            if let Some(retry) = response.headers().get(RETRY) {
                let retry = retry.to_str().unwrap_or("refused").to_owned();
                debug!(peer = %server.id, retry, "server refused a forwarded request; trying the next");
                reasons.push(format!("{} ({}): {}", server.name, server.addr, retry));
                continue;
            }
            if let Some(applied) = header_u64(response.headers(), APPLIED) {
                self.seen.fetch_max(applied, Ordering::AcqRel);
            }
            return Ok(Forwarded { response, server: server.clone() });
        }
        Err(unavailable(format!("no server answered: {}", reasons.join("; "))))
    }
}

/// The middleware of the routes that read the replica or write through the leader. On
/// a server: waits for a client's index, answers, and says who answered and how far it
/// had applied. On a client: passes the request to a server.
pub async fn serve_or_forward(
    State(proxy): State<Arc<Proxy>>,
    request: Request,
    next: Next,
) -> Response {
    // A server asking this node for the log of a job it ran here.
    let local_only = request.uri().path().ends_with("/log")
        && request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "local=true"));
    if proxy.is_server() || local_only {
        return answer(&proxy, request, next).await;
    }
    if request.headers().contains_key(FORWARDED_BY) {
        // Passed on by a client that took this node for a server: never pass it on again.
        return refuse_retry("not-a-server", "this node is not a server (any more)");
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, proxy.body_limit).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                .into_response()
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match proxy.forward(parts.method.clone(), path, &parts.headers, body).await {
        Ok(forwarded) => into_response(forwarded.response),
        Err(error) => error.into_response(),
    }
}

async fn answer(proxy: &Proxy, request: Request, next: Next) -> Response {
    if let Some(min) = header_u64(request.headers(), MIN_APPLIED) {
        if !proxy.raft.wait_applied(min, CATCH_UP).await {
            let applied = proxy.raft.status().applied_index;
            return refuse_retry(
                "behind",
                &format!("this server has applied index {applied}, the client has seen {min}"),
            );
        }
    }
    let mut response = next.run(request).await;
    // Read after the handler: the answer is at most this new, never newer.
    let applied = proxy.raft.status().applied_index;
    let headers = response.headers_mut();
    headers.insert(SERVED_BY, HeaderValue::from(proxy.me.0));
    headers.insert(APPLIED, HeaderValue::from(applied));
    response
}

fn refuse_retry(retry: &'static str, message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    response.headers_mut().insert(RETRY, HeaderValue::from_static(retry));
    response
}

/// A server's answer as this node's, its body streamed.
pub fn into_response(response: reqwest::Response) -> Response {
    let status = response.status();
    // The body is passed on as it comes (a followed log streams), so its length is the
    // new connection's business.
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name) && name != axum::http::header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut answer = Response::new(streamed(response));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// Another node's answer body as this node's, passed on chunk by chunk as it arrives.
pub fn streamed(response: reqwest::Response) -> Body {
    let chunks = futures_util::stream::unfold(Some(response), |response| async move {
        let mut response = response?;
        match response.chunk().await {
            Ok(Some(bytes)) => Some((Ok::<Bytes, std::io::Error>(bytes), Some(response))),
            Ok(None) => None,
            Err(error) => Some((Err(std::io::Error::other(error)), None)),
        }
    });
    Body::from_stream(chunks)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

fn bad_gateway(server: &Member, reason: &str, write: bool) -> ApiError {
    let maybe = if write { "; the write may or may not have happened" } else { "" };
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("server {} ({}) did not answer: {reason}{maybe}", server.name, server.addr),
    )
}

/// A client's rank of a server (smaller first): the same client always orders the
/// servers the same way, and different clients spread over them.
fn rendezvous(client: NodeId, server: NodeId) -> u64 {
    // splitmix64's finaliser over both ids: cheap, well mixed, no randomness.
    let mut x = client.0 ^ server.0.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_order_servers_each_their_own_stable_way() {
        let servers: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let order = |client: u64| {
            let mut order = servers.clone();
            order.sort_by_key(|s| rendezvous(NodeId(client), *s));
            order
        };
        assert_eq!(order(100), order(100));
        let firsts: std::collections::BTreeSet<NodeId> = (100..200).map(|c| order(c)[0]).collect();
        assert_eq!(firsts.len(), 5, "a hundred clients start at every server");
    }

    #[test]
    fn connection_headers_are_not_passed_on() {
        assert!(is_hop_by_hop(&HeaderName::from_static("connection")));
        assert!(is_hop_by_hop(&HeaderName::from_static("transfer-encoding")));
        assert!(!is_hop_by_hop(&HeaderName::from_static("authorization")));
        assert!(!is_hop_by_hop(&HeaderName::from_static("content-type")));
    }
}
