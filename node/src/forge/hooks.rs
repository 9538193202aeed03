//! Incoming webhooks: checking that a delivery comes from the forge (`verify`), reading
//! what it says (`parse`), and recognising a delivery seen before (`DeliveryIds`).
//!
//! Everything here is a pure function of the request's headers and body, so the HTTP
//! handler stays thin: check the size, `verify`, `parse`, look the id up, act. Each forge
//! is read exactly as its webhook documentation describes it:
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC>`, the event in `X-GitHub-Event`,
//!   the id in `X-GitHub-Delivery`.
//! - Gitea: `X-Gitea-Signature: <hex HMAC>`, `X-Gitea-Event`, `X-Gitea-Delivery`;
//!   Forgejo also sends them as `X-Forgejo-*`, and either is accepted.
//! - GitLab: no signature but the secret itself in `X-Gitlab-Token`, the event in
//!   `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, `System Hook`), the id in
//!   `Idempotency-Key` or, on versions without it, `X-Gitlab-Event-UUID`.
//!
//! The HMAC is HMAC-SHA256 of the raw body keyed with the webhook secret. Comparisons
//! are constant-time. No error message quotes a header value or a piece of the body:
//! old Gitea versions put the secret itself into the payload.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use eventide_consensus::ForgeKind;
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The largest webhook body accepted. GitHub caps its payloads at 25 MB, but that
/// ceiling is for events with large bodies (a push of thousands of commits lists them
/// all); a push of interest here is a few KiB, and a forge sends at most the first
/// 20 commits' details for big pushes (GitHub, GitLab), so 1 MiB leaves ample room
/// while keeping what an unauthenticated sender can make the node buffer and hash small.
pub const MAX_HOOK_BYTES: usize = 1024 * 1024;

/// The longest delivery id kept (forges send UUIDs, 36 characters).
pub const MAX_DELIVERY_ID_CHARS: usize = 128;

/// The longest event name kept in [`HookEvent::Other`].
const MAX_EVENT_CHARS: usize = 64;

/// The most repository urls taken from one payload.
const MAX_REPOSITORY_URLS: usize = 16;

/// The longest repository url kept.
const MAX_URL_CHARS: usize = 2048;

/// Why a webhook delivery was refused. [`HookError::status`] is the HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The body is over [`MAX_HOOK_BYTES`].
    #[error("webhook body of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The repository has no webhook secret, so no delivery can be checked.
    #[error("no webhook secret is set for this repository: name a secret in its webhook_secret setting and give the forge the same value")]
    NoSecret,
    /// The signature (or token) header is absent.
    #[error(
        "webhook delivery has no {header} header: set a secret in the forge's webhook settings"
    )]
    Unsigned { header: &'static str },
    /// The signature (or token) does not match the secret.
    #[error("webhook {header} does not match: the secret in the forge's webhook settings differs from the repository's webhook secret")]
    BadSignature { header: &'static str },
    /// A header the forge always sends is absent.
    #[error("webhook delivery has no {header} header")]
    MissingHeader { header: &'static str },
    /// A header is present but unusable (not text, too long, wrong shape).
    #[error("webhook header {header} is malformed: {reason}")]
    MalformedHeader { header: &'static str, reason: &'static str },
    /// The body is form-encoded (GitHub's `application/x-www-form-urlencoded` option).
    #[error("webhook body is form-encoded: set the webhook's content type to application/json")]
    FormEncoded,
    /// The body is not a JSON object.
    #[error("webhook body is not a JSON object: {reason}")]
    Json { reason: String },
    /// A field the event needs is absent or of the wrong type.
    #[error("webhook payload has no usable {field}")]
    MissingField { field: &'static str },
}

impl HookError {
    /// The HTTP status to answer with: 413 for a body over the limit, 401 when the
    /// delivery cannot be authenticated, 400 when it is not what the forge sends.
    pub fn status(&self) -> StatusCode {
        match self {
            HookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HookError::NoSecret | HookError::Unsigned { .. } | HookError::BadSignature { .. } => {
                StatusCode::UNAUTHORIZED
            }
            HookError::MissingHeader { .. }
            | HookError::MalformedHeader { .. }
            | HookError::FormEncoded
            | HookError::Json { .. }
            | HookError::MissingField { .. } => StatusCode::BAD_REQUEST,
        }
    }
}

/// What one delivery says, as far as Eventide cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub forge: ForgeKind,
    pub event: HookEvent,
    /// The forge's id for this delivery, the same on a redelivery; `None` when the forge
    /// sent none (older GitLab).
    pub delivery_id: Option<String>,
    /// Every url the payload gives for its repository (https clone, ssh, web page),
    /// without repeats, in the payload's order; the handler matches them against the
    /// watched repositories.
    pub repository_urls: Vec<String>,
}

/// The kind of event a delivery reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookEvent {
    /// GitHub's `ping`, sent when a webhook is created.
    Ping,
    /// A push. `branch` is `None` for a tag (or another ref outside `refs/heads/`);
    /// `before` is all zeros when the ref was created, `after` when it was deleted
    /// (see [`is_zero_commit`]).
    Push { branch: Option<String>, before: String, after: String },
    /// Any other event, by the forge's name for it (bounded); nothing to do.
    Other(String),
}

/// True for the all-zero commit id forges use for "no commit" (a created or deleted
/// ref).
pub fn is_zero_commit(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|byte| byte == b'0')
}

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITEA_SIGNATURE: &str = "x-gitea-signature";
const FORGEJO_SIGNATURE: &str = "x-forgejo-signature";
const GITLAB_TOKEN: &str = "x-gitlab-token";

/// Checks that a delivery was sent by someone who knows `secret`.
///
/// GitHub and Gitea sign the raw body with HMAC-SHA256; GitLab sends the secret itself
/// in `X-Gitlab-Token`. An empty secret refuses every delivery: anyone can compute an
/// HMAC under the empty key. Call this before [`parse`], on the exact bytes received.
pub fn verify(
    forge: ForgeKind,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), HookError> {
    check_size(body)?;
    if secret.is_empty() {
        return Err(HookError::NoSecret);
    }
    match forge {
        ForgeKind::Github => {
            let header = "X-Hub-Signature-256";
            let value = headers.get(GITHUB_SIGNATURE).ok_or(HookError::Unsigned { header })?;
            let text = value.to_str().map_err(|_| HookError::BadSignature { header })?;
            let hex =
                text.trim().strip_prefix("sha256=").ok_or(HookError::BadSignature { header })?;
            check_hmac(hex, body, secret).map_err(|()| HookError::BadSignature { header })
        }
        ForgeKind::Gitea => {
            // Forgejo sends both headers with the same value; Gitea only its own.
            let signatures: Vec<_> = [GITEA_SIGNATURE, FORGEJO_SIGNATURE]
                .iter()
                .filter_map(|name| headers.get(*name))
                .collect();
            let header = "X-Gitea-Signature";
            if signatures.is_empty() {
                return Err(HookError::Unsigned { header });
            }
            let matches = signatures.iter().any(|value| {
                value.to_str().is_ok_and(|hex| check_hmac(hex.trim(), body, secret).is_ok())
            });
            if matches {
                Ok(())
            } else {
                Err(HookError::BadSignature { header })
            }
        }
        ForgeKind::Gitlab => {
            let header = "X-Gitlab-Token";
            let value = headers.get(GITLAB_TOKEN).ok_or(HookError::Unsigned { header })?;
            // Compare digests, which have one length, so that the time taken does not
            // tell the secret's length either.
            let given = Sha256::digest(value.as_bytes());
            let expected = Sha256::digest(secret);
            if bool::from(given.ct_eq(&expected)) {
                Ok(())
            } else {
                Err(HookError::BadSignature { header })
            }
        }
    }
}

fn check_size(body: &[u8]) -> Result<(), HookError> {
    if body.len() > MAX_HOOK_BYTES {
        return Err(HookError::TooLarge { size: body.len(), limit: MAX_HOOK_BYTES });
    }
    Ok(())
}

/// Checks a hex HMAC-SHA256 tag of `body` under `secret`, in constant time.
fn check_hmac(hex: &str, body: &[u8], secret: &[u8]) -> Result<(), ()> {
    let tag = data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).map_err(|_| ())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| ())?;
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| ())
}

/// The hex HMAC-SHA256 of `body` under `secret`: what GitHub (after `sha256=`) and Gitea
/// send. For tests and tools that sign deliveries.
pub fn sign(body: &[u8], secret: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes keys of any length");
    mac.update(body);
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// Reads a delivery: its event, its delivery id and its repository's urls. Call it
/// after [`verify`]. A push without a ref, commits or repository url, a body that is not
/// a JSON object, or a missing event header is a [`HookError`].
pub fn parse(forge: ForgeKind, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, HookError> {
    check_size(body)?;
    let payload = json_object(body)?;
    let event_name = event_header(forge, headers)?;
    let delivery_id = delivery_id(forge, headers)?;
    let event = match forge {
        ForgeKind::Github => match event_name.as_str() {
            "ping" => HookEvent::Ping,
            "push" => push(&payload)?,
            _ => other(&event_name),
        },
        ForgeKind::Gitea => match event_name.as_str() {
            "push" => push(&payload)?,
            _ => other(&event_name),
        },
        ForgeKind::Gitlab => match event_name.as_str() {
            "Push Hook" | "Tag Push Hook" => push(&payload)?,
            // A system hook carries any event; the payload names it.
            "System Hook" => match text(&payload, &["event_name"]).as_deref() {
                Some("push" | "tag_push") => push(&payload)?,
                Some(name) => other(name),
                None => other(&event_name),
            },
            _ => other(&event_name),
        },
    };
    let repository_urls = repository_urls(forge, &payload);
    if matches!(event, HookEvent::Push { .. }) && repository_urls.is_empty() {
        return Err(HookError::MissingField { field: "repository url" });
    }
    Ok(Delivery { forge, event, delivery_id, repository_urls })
}

fn json_object(body: &[u8]) -> Result<Value, HookError> {
    if body.starts_with(b"payload=") {
        return Err(HookError::FormEncoded);
    }
    // The error's category and position only: serde's messages may quote the input.
    let value: Value = serde_json::from_slice(body).map_err(|error| HookError::Json {
        reason: format!(
            "{} error at line {} column {}",
            category(&error),
            error.line(),
            error.column()
        ),
    })?;
    if !value.is_object() {
        return Err(HookError::Json { reason: "the top level is not an object".into() });
    }
    Ok(value)
}

fn category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "read",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "end of input",
    }
}

/// The event's name from the forge's event header.
fn event_header(forge: ForgeKind, headers: &HeaderMap) -> Result<String, HookError> {
    let (names, header): (&[&str], &'static str) = match forge {
        ForgeKind::Github => (&["x-github-event"], "X-GitHub-Event"),
        ForgeKind::Gitea => (&["x-gitea-event", "x-forgejo-event"], "X-Gitea-Event"),
        ForgeKind::Gitlab => (&["x-gitlab-event"], "X-Gitlab-Event"),
    };
    let value = first_header(headers, names, header)?.ok_or(HookError::MissingHeader { header })?;
    if value.is_empty() || value.chars().count() > MAX_EVENT_CHARS {
        return Err(HookError::MalformedHeader { header, reason: "empty or too long" });
    }
    Ok(value)
}

/// The delivery id, if the forge sent one. GitLab's `Idempotency-Key` stays the same
/// when a delivery is retried, so it comes first; `X-Gitlab-Event-UUID` is the id of
/// the event on versions without it.
fn delivery_id(forge: ForgeKind, headers: &HeaderMap) -> Result<Option<String>, HookError> {
    let (names, header): (&[&str], &'static str) = match forge {
        ForgeKind::Github => (&["x-github-delivery"], "X-GitHub-Delivery"),
        ForgeKind::Gitea => (&["x-gitea-delivery", "x-forgejo-delivery"], "X-Gitea-Delivery"),
        ForgeKind::Gitlab => (&["idempotency-key", "x-gitlab-event-uuid"], "Idempotency-Key"),
    };
    let Some(id) = first_header(headers, names, header)? else {
        return Ok(None);
    };
    let visible = id.bytes().all(|byte| byte.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_DELIVERY_ID_CHARS || !visible {
        return Err(HookError::MalformedHeader {
            header,
            reason: "a delivery id is 1 to 128 visible ASCII characters",
        });
    }
    Ok(Some(id))
}

/// The first of `names` present, as trimmed text.
fn first_header(
    headers: &HeaderMap,
    names: &[&str],
    header: &'static str,
) -> Result<Option<String>, HookError> {
    let Some(value) = names.iter().find_map(|name| headers.get(*name)) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| HookError::MalformedHeader { header, reason: "not ASCII text" })?;
    Ok(Some(text.trim().to_owned()))
}

/// A push: the same three fields on every forge (`ref`, `before`, `after`).
fn push(payload: &Value) -> Result<HookEvent, HookError> {
    let reference = text(payload, &["ref"]).ok_or(HookError::MissingField { field: "ref" })?;
    let before = commit(payload, "before")?;
    let after = commit(payload, "after")?;
    let branch = reference.strip_prefix("refs/heads/").filter(|b| !b.is_empty()).map(str::to_owned);
    Ok(HookEvent::Push { branch, before, after })
}

/// A commit id field: 40 (SHA-1) or 64 (SHA-256) hex digits, lowercased.
fn commit(payload: &Value, field: &'static str) -> Result<String, HookError> {
    let value = text(payload, &[field]).ok_or(HookError::MissingField { field })?;
    let hex = value.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !hex || !(value.len() == 40 || value.len() == 64) {
        return Err(HookError::MissingField { field });
    }
    Ok(value.to_ascii_lowercase())
}

fn other(name: &str) -> HookEvent {
    HookEvent::Other(name.chars().take(MAX_EVENT_CHARS).collect())
}

/// The string at `path` in `payload`, if there is one.
fn text(payload: &Value, path: &[&str]) -> Option<String> {
    let mut value = payload;
    for key in path {
        value = value.get(key)?;
    }
    value.as_str().map(str::to_owned)
}

/// The repository's urls, as the forge's documentation names them.
fn repository_urls(forge: ForgeKind, payload: &Value) -> Vec<String> {
    let paths: &[&[&str]] = match forge {
        ForgeKind::Github => &[
            &["repository", "clone_url"],
            &["repository", "ssh_url"],
            &["repository", "html_url"],
            &["repository", "git_url"],
        ],
        ForgeKind::Gitea => {
            &[&["repository", "clone_url"], &["repository", "ssh_url"], &["repository", "html_url"]]
        }
        ForgeKind::Gitlab => &[
            &["project", "git_http_url"],
            &["project", "git_ssh_url"],
            &["project", "web_url"],
            &["repository", "git_http_url"],
            &["repository", "git_ssh_url"],
            &["repository", "homepage"],
        ],
    };
    let mut urls: Vec<String> = Vec::new();
    for path in paths {
        let Some(url) = text(payload, path) else { continue };
        let url = url.trim();
        if url.is_empty() || url.len() > MAX_URL_CHARS || urls.iter().any(|known| known == url) {
            continue;
        }
        urls.push(url.to_owned());
        if urls.len() == MAX_REPOSITORY_URLS {
            break;
        }
    }
    urls
}

/// How many delivery ids [`DeliveryIds`] keeps by default.
pub const DELIVERY_MEMORY: usize = 4096;

/// A bounded memory of the delivery ids seen last, so that a redelivered webhook is
/// recognised. Holds at most `capacity` ids; the oldest is forgotten first. Lookups
/// and insertions are O(1).
pub struct DeliveryIds {
    capacity: usize,
    seen: HashSet<(ForgeKind, String)>,
    order: VecDeque<(ForgeKind, String)>,
}

impl DeliveryIds {
    /// A memory of the last `capacity` ids (at least one).
    pub fn new(capacity: usize) -> DeliveryIds {
        let capacity = capacity.max(1);
        DeliveryIds { capacity, seen: HashSet::new(), order: VecDeque::new() }
    }

    /// Records `id` of `forge`; true if it was not among the ids remembered (the
    /// delivery is new), false for a repeat.
    pub fn first_sighting(&mut self, forge: ForgeKind, id: &str) -> bool {
        let key = (forge, id.to_owned());
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        debug_assert_eq!(self.seen.len(), self.order.len());
        true
    }

    /// True if `id` of `forge` is remembered.
    pub fn contains(&self, forge: ForgeKind, id: &str) -> bool {
        self.seen.contains(&(forge, id.to_owned()))
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Default for DeliveryIds {
    fn default() -> Self {
        DeliveryIds::new(DELIVERY_MEMORY)
    }
}

impl fmt::Debug for DeliveryIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryIds")
            .field("capacity", &self.capacity)
            .field("len", &self.order.len())
            .finish()
    }
}

#[cfg(test)]
#[path = "hooks_test.rs"]
mod tests;
