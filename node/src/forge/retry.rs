//! What a forge's answer to a status post means (posted, retry after a while, refused
//! for good) and how long to wait between retries. Pure: the clock and the randomness
//! come in as arguments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::status::{bounded, PostError};

/// The longest message kept from a forge's answer.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The longest wait a forge can ask for and get (`Retry-After`, rate limit reset).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a forge's answer to a status post means. 2xx: posted. 5xx, 408 and 429: retry.
/// 403 is a rate limit, to retry, when it says so (GitHub's `x-ratelimit-remaining: 0`,
/// a `Retry-After`, or "rate limit" in its message); otherwise, like 401, 404, 422 and
/// other answers, it is refused, with the forge's `message`. The wait asked for comes
/// from `Retry-After` (seconds or an HTTP date), else GitHub's `x-ratelimit-reset` or
/// GitLab's `RateLimit-Reset` (both Unix seconds), measured from `now`.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), PostError> {
    if status.is_success() {
        return Ok(());
    }
    let message = forge_message(body)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_ascii_lowercase());
    let after = retry_after(headers, now);
    let code = status.as_u16();
    let exhausted = header_text(headers, "x-ratelimit-remaining").as_deref() == Some("0")
        || header_text(headers, "ratelimit-remaining").as_deref() == Some("0");
    let says_rate_limit = message.to_ascii_lowercase().contains("rate limit");
    let retry = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status == StatusCode::FORBIDDEN
            && (exhausted || says_rate_limit || header_text(headers, "retry-after").is_some()));
    if retry {
        let reason = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::FORBIDDEN => {
                format!("forge rate limit (HTTP {code}): {message}")
            }
            _ => format!("forge answered HTTP {code}: {message}"),
        };
        return Err(PostError::Retry { after, reason });
    }
    if status.is_redirection() {
        let location = header_text(headers, "location").unwrap_or_default();
        return Err(PostError::Refused {
            status: code,
            message: bounded(
                &format!("the API redirects to {location:?}: set the repository's API url"),
                MAX_MESSAGE_CHARS,
            ),
        });
    }
    Err(PostError::Refused { status: code, message })
}

/// The forge's explanation in an error body: `message` (GitHub, Gitea, GitLab; GitLab
/// may make it an object of field errors), GitHub's `errors` list, GitLab's `error`;
/// else the body itself if it is short plain text. Control characters become spaces;
/// the result is bounded.
fn forge_message(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let part = |key: &str| -> Option<String> {
                match value.get(key)? {
                    Value::String(text) => Some(text.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                }
            };
            let parts: Vec<String> =
                ["message", "error", "errors"].iter().filter_map(|k| part(k)).collect();
            if parts.is_empty() {
                return None;
            }
            parts.join("; ")
        }
        Err(_) => {
            let text = std::str::from_utf8(body).ok()?.trim();
            if text.is_empty() || text.starts_with('<') {
                return None;
            }
            text.to_owned()
        }
    };
    let clean: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| bounded(clean, MAX_MESSAGE_CHARS))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(|text| text.trim().to_owned())
}

/// The wait a forge asks for, capped at [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let wait = if let Some(text) = header_text(headers, "retry-after") {
        match text.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => httpdate::parse_http_date(&text)
                .ok()
                .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
        }
    } else {
        ["x-ratelimit-reset", "ratelimit-reset"]
            .iter()
            .find_map(|name| header_text(headers, name)?.parse::<u64>().ok())
            .map(|reset| until_reset(reset, now))
    };
    wait.map(|wait| wait.min(MAX_RETRY_AFTER))
}

/// The wait until a reset given in Unix seconds. A small value is taken as a number of
/// seconds from now instead, as the IETF draft's `RateLimit-Reset` means it.
fn until_reset(reset: u64, now: SystemTime) -> Duration {
    const EPOCH_SECONDS_FLOOR: u64 = 1_000_000_000;
    if reset < EPOCH_SECONDS_FLOOR {
        return Duration::from_secs(reset);
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Duration::from_secs(reset).saturating_sub(now)
}

/// Waits between retries of a post: `initial` doubled after each failure up to `max`,
/// with "equal jitter" (a random point in the upper half of the step), so that many
/// statuses failing together do not come back together; never shorter than the wait
/// the forge asked for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s, doubling to 5 min.
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts in a row (1 after the first), given
    /// `unit`, a random number in [0, 1) (see [`random_unit`]): between half the step
    /// and the step, where the step is `initial · 2^(failures-1)` capped at `max`. At
    /// least `after` (itself capped at [`MAX_RETRY_AFTER`]) when the forge named one.
    pub fn delay(&self, failures: u32, after: Option<Duration>, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let step = self.initial.saturating_mul(1u32 << doublings.min(31)).min(self.max);
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        let half = step / 2;
        let jittered = half + (step - half).mul_f64(unit);
        match after {
            Some(after) => jittered.max(after.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// A random number in [0, 1) for [`Backoff::delay`].
pub fn random_unit() -> f64 {
    fastrand::f64()
}
