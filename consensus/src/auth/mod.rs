//! The cluster secret and everything it authenticates between nodes.
//!
//! Every request under `/internal/` (Raft append/vote/snapshot, forwarded writes, the
//! dispatcher's claim and renew, the gossip admission handshake) carries three headers
//! when the node has a cluster secret:
//!
//! - `x-eventide-time`: the sender's wall clock, milliseconds since the Unix epoch;
//! - `x-eventide-nonce`: a value the sender never reuses, so that two identical
//!   requests (heartbeats) still have different signatures;
//! - `x-eventide-signature`: lowercase hex of HMAC-SHA256(secret, `METHOD \n PATH \n
//!   TIME \n NONCE \n` followed by the body bytes).
//!
//! The receiver checks the signature in constant time, refuses a time more than
//! [`DEFAULT_WINDOW`] away from its own clock, and refuses a signature it has already
//! seen within that window (a bounded cache). Refusals are 401 with a warn log line that
//! names the path and the reason, never the secret. Without a secret nothing is signed
//! or checked.
//!
//! - `secret`: the [`Secret`] and the values derived from it (API token, gossip id).
//! - `signature`: the pure signing and checking of one request.
//! - `seal`: the [`Sealer`] of the secret store's values (HKDF key, XChaCha20-Poly1305).
//! - `replay`: the cache of recently seen signatures.
//! - `http`: the axum middleware (server side) and [`Signer`] (reqwest side).
//!
//! ```text
//!  Signer::sign(builder) ── time, nonce, HMAC ──> POST /internal/... ──> require_signature
//!                                                                         │ check (pure)
//!                                                                         │ ReplayGuard
//!                                                                         ▼
//!                                                              handler, or 401 + warn
//! ```

mod http;
mod replay;
mod seal;
mod secret;
mod signature;

use std::time::Duration;

pub use self::http::{now_ms, require_signature, InternalAuth, Signer};
pub use self::replay::ReplayGuard;
pub use self::seal::{SealError, Sealed, Sealer, NONCE_BYTES, SEAL_OVERHEAD};
pub use self::secret::{from_hex, to_hex};
pub use self::secret::{Secret, SecretError, MIN_SECRET_LEN};
pub use self::signature::{
    check_request, sign, AuthError, Presented, SignedHeaders, NONCE_HEADER, SIGNATURE_HEADER,
    TIME_HEADER,
};
/// Opened values and derived keys are wiped when dropped.
pub use zeroize::Zeroizing;

/// How far a request's time may be from the receiver's clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
