//! Outgoing commit statuses: which API a repository's forge has (`default_api_url`,
//! `project_of`), what to send it (`StatusRequest::request`), sending it (`post`), what
//! its answer means (`classify`: done, retry later, or refused for good) and how long
//! to wait before a retry (`Backoff`).
//!
//! - GitHub and Gitea: `POST {api}/repos/{owner}/{repo}/statuses/{sha}` with `state`,
//!   `target_url`, `description` and `context`.
//! - GitLab: `POST {api}/projects/{id}/statuses/{sha}` with `state`, `target_url`,
//!   `description` and `name` (GitLab's word for the context), `{id}` being the
//!   project's url-encoded full path.
//!
//! Only `post` does I/O. No error, log field or `Debug` output holds the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use eventide_consensus::ForgeKind;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use url::Url;

/// How long one status post may take, connection included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(15);

/// The `User-Agent` of every request (GitHub refuses requests without one).
pub const USER_AGENT: &str = concat!("eventide/", env!("CARGO_PKG_VERSION"));

/// GitHub's API version header value the requests are written for.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// The longest description sent: GitHub's documented limit is 140 characters (longer
/// ones are refused with 422), and the others take at least that.
pub const MAX_DESCRIPTION_CHARS: usize = 140;

/// The longest context sent (GitLab's limit for `name`).
pub const MAX_CONTEXT_CHARS: usize = 255;

/// The longest message kept from a forge's answer.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The longest wait a forge can ask for and get (`Retry-After`, rate limit reset).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The state of a commit, in Eventide's words; each forge has its own names for them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StatusState {
    /// Queued, not started.
    Pending,
    Running,
    /// The job passed.
    Success,
    /// The job ran and failed.
    Failure,
    /// The job could not run (setup, checkout, timeout).
    Error,
}

impl StatusState {
    /// The state's name in `forge`'s API. GitHub and Gitea have no running state, so a
    /// running job is `pending` there; GitLab has no error state, so it is `failed`.
    pub fn as_forge_str(self, forge: ForgeKind) -> &'static str {
        match (forge, self) {
            (_, StatusState::Pending) => "pending",
            (_, StatusState::Success) => "success",
            (ForgeKind::Gitlab, StatusState::Running) => "running",
            (ForgeKind::Gitlab, StatusState::Failure | StatusState::Error) => "failed",
            (ForgeKind::Github | ForgeKind::Gitea, StatusState::Running) => "pending",
            (ForgeKind::Github | ForgeKind::Gitea, StatusState::Failure) => "failure",
            (ForgeKind::Github | ForgeKind::Gitea, StatusState::Error) => "error",
        }
    }
}

/// Where a repository's host and path start, for the three shapes of git url:
/// `https://host[:port]/path`, `ssh://[user@]host[:port]/path` and scp-like
/// `[user@]host:path`.
struct RepoLocation {
    /// `http` or `https` for web urls; `None` for ssh ones.
    web_scheme: Option<String>,
    host: String,
    /// The web port, if the url names one (ssh ports are not the API's).
    port: Option<u16>,
    path: String,
}

fn locate(repo_url: &str) -> anyhow::Result<RepoLocation> {
    let repo_url = repo_url.trim();
    if repo_url.contains("://") {
        let url = Url::parse(repo_url)
            .with_context(|| format!("repository url {repo_url:?} is not a valid url"))?;
        let host = url
            .host_str()
            .with_context(|| format!("repository url {repo_url:?} has no host"))?
            .to_ascii_lowercase();
        let (web_scheme, port) = match url.scheme() {
            "http" | "https" => (Some(url.scheme().to_owned()), url.port()),
            "ssh" | "git+ssh" | "git" => (None, None),
            other => bail!(
                "repository url {repo_url:?} has scheme {other:?}: a forge's repository is \
                 reached over https, http, ssh or git"
            ),
        };
        return Ok(RepoLocation { web_scheme, host, port, path: url.path().to_owned() });
    }
    // scp-like: [user@]host:path, with no slash before the colon.
    let (authority, path) = repo_url.split_once(':').with_context(|| {
        format!("repository url {repo_url:?} is neither a url nor of the form user@host:path")
    })?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || host.contains('/') || path.is_empty() {
        bail!("repository url {repo_url:?} is neither a url nor of the form user@host:path");
    }
    Ok(RepoLocation {
        web_scheme: None,
        host: host.to_ascii_lowercase(),
        port: None,
        path: path.to_owned(),
    })
}

/// The API root of the forge hosting `repo_url`, for when the repository's settings
/// name none: `https://api.github.com` for github.com and `https://HOST/api/v3` for
/// GitHub Enterprise; `https://HOST/api/v4` for GitLab; `https://HOST/api/v1` for
/// Gitea. A forge served on plain http (the url says `http://`) keeps http and its
/// port. A forge installed under a sub-path (`https://host/gitlab/`) needs its API url
/// set by hand.
pub fn default_api_url(forge: ForgeKind, repo_url: &str) -> anyhow::Result<String> {
    let location = locate(repo_url)?;
    let scheme = location.web_scheme.as_deref().unwrap_or("https");
    let authority = match location.port {
        Some(port) => format!("{}:{port}", location.host),
        None => location.host.clone(),
    };
    Ok(match forge {
        ForgeKind::Github if location.host == "github.com" || location.host == "www.github.com" => {
            "https://api.github.com".to_owned()
        }
        ForgeKind::Github => format!("{scheme}://{authority}/api/v3"),
        ForgeKind::Gitlab => format!("{scheme}://{authority}/api/v4"),
        ForgeKind::Gitea => format!("{scheme}://{authority}/api/v1"),
    })
}

/// The project part of a status url, from the repository's url: `owner/repo` on GitHub
/// and Gitea; on GitLab the url-encoded full path (`group%2Fsub%2Fproject`), which
/// GitLab takes in place of a numeric id. A trailing `.git` or `/` is dropped.
pub fn project_of(forge: ForgeKind, repo_url: &str) -> anyhow::Result<String> {
    let location = locate(repo_url)?;
    let path = location.path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    for segment in &segments {
        let allowed =
            segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
        if segment.is_empty() || *segment == "." || *segment == ".." || !allowed {
            bail!(
                "repository url {repo_url:?} has path {path:?}, which does not name a \
                 project (letters, digits, '-', '_' and '.' between slashes)"
            );
        }
    }
    match forge {
        ForgeKind::Github | ForgeKind::Gitea if segments.len() != 2 => bail!(
            "repository url {repo_url:?} has path {path:?}: a {forge} repository is \
             owner/repo (set the API url by hand if the forge lives under a sub-path)"
        ),
        ForgeKind::Github | ForgeKind::Gitea => Ok(segments.join("/")),
        ForgeKind::Gitlab if segments.len() < 2 => bail!(
            "repository url {repo_url:?} has path {path:?}: a GitLab project is \
             group/project or group/subgroup/project"
        ),
        ForgeKind::Gitlab => Ok(segments.join("%2F")),
    }
}

/// One commit status to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRequest {
    pub forge: ForgeKind,
    /// The API root (`https://api.github.com`, `https://gitlab.example/api/v4`); an
    /// http or https url.
    pub api_url: Url,
    /// As [`project_of`] gives it.
    pub project: String,
    /// The commit's full id.
    pub sha: String,
    pub state: StatusState,
    /// The page the forge links the status to (the job's page).
    pub target_url: Option<String>,
    /// The status's name on the forge (`eventide/test`); statuses of one context
    /// replace each other.
    pub context: String,
    pub description: String,
}

impl StatusRequest {
    /// The url to post to and the JSON body, as the forge's API documents them. The
    /// description and context are cut to what the forges take; a missing target url
    /// leaves the field out.
    pub fn request(&self) -> (Url, Value) {
        let mut url = self.api_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            match self.forge {
                ForgeKind::Github | ForgeKind::Gitea => {
                    segments.push("repos");
                    segments.extend(self.project.split('/'));
                }
                ForgeKind::Gitlab => {
                    // `push` encodes each `/` of the full path as `%2F` again.
                    segments.push("projects").push(&decode_project(&self.project));
                }
            }
            segments.push("statuses").push(&self.sha);
        }
        let description = bounded(&self.description, MAX_DESCRIPTION_CHARS);
        let context = bounded(&self.context, MAX_CONTEXT_CHARS);
        let context_field = match self.forge {
            ForgeKind::Gitlab => "name",
            ForgeKind::Github | ForgeKind::Gitea => "context",
        };
        let mut body = serde_json::Map::new();
        body.insert("state".into(), self.state.as_forge_str(self.forge).into());
        if let Some(target_url) = &self.target_url {
            body.insert("target_url".into(), target_url.clone().into());
        }
        body.insert("description".into(), description.into());
        body.insert(context_field.into(), context.into());
        (url, Value::Object(body))
    }
}

fn decode_project(project: &str) -> String {
    project.replace("%2F", "/").replace("%2f", "/")
}

/// `text` cut to at most `limit` characters, an ellipsis marking a cut.
fn bounded(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Why a status was not posted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// Worth trying again: the forge was unreachable, slow, failing (5xx) or rate
    /// limiting. `after` is the wait the forge asked for, if it named one.
    #[error("commit status not posted, will retry: {reason}")]
    Retry { after: Option<Duration>, reason: String },
    /// The forge will not take it as it is (bad token, no access, unknown repository or
    /// commit, invalid field): retrying does not help until a person changes something.
    /// `status` is the HTTP status, or 0 when the request was refused before sending
    /// (a token that cannot go in a header, an API url that is not http).
    #[error("forge refused the commit status (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
}

/// Posts one commit status. `token` is the forge token (surrounding whitespace, such as
/// a file's last newline, is ignored); it goes only into the auth header, marked
/// sensitive, and is cut out of any message the forge sends back.
pub async fn post(
    client: &reqwest::Client,
    token: &[u8],
    request: &StatusRequest,
) -> Result<(), PostError> {
    let token = token.trim_ascii();
    if !matches!(request.api_url.scheme(), "http" | "https") {
        return Err(PostError::Refused {
            status: 0,
            message: format!("API url {} is not an http or https url", request.api_url),
        });
    }
    let headers = auth_headers(request.forge, token)?;
    let (url, body) = request.request();
    let sent = client.post(url).headers(headers).json(&body).timeout(POST_TIMEOUT).send().await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Err(PostError::Retry {
                after: None,
                reason: redact(&error_chain(&error), token),
            })
        }
    };
    let status = response.status();
    let answer_headers = response.headers().clone();
    let answer = match read_bounded(response).await {
        Ok(answer) => answer,
        Err(error) if status.is_success() => {
            // Taken; only the answer's body was lost.
            tracing::debug!(error = %error_chain(&error), "commit status answer not read");
            Vec::new()
        }
        Err(error) => {
            return Err(PostError::Retry {
                after: None,
                reason: redact(&error_chain(&error), token),
            })
        }
    };
    classify(status, &answer_headers, &answer, SystemTime::now()).map_err(|error| match error {
        PostError::Retry { after, reason } => {
            PostError::Retry { after, reason: redact(&reason, token) }
        }
        PostError::Refused { status, message } => {
            PostError::Refused { status, message: redact(&message, token) }
        }
    })
}

/// The headers that authenticate a request on `forge`.
fn auth_headers(forge: ForgeKind, token: &[u8]) -> Result<HeaderMap, PostError> {
    let invalid = || PostError::Refused {
        status: 0,
        message: "the forge token holds characters an HTTP header cannot carry: check the \
                  token secret"
            .into(),
    };
    if token.is_empty() {
        return Err(PostError::Refused {
            status: 0,
            message: "the forge token is empty: check the token secret".into(),
        });
    }
    let credential = |prefix: &[u8]| -> Result<HeaderValue, PostError> {
        let mut value =
            HeaderValue::from_bytes(&[prefix, token].concat()).map_err(|_| invalid())?;
        value.set_sensitive(true);
        Ok(value)
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    match forge {
        ForgeKind::Github => {
            headers.insert(http::header::AUTHORIZATION, credential(b"Bearer ")?);
            headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            );
            headers.insert("x-github-api-version", HeaderValue::from_static(GITHUB_API_VERSION));
        }
        ForgeKind::Gitea => {
            headers.insert(http::header::AUTHORIZATION, credential(b"token ")?);
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        ForgeKind::Gitlab => {
            headers.insert("private-token", credential(b"")?);
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
        }
    }
    Ok(headers)
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` with every occurrence of `token` replaced.
fn redact(text: &str, token: &[u8]) -> String {
    match std::str::from_utf8(token) {
        Ok(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_owned(),
    }
}

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

#[cfg(test)]
#[path = "status_test.rs"]
mod tests;
