//! Gossip admission: with a cluster secret, chitchat's UDP transport is wrapped so that
//! datagrams from (and to) an address that has not proven the secret are dropped.
//!
//! chitchat offers no hook to sign its datagrams, so the proof happens beside it, over
//! TCP on the same port: the first datagram to or from an unknown address starts a
//! handshake (`protocol::admit`: a signed request bound to both ends, answered with an HMAC
//! of the request). Until the handshake succeeds, that address's datagrams are
//! dropped. The answering side admits the asker too, once it has checked that the
//! request is for itself and comes from the asker's host. Admitted addresses expire and
//! are proven again; failed handshakes are retried at most once per
//! [`RETRY_AFTER_FAILURE`] per address, and only [`MAX_PENDING`] run at once.
//!
//! UDP sources can be spoofed, so gossip stays a source of hints: membership changes
//! (autopilot) prove the peer again with [`Gate::prove`] before adding it.
//!
//! Rolling upgrade: the handshake of older versions (`POST /internal/gossip/admit`, bound
//! to neither end) is refused with 410, and they answer this one with 404, so gossip
//! between an upgraded node and an older one stops until both run this version (Raft,
//! which the handshake does not gate, carries on). Upgrade nodes in quick succession,
//! well within `--dead-voter-grace`, or raise it for the upgrade.
//!
//! ```text
//!  datagram from X ─> Admissions::on_datagram ─> Pass ──────────────> chitchat
//!                                              └> Drop + handshake ─> POST X/internal/gossip/v2/admit
//!                                                                     proof ok ─> admit(X)
//! ```

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use chitchat::ChitchatEnvelope;
use eventide_consensus::auth::Secret;
use eventide_consensus::network::{Codec, CodecReply, RpcClient, RpcService};
use eventide_node::protocol::admit::{
    self as admit_rpc, AdmitRequest, AdmitResponse, ADMIT_PATH, UNBOUND_ADMIT_PATH,
};
use tracing::{debug, error, info, warn};

use super::filter::Filter;

/// How long an admitted address stays admitted.
const ADMITTED_FOR: Duration = Duration::from_secs(10 * 60);
/// The least time between two handshakes with an address that failed one; it doubles
/// with each failure in a row, up to [`MAX_RETRY_AFTER_FAILURE`].
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Handshakes in flight at once; datagrams from further unknown sources are dropped.
pub const MAX_PENDING: usize = 32;
/// Failed addresses remembered (for rate limiting) at most.
const MAX_FAILED: usize = 4096;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Hand it to chitchat (else drop it).
    pub pass: bool,
    /// Start a handshake with the address.
    pub handshake: bool,
}

/// The pure admission table: which addresses have proven the secret, which are being
/// asked, which failed recently. Time is passed in.
#[derive(Debug, Default)]
pub struct Admissions {
    admitted: HashMap<SocketAddr, Instant>,
    pending: HashSet<SocketAddr>,
    /// When the next handshake may start, and the failures in a row.
    failed: HashMap<SocketAddr, (Instant, u32)>,
}

impl Admissions {
    /// A datagram to or from `addr` at `now`.
    pub fn on_datagram(&mut self, addr: SocketAddr, now: Instant) -> Verdict {
        if let Some(&until) = self.admitted.get(&addr) {
            if now < until {
                // Prove it again in the background during the last half of its admission.
                let refresh = now + ADMITTED_FOR / 2 >= until && self.start(addr, now);
                return Verdict { pass: true, handshake: refresh };
            }
            self.admitted.remove(&addr);
        }
        Verdict { pass: false, handshake: self.start(addr, now) }
    }

    /// Whether a handshake with `addr` may start now; marks it pending if so.
    fn start(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if self.pending.contains(&addr) || self.pending.len() >= MAX_PENDING {
            return false;
        }
        if self.failed.get(&addr).is_some_and(|&(retry_at, _)| now < retry_at) {
            return false;
        }
        self.pending.insert(addr);
        true
    }

    /// `addr` proved the secret at `now` (a handshake either way).
    pub fn admit(&mut self, addr: SocketAddr, now: Instant) {
        self.pending.remove(&addr);
        self.failed.remove(&addr);
        self.admitted.insert(addr, now + ADMITTED_FOR);
    }

    /// A handshake with `addr` failed at `now`; true if it is the first failure in a row.
    pub fn fail(&mut self, addr: SocketAddr, now: Instant) -> bool {
        self.pending.remove(&addr);
        if self.failed.len() >= MAX_FAILED {
            self.failed.retain(|_, (retry_at, _)| now < *retry_at);
        }
        let failures = self.failed.get(&addr).map_or(0, |&(_, n)| n).saturating_add(1);
        let backoff = RETRY_AFTER_FAILURE
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_RETRY_AFTER_FAILURE);
        self.failed.insert(addr, (now + backoff, failures));
        failures == 1
    }

    #[cfg(test)]
    pub fn is_admitted(&self, addr: SocketAddr, now: Instant) -> bool {
        self.admitted.get(&addr).is_some_and(|&until| now < until)
    }
}

/// The shared side of admission: the table, the secret, and the client for handshakes.
pub struct Gate {
    secret: Secret,
    /// The node's client (its signer and failure counts), with a connect timeout of
    /// [`HANDSHAKE_TIMEOUT`].
    rpc: RpcClient,
    /// This node's gossip address, as peers see the source of its datagrams (the
    /// advertised address).
    me: SocketAddr,
    /// The addresses a request for this node may name: advertised and listen.
    addresses: [SocketAddr; 2],
    table: Mutex<Admissions>,
}

impl Gate {
    /// `me` is the advertised address, `listen` the one the node binds; handshakes go
    /// through `rpc`, whose signer's secret (if any) turns admission on.
    pub fn new(
        rpc: &RpcClient,
        me: SocketAddr,
        listen: SocketAddr,
    ) -> anyhow::Result<Option<Arc<Gate>>> {
        let Some(secret) = rpc.signer().secret().cloned() else { return Ok(None) };
        let rpc = rpc
            .with_connect_timeout(HANDSHAKE_TIMEOUT)
            .context("failed to build the http client")?;
        let addresses = [me, listen];
        Ok(Some(Arc::new(Gate { secret, rpc, me, addresses, table: Mutex::default() })))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Admissions> {
        // A poisoned lock only means a panic elsewhere; the table stays usable.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides on a datagram to or from `addr`, starting a handshake if needed.
    fn let_through(self: &Arc<Self>, addr: SocketAddr) -> bool {
        let verdict = self.table().on_datagram(addr, Instant::now());
        if verdict.handshake {
            let gate = self.clone();
            tokio::spawn(async move { gate.handshake(addr).await });
        }
        verdict.pass
    }

    async fn handshake(&self, addr: SocketAddr) {
        match self.prove(&addr.to_string()).await {
            Ok(()) => {
                info!(peer = %addr, "gossip peer proved the cluster secret");
                self.table().admit(addr, Instant::now());
            }
            Err(error) => {
                if self.table().fail(addr, Instant::now()) {
                    warn!(peer = %addr, error = %error, "gossip peer failed the admission handshake; dropping its gossip");
                } else {
                    debug!(peer = %addr, error = %error, "gossip admission handshake failed again");
                }
            }
        }
    }

    /// Asks the node at `addr` (TCP) to prove the cluster secret.
    pub async fn prove(&self, addr: &str) -> anyhow::Result<()> {
        let to: SocketAddr =
            addr.parse().with_context(|| format!("{addr} is not an ip address and port"))?;
        let request = AdmitRequest { from: self.me, to, challenge: challenge() };
        let answer: AdmitResponse =
            self.rpc.call(addr, ADMIT_PATH, &request, HANDSHAKE_TIMEOUT).await?;
        if !admit_rpc::verify(&self.secret, &request, &answer) {
            anyhow::bail!("wrong proof");
        }
        Ok(())
    }

    /// The handshake's routes, to be mounted among the signed internal routes (the older
    /// handshake's path only to refuse it).
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(ADMIT_PATH, post(admit))
            .route(UNBOUND_ADMIT_PATH, post(unbound_admit))
            .layer(Extension(RpcService("gossip admission")))
            .with_state(self.clone())
    }
}

/// The peer address of a connection, as the HTTP server records it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// Answers a handshake: the request passed the signature check, so it was made by a
/// holder of the secret; it is answered only if it is for this node, and its sender is
/// admitted only if the request comes from the host it names (see `protocol::admit`).
/// A body that does not decode is answered 400 by [`Codec`].
async fn admit(
    State(gate): State<Arc<Gate>>,
    peer: Peer,
    Codec(request): Codec<AdmitRequest>,
) -> Response {
    let Some(Extension(ConnectInfo(peer))) = peer else {
        error!("the http server records no peer addresses; refusing gossip admission");
        return (StatusCode::INTERNAL_SERVER_ERROR, "no peer address").into_response();
    };
    let request = match admit_rpc::check_addressed(request, &gate.addresses) {
        Ok(request) => request,
        Err(refusal) => {
            warn!(peer = %peer, error = %refusal, "refused a relayed admission request");
            return (StatusCode::FORBIDDEN, refusal.to_string()).into_response();
        }
    };
    if admit_rpc::comes_from(&request, peer.ip()) {
        gate.table().admit(request.from, Instant::now());
        debug!(peer = %request.from, "gossip peer admitted by its handshake");
    } else {
        // Behind NAT, or relayed: this node's own handshake decides about `from`.
        debug!(peer = %peer, from = %request.from, "answered an admission request from another host than it names, without admitting it");
    }
    CodecReply(AdmitResponse { proof: admit_rpc::proof(&gate.secret, &request) }).into_response()
}

/// Refuses the handshake of older versions, which bound neither end (see the module
/// doc for the rolling upgrade).
async fn unbound_admit(peer: Peer) -> Response {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(a))| a.to_string());
    warn!(peer = %peer, "refused the unbound admission handshake of an older version; upgrade that node");
    (StatusCode::GONE, "this node needs the bound admission handshake: upgrade the asking node")
        .into_response()
}

/// Challenges made so far, so that no two are hashed from the same input.
static CHALLENGES: AtomicU64 = AtomicU64::new(0);

/// 32 unpredictable bytes: SipHash under keys the operating system seeded.
fn challenge() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let state = RandomState::new();
    for (index, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(index);
        hasher.write_u64(CHALLENGES.fetch_add(1, Ordering::Relaxed));
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes
}

/// Nothing is told to, or read from, an address that has not proven the secret.
impl Filter for Gate {
    fn lets_out(self: &Arc<Self>, to: SocketAddr, _envelope: &ChitchatEnvelope) -> bool {
        self.let_through(to)
    }

    fn lets_in(self: &Arc<Self>, from: SocketAddr) -> bool {
        self.let_through(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const PASS: Verdict = Verdict { pass: true, handshake: false };
    const DROP: Verdict = Verdict { pass: false, handshake: false };
    const ASK: Verdict = Verdict { pass: false, handshake: true };

    #[test]
    fn an_unknown_source_is_dropped_and_asked_once() {
        let mut table = Admissions::default();
        let now = Instant::now();
        assert_eq!(table.on_datagram(addr(1), now), ASK);
        assert_eq!(table.on_datagram(addr(1), now), DROP);
        table.admit(addr(1), now);
        assert_eq!(table.on_datagram(addr(1), now), PASS);
        assert_eq!(table.on_datagram(addr(2), now), ASK);
    }

    #[test]
    fn failed_handshakes_are_retried_at_most_once_per_period() {
        let mut table = Admissions::default();
        let now = Instant::now();
        assert_eq!(table.on_datagram(addr(1), now), ASK);
        assert!(table.fail(addr(1), now));
        assert_eq!(table.on_datagram(addr(1), now + RETRY_AFTER_FAILURE / 2), DROP);
        assert_eq!(table.on_datagram(addr(1), now + RETRY_AFTER_FAILURE), ASK);
        let later = now + RETRY_AFTER_FAILURE;
        assert!(!table.fail(addr(1), later), "not the first failure");
        // The wait doubles with each failure in a row.
        assert_eq!(table.on_datagram(addr(1), later + RETRY_AFTER_FAILURE), DROP);
        assert_eq!(table.on_datagram(addr(1), later + RETRY_AFTER_FAILURE * 2), ASK);
        table.admit(addr(1), later);
        assert!(table.failed.is_empty());
    }

    #[test]
    fn admissions_expire_and_are_refreshed_before() {
        let mut table = Admissions::default();
        let now = Instant::now();
        table.admit(addr(1), now);
        let late = now + ADMITTED_FOR / 2 + Duration::from_secs(1);
        assert_eq!(table.on_datagram(addr(1), late), Verdict { pass: true, handshake: true });
        assert_eq!(table.on_datagram(addr(1), late), PASS, "one refresh at a time");
        table.fail(addr(1), late);
        assert!(!table.is_admitted(addr(1), now + ADMITTED_FOR));
        assert_eq!(table.on_datagram(addr(1), now + ADMITTED_FOR), ASK, "expired: asked again");
    }

    #[test]
    fn handshakes_in_flight_are_bounded() {
        let mut table = Admissions::default();
        let now = Instant::now();
        for port in 0..MAX_PENDING as u16 {
            assert_eq!(table.on_datagram(addr(port + 1), now), ASK);
        }
        assert_eq!(table.on_datagram(addr(1000), now), DROP);
        table.admit(addr(1), now);
        assert_eq!(table.on_datagram(addr(1000), now), ASK);
    }

    #[test]
    fn challenges_differ() {
        assert_ne!(challenge(), challenge());
    }
}
