//! The HTTP side: an axum middleware that refuses unsigned internal requests, and the
//! [`Signer`] that reqwest callers (Raft client, write forwarding, dispatcher RPC, gossip
//! admission) use to sign theirs.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{debug, warn};

use super::replay::ReplayGuard;
use super::secret::Secret;
use super::signature::{
    check_request, sign, Presented, SignedHeaders, NONCE_HEADER, SIGNATURE_HEADER, TIME_HEADER,
};
use super::DEFAULT_WINDOW;
use crate::codec::MESSAGE_LIMIT;

/// How many recent signatures a node remembers (about 100 bytes each).
const REPLAY_CAPACITY: usize = 100_000;

/// Milliseconds since the Unix epoch by the wall clock (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The least time between two warnings about refused requests; the ones between are
/// counted and logged at debug level.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The server side of internal authentication; one per node.
pub struct InternalAuth {
    secret: Option<Secret>,
    window: Duration,
    replay: ReplayGuard,
    /// Per kind of refusal: when the last warning was logged, and refusals of that kind
    /// not warned about since.
    warned: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl InternalAuth {
    /// Checks requests with `secret`, or lets everything through without one.
    pub fn new(secret: Option<Secret>) -> Arc<InternalAuth> {
        Arc::new(InternalAuth {
            secret,
            window: DEFAULT_WINDOW,
            replay: ReplayGuard::new(REPLAY_CAPACITY),
            warned: Mutex::new(HashMap::new()),
        })
    }

    /// Whether to warn about a refusal of `kind` now (at most once per
    /// [`WARN_INTERVAL`] per kind), and how many went unwarned before it.
    fn should_warn(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match warned.get_mut(kind) {
            Some((last, suppressed)) if now.duration_since(*last) < WARN_INTERVAL => {
                *suppressed += 1;
                None
            }
            entry => {
                let suppressed = entry.map_or(0, |(_, suppressed)| *suppressed);
                warned.insert(kind, (now, 0));
                Some(suppressed)
            }
        }
    }
}

/// Middleware for the `/internal/` routes:
/// `router.layer(axum::middleware::from_fn_with_state(auth, require_signature))`.
/// Answers 401 (and logs a warning) for a request that is not signed with the secret.
pub async fn require_signature(
    State(auth): State<Arc<InternalAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = &auth.secret else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_owned();
    let body: Bytes = match axum::body::to_bytes(body, MESSAGE_LIMIT + 1).await {
        Ok(bytes) => bytes,
        Err(error) => {
            warn!(path, error = %error, "refused internal rpc: unreadable or too large body");
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let presented = Presented {
        time: header(TIME_HEADER),
        nonce: header(NONCE_HEADER),
        signature: header(SIGNATURE_HEADER),
    };
    let method = parts.method.as_str();
    let checked =
        check_request(secret, &auth.replay, auth.window, method, &path, presented, &body, now_ms());
    if let Err(error) = checked {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
        let peer = peer.map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
        match auth.should_warn(error.kind(), Instant::now()) {
            Some(suppressed) => warn!(
                peer = %peer,
                path = %path,
                method,
                error = %error,
                suppressed,
                "refused unauthenticated internal rpc"
            ),
            None => debug!(
                peer = %peer,
                path = %path,
                method,
                error = %error,
                "refused unauthenticated internal rpc"
            ),
        }
        return (StatusCode::UNAUTHORIZED, format!("unauthenticated: {error}")).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Signs outgoing internal requests; without a secret it leaves them as they are.
/// Cheap to clone (clones share the nonce counter).
#[derive(Clone)]
pub struct Signer {
    secret: Option<Secret>,
    /// Random per signer, so that nonces of different processes do not collide.
    nonce_prefix: u64,
    counter: Arc<AtomicU64>,
}

impl Signer {
    pub fn new(secret: Option<Secret>) -> Signer {
        // RandomState is seeded from the operating system's randomness.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(now_ms());
        Signer { secret, nonce_prefix: hasher.finish(), counter: Arc::new(AtomicU64::new(0)) }
    }

    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The headers for a request sent now, if there is a secret.
    pub fn headers(&self, method: &str, path: &str, body: &[u8]) -> Option<SignedHeaders> {
        let secret = self.secret.as_ref()?;
        let nonce = format!(
            "{:016x}{:016x}",
            self.nonce_prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        Some(sign(secret, method, path, now_ms(), &nonce, body))
    }

    /// Adds the signature headers to a POST of `body` to `path`.
    pub fn sign_post(
        &self,
        builder: reqwest::RequestBuilder,
        path: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        match self.headers("POST", path, body) {
            Some(headers) => builder
                .header(TIME_HEADER, headers.time)
                .header(NONCE_HEADER, headers.nonce)
                .header(SIGNATURE_HEADER, headers.signature),
            None => builder,
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("secret", &self.secret).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_warned_about_at_most_once_a_second() {
        let auth = InternalAuth::new(None);
        let start = Instant::now();
        assert_eq!(auth.should_warn("bad", start), Some(0));
        assert_eq!(auth.should_warn("bad", start + Duration::from_millis(10)), None);
        assert_eq!(auth.should_warn("stale", start + Duration::from_millis(10)), Some(0));
        assert_eq!(auth.should_warn("bad", start + Duration::from_millis(20)), None);
        assert_eq!(auth.should_warn("bad", start + WARN_INTERVAL), Some(2));
    }

    #[test]
    fn signers_never_repeat_a_nonce() {
        let secret = Secret::try_new(b"a cluster secret of some length").expect("valid");
        let signer = Signer::new(Some(secret));
        let copy = signer.clone();
        let a = signer.headers("POST", "/p", b"x").expect("signed");
        let b = copy.headers("POST", "/p", b"x").expect("signed");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.signature, b.signature);
        assert!(Signer::new(None).headers("POST", "/p", b"x").is_none());
    }
}
