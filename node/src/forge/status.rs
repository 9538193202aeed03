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
//! Only `post` does I/O. No error, log field or `Debug` output holds the token. The url
//! rules live in `api_url` and the answer and backoff rules in `retry`; this module
//! re-exports them, so that `status` is the one way in.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use eventide_consensus::ForgeKind;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

pub use super::api_url::{api_url_for, default_api_url, project_of};
pub use super::retry::{classify, random_unit, Backoff, MAX_MESSAGE_CHARS, MAX_RETRY_AFTER};

/// The context of statuses when the repository's settings name none.
pub const DEFAULT_CONTEXT: &str = "eventide/test";

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

/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

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
pub(super) fn bounded(text: &str, limit: usize) -> String {
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

/// How long connecting to a forge may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client for [`post`]: https with the system's trust store, the timeouts
/// above, and no redirects followed. A redirect would carry GitLab's `PRIVATE-TOKEN`
/// (which, unlike `Authorization`, reqwest does not drop across hosts) to wherever the
/// API points; a redirected API is refused instead, saying to set the API url.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("failed to build the HTTP client for forge APIs (TLS setup with the system trust store)")
}

/// Posts one commit status. `token` is the forge token (surrounding whitespace, such as
/// a file's last newline, is ignored); it goes only into the auth header, marked
/// sensitive, and is cut out of any message the forge sends back. Use a client from
/// [`client`], or one that follows no redirects.
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

#[cfg(test)]
#[path = "status_test.rs"]
mod tests;

#[cfg(test)]
#[path = "status_post_test.rs"]
mod post_tests;
