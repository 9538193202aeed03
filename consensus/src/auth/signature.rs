//! Signing one request and checking a signed one: pure functions of the secret, the
//! request and the receiver's clock (passed in).

use std::time::Duration;

use hmac::Mac;

use super::replay::ReplayGuard;
use super::secret::{from_hex, to_hex, HmacSha256, Secret};

/// The sender's wall clock in milliseconds since the Unix epoch.
pub const TIME_HEADER: &str = "x-eventide-time";
/// A value the sender does not reuse (identical requests still differ).
pub const NONCE_HEADER: &str = "x-eventide-nonce";
/// Hex HMAC-SHA256 over method, path, time, nonce and body.
pub const SIGNATURE_HEADER: &str = "x-eventide-signature";

/// The longest nonce accepted.
const MAX_NONCE_LEN: usize = 64;

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {header}")]
    Missing { header: &'static str },
    #[error("malformed header {header}")]
    Malformed { header: &'static str },
    #[error("bad signature")]
    BadSignature,
    #[error("request time is {skew_ms} ms away from this node's clock")]
    Stale { skew_ms: u64 },
    #[error("replayed request")]
    Replayed,
}

impl AuthError {
    /// A short name of the kind of refusal, for rate-limiting log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Missing { .. } => "missing",
            AuthError::Malformed { .. } => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Stale { .. } => "stale",
            AuthError::Replayed => "replayed",
        }
    }
}

/// The three header values of a signed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub time: String,
    pub nonce: String,
    pub signature: String,
}

fn mac_over(
    secret: &Secret,
    method: &str,
    path: &str,
    time: &str,
    nonce: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = secret.mac();
    for part in [method.as_bytes(), path.as_bytes(), time.as_bytes(), nonce.as_bytes()] {
        mac.update(part);
        mac.update(b"\n");
    }
    mac.update(body);
    mac
}

/// Signs a request sent at `time_ms`.
pub fn sign(
    secret: &Secret,
    method: &str,
    path: &str,
    time_ms: u64,
    nonce: &str,
    body: &[u8],
) -> SignedHeaders {
    let time = time_ms.to_string();
    let mac = mac_over(secret, method, path, &time, nonce, body);
    SignedHeaders { time, nonce: nonce.to_owned(), signature: to_hex(&mac.finalize().into_bytes()) }
}

/// The header values a request presented (`None` when absent or not text).
#[derive(Clone, Copy, Debug, Default)]
pub struct Presented<'a> {
    pub time: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks a request received at `now_ms`: headers present, signature right (constant
/// time), time within `window`, signature not seen before. Only a request that passes
/// everything is remembered by `replay`.
#[allow(clippy::too_many_arguments)]
pub fn check_request(
    secret: &Secret,
    replay: &ReplayGuard,
    window: Duration,
    method: &str,
    path: &str,
    presented: Presented<'_>,
    body: &[u8],
    now_ms: u64,
) -> Result<(), AuthError> {
    let time = presented.time.ok_or(AuthError::Missing { header: TIME_HEADER })?;
    let nonce = presented.nonce.ok_or(AuthError::Missing { header: NONCE_HEADER })?;
    let signature = presented.signature.ok_or(AuthError::Missing { header: SIGNATURE_HEADER })?;
    let time_ms: u64 = time.parse().map_err(|_| AuthError::Malformed { header: TIME_HEADER })?;
    if nonce.len() > MAX_NONCE_LEN {
        return Err(AuthError::Malformed { header: NONCE_HEADER });
    }
    let signature: [u8; 32] = from_hex(signature)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(AuthError::Malformed { header: SIGNATURE_HEADER })?;
    mac_over(secret, method, path, time, nonce, body)
        .verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature)?;
    let skew_ms = now_ms.abs_diff(time_ms);
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if skew_ms > window_ms {
        return Err(AuthError::Stale { skew_ms });
    }
    // Remember it until it would be refused as stale anyway.
    if !replay.first_sighting(signature, time_ms.saturating_add(window_ms), now_ms) {
        return Err(AuthError::Replayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const WINDOW: Duration = Duration::from_secs(30);

    fn secret(text: &str) -> Secret {
        Secret::try_new(text.as_bytes()).expect("valid secret")
    }

    fn presented(headers: &SignedHeaders) -> Presented<'_> {
        Presented {
            time: Some(&headers.time),
            nonce: Some(&headers.nonce),
            signature: Some(&headers.signature),
        }
    }

    fn check(
        secret: &Secret,
        replay: &ReplayGuard,
        headers: &SignedHeaders,
        body: &[u8],
        now: u64,
    ) -> Result<(), AuthError> {
        let path = "/internal/raft/append";
        check_request(secret, replay, WINDOW, "POST", path, presented(headers), body, now)
    }

    #[test]
    fn a_good_signature_passes_once() {
        let key = secret("a cluster secret of some length");
        let replay = ReplayGuard::new(16);
        let headers = sign(&key, "POST", "/internal/raft/append", NOW, "n1", b"body");
        assert_eq!(check(&key, &replay, &headers, b"body", NOW + 10), Ok(()));
        assert_eq!(check(&key, &replay, &headers, b"body", NOW + 20), Err(AuthError::Replayed));
    }

    #[test]
    fn identical_requests_with_different_nonces_both_pass() {
        let key = secret("a cluster secret of some length");
        let replay = ReplayGuard::new(16);
        let first = sign(&key, "POST", "/internal/raft/append", NOW, "n1", b"heartbeat");
        let second = sign(&key, "POST", "/internal/raft/append", NOW, "n2", b"heartbeat");
        assert_ne!(first.signature, second.signature);
        assert_eq!(check(&key, &replay, &first, b"heartbeat", NOW), Ok(()));
        assert_eq!(check(&key, &replay, &second, b"heartbeat", NOW), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let key = secret("a cluster secret of some length");
        let other = secret("another secret of some length");
        let headers = sign(&other, "POST", "/internal/raft/append", NOW, "n1", b"body");
        let replay = ReplayGuard::new(16);
        assert_eq!(check(&key, &replay, &headers, b"body", NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_tampered_body_path_or_time_is_refused() {
        let key = secret("a cluster secret of some length");
        let replay = ReplayGuard::new(16);
        let headers = sign(&key, "POST", "/internal/raft/append", NOW, "n1", b"body");
        assert_eq!(check(&key, &replay, &headers, b"bodY", NOW), Err(AuthError::BadSignature));
        let other_path = check_request(
            &key,
            &replay,
            WINDOW,
            "POST",
            "/internal/raft/vote",
            presented(&headers),
            b"body",
            NOW,
        );
        assert_eq!(other_path, Err(AuthError::BadSignature));
        let mut moved = headers.clone();
        moved.time = (NOW + 1).to_string();
        assert_eq!(check(&key, &replay, &moved, b"body", NOW), Err(AuthError::BadSignature));
        // None of the refused attempts used up the genuine request.
        assert_eq!(check(&key, &replay, &headers, b"body", NOW), Ok(()));
    }

    #[test]
    fn a_time_outside_the_window_is_refused() {
        let key = secret("a cluster secret of some length");
        let replay = ReplayGuard::new(16);
        let old = sign(&key, "POST", "/p", NOW - 31_000, "n1", b"");
        let future = sign(&key, "POST", "/p", NOW + 31_000, "n2", b"");
        let edge = sign(&key, "POST", "/p", NOW - 30_000, "n3", b"");
        let run = |h: &SignedHeaders| {
            check_request(&key, &replay, WINDOW, "POST", "/p", presented(h), b"", NOW)
        };
        assert_eq!(run(&old), Err(AuthError::Stale { skew_ms: 31_000 }));
        assert_eq!(run(&future), Err(AuthError::Stale { skew_ms: 31_000 }));
        assert_eq!(run(&edge), Ok(()));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let key = secret("a cluster secret of some length");
        let replay = ReplayGuard::new(16);
        let headers = sign(&key, "POST", "/p", NOW, "n1", b"");
        let run =
            |p: Presented<'_>| check_request(&key, &replay, WINDOW, "POST", "/p", p, b"", NOW);
        let full = presented(&headers);
        assert_eq!(
            run(Presented { time: None, ..full }),
            Err(AuthError::Missing { header: TIME_HEADER })
        );
        assert_eq!(
            run(Presented { nonce: None, ..full }),
            Err(AuthError::Missing { header: NONCE_HEADER })
        );
        assert_eq!(
            run(Presented { signature: None, ..full }),
            Err(AuthError::Missing { header: SIGNATURE_HEADER })
        );
        assert_eq!(run(Presented::default()), Err(AuthError::Missing { header: TIME_HEADER }));
        assert_eq!(
            run(Presented { time: Some("yesterday"), ..full }),
            Err(AuthError::Malformed { header: TIME_HEADER })
        );
        assert_eq!(
            run(Presented { signature: Some("abcd"), ..full }),
            Err(AuthError::Malformed { header: SIGNATURE_HEADER })
        );
        let long = "n".repeat(65);
        assert_eq!(
            run(Presented { nonce: Some(&long), ..full }),
            Err(AuthError::Malformed { header: NONCE_HEADER })
        );
    }
}
