//! A forge on loopback for the end-to-end tests: [`TestForge`] takes commit statuses the
//! way GitHub (Enterprise), Gitea and GitLab do, and the `send_*` functions deliver
//! webhooks the way they do.
//!
//! The status API answers on the paths the node derives for a self-hosted forge, so a
//! test passes [`TestForge::api_url`] as the repository's API url:
//!
//! - GitHub Enterprise: `POST /api/v3/repos/{owner}/{repo}/statuses/{sha}` (and
//!   `/repos/...` at the root, as `api.github.com` has it), `Authorization: Bearer`,
//!   `Accept: application/vnd.github+json`, `X-GitHub-Api-Version`, a `User-Agent`;
//!   body `state`, `target_url`, `description` (140 characters at most), `context`.
//! - Gitea: `POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`, `Authorization: token`;
//!   the same body.
//! - GitLab: `POST /api/v4/projects/{url-encoded path}/statuses/{sha}`, `PRIVATE-TOKEN`;
//!   body `state`, `target_url`, `description`, `name`.
//!
//! Every well-formed, authenticated post is recorded ([`TestForge::received`]) before it
//! is answered: with 201 unless the test scripted other answers ([`TestForge::script`]),
//! which are used up one per post. Requests with a wrong token, path, header or body are
//! answered as the forge would (401, 404, 400, 422) and listed in
//! [`TestForge::rejected`] with the reason.
//!
//! The webhook payloads come from `tests/fixtures/hooks/`, written after each forge's
//! documented format, with the url, ref and commit fields filled in.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tiny_http::{Header, Response, Server};

use crate::wait_until;

const GITHUB_PUSH: &str = include_str!("../fixtures/hooks/github-push.json");
const GITHUB_PING: &str = include_str!("../fixtures/hooks/github-ping.json");
const GITEA_PUSH: &str = include_str!("../fixtures/hooks/gitea-push.json");
const GITLAB_PUSH: &str = include_str!("../fixtures/hooks/gitlab-push.json");

/// The all-zero commit id forges send for a created or deleted ref.
pub const ZERO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// The largest status body the forge reads.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A forge kind, as the node's flags and hook paths name it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Forge {
    Github,
    Gitlab,
    Gitea,
}

impl Forge {
    pub const ALL: [Forge; 3] = [Forge::Github, Forge::Gitlab, Forge::Gitea];

    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    /// The states this forge's status API accepts.
    fn states(self) -> &'static [&'static str] {
        match self {
            Forge::Github => &["error", "failure", "pending", "success"],
            Forge::Gitea => &["error", "failure", "pending", "success", "warning"],
            Forge::Gitlab => &["pending", "running", "success", "failed", "canceled", "skipped"],
        }
    }
}

/// One status post the forge took in (whatever it answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedStatus {
    pub forge: Forge,
    /// `owner/repo`; for GitLab the decoded full path (`group/sub/project`).
    pub project: String,
    pub sha: String,
    /// As the forge names it (`pending`, `failure`, GitLab's `failed`, ...).
    pub state: String,
    /// `context`, or GitLab's `name`.
    pub context: String,
    pub target_url: Option<String>,
    pub description: Option<String>,
    /// The HTTP status it was answered with.
    pub answered: u16,
}

/// A scripted answer to one status post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// `500` with a JSON message.
    pub fn server_error() -> Answer {
        Answer::json(500, json!({ "message": "Server Error" }))
    }

    /// `429` with `Retry-After: seconds`.
    pub fn too_many_requests(retry_after_seconds: u64) -> Answer {
        let mut answer = Answer::json(429, json!({ "message": "API rate limit exceeded" }));
        answer.headers.push(("Retry-After".into(), retry_after_seconds.to_string()));
        answer
    }

    /// `401` with the forge's JSON `message`.
    pub fn unauthorized(message: &str) -> Answer {
        Answer::json(401, json!({ "message": message }))
    }

    /// Any status with a JSON body.
    pub fn json(code: u16, body: Value) -> Answer {
        Answer {
            code,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }
}

#[derive(Default)]
struct Record {
    script: VecDeque<Answer>,
    received: Vec<ReceivedStatus>,
    rejected: Vec<String>,
}

/// The HTTP server; stops when dropped.
pub struct TestForge {
    addr: SocketAddr,
    server: Arc<Server>,
    record: Arc<Mutex<Record>>,
    thread: Option<JoinHandle<()>>,
}

impl TestForge {
    /// Starts a forge on a free loopback port that accepts `token` (the same for every
    /// forge kind).
    pub fn start(token: &str) -> TestForge {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the test forge"));
        let addr = server.server_addr().to_ip().expect("the test forge listens on ip");
        let record = Arc::new(Mutex::new(Record::default()));
        let thread = {
            let (server, record, token) = (server.clone(), record.clone(), token.to_owned());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(request, &token, &record);
                }
            })
        };
        TestForge { addr, server, record, thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to configure for `forge`: `http://ADDR/api/v3` (GitHub Enterprise),
    /// `/api/v4` (GitLab) or `/api/v1` (Gitea).
    pub fn api_url(&self, forge: Forge) -> String {
        let version = match forge {
            Forge::Github => "v3",
            Forge::Gitlab => "v4",
            Forge::Gitea => "v1",
        };
        format!("http://{}/api/{version}", self.addr)
    }

    /// Queues answers for the next status posts, one each, before the forge goes back
    /// to accepting (e.g. `[Answer::server_error(); 3]`).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.lock().script.extend(answers);
    }

    /// Every well-formed, authenticated status post, in arrival order.
    pub fn received(&self) -> Vec<ReceivedStatus> {
        self.lock().received.clone()
    }

    /// The posts answered with 201: the statuses the forge now shows.
    pub fn statuses(&self) -> Vec<ReceivedStatus> {
        self.received().into_iter().filter(|status| status.answered == 201).collect()
    }

    /// Why each refused request was refused (bad token, unknown path, invalid body).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// Waits until `probe` finds what it wants in the posts received so far.
    pub fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut probe: impl FnMut(&[ReceivedStatus]) -> Option<T>,
    ) -> T {
        wait_until(what, deadline, || probe(&self.received()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().expect("test forge record")
    }
}

impl Drop for TestForge {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut request: tiny_http::Request, token: &str, record: &Mutex<Record>) {
    let answer = match check(&mut request, token) {
        Ok(status) => {
            let mut record = record.lock().expect("test forge record");
            let answer = record.script.pop_front().unwrap_or_else(|| {
                Answer::json(201, json!({ "id": record.received.len() + 1, "state": status.state }))
            });
            record.received.push(ReceivedStatus { answered: answer.code, ..status });
            answer
        }
        Err(answer) => {
            let reason =
                format!("{} {}: {} {}", request.method(), request.url(), answer.code, answer.body);
            record.lock().expect("test forge record").rejected.push(reason);
            answer
        }
    };
    let mut response = Response::from_string(answer.body).with_status_code(answer.code);
    for (name, value) in &answer.headers {
        let header = Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header");
        response.add_header(header);
    }
    let _ = request.respond(response);
}

fn header<'a>(request: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn message(code: u16, text: &str) -> Answer {
    Answer::json(code, json!({ "message": text }))
}

/// Checks a request as the forge would; the status it posts, or the answer refusing it.
fn check(request: &mut tiny_http::Request, token: &str) -> Result<ReceivedStatus, Answer> {
    if request.method() != &tiny_http::Method::Post {
        return Err(message(405, "Method Not Allowed"));
    }
    let path = request.url().split('?').next().unwrap_or_default().to_owned();
    let (forge, project, sha) = route(&path).ok_or_else(|| message(404, "Not Found"))?;
    let bad_credentials = message(401, "Bad credentials");
    match forge {
        Forge::Github => {
            if header(request, "Authorization") != Some(&format!("Bearer {token}")) {
                return Err(bad_credentials);
            }
            if header(request, "Accept") != Some("application/vnd.github+json") {
                return Err(message(400, "Accept is not application/vnd.github+json"));
            }
            if header(request, "X-GitHub-Api-Version") != Some("2022-11-28") {
                return Err(message(400, "X-GitHub-Api-Version is not 2022-11-28"));
            }
            if header(request, "User-Agent").is_none_or(str::is_empty) {
                return Err(message(403, "Request forbidden: a User-Agent header is required"));
            }
        }
        Forge::Gitea => {
            if header(request, "Authorization") != Some(&format!("token {token}")) {
                return Err(message(401, "token is required"));
            }
        }
        Forge::Gitlab => {
            if header(request, "PRIVATE-TOKEN") != Some(token) {
                return Err(message(401, "401 Unauthorized"));
            }
        }
    }
    let mut body = Vec::new();
    let read = request.as_reader().take(MAX_BODY_BYTES).read_to_end(&mut body);
    if read.is_err() {
        return Err(message(400, "body could not be read"));
    }
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| message(400, "Problems parsing JSON"))?;
    let field = |name: &str| -> Result<Option<String>, Answer> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(message(422, &format!("{name} is not a string"))),
        }
    };
    let state = field("state")?.ok_or_else(|| message(422, "state is missing"))?;
    if !forge.states().contains(&state.as_str()) {
        return Err(message(422, &format!("state {state:?} is not one of {:?}", forge.states())));
    }
    let context_field = if forge == Forge::Gitlab { "name" } else { "context" };
    let context = field(context_field)?.ok_or_else(|| message(422, "context is missing"))?;
    let description = field("description")?;
    if forge == Forge::Github && description.as_ref().is_some_and(|d| d.chars().count() > 140) {
        return Err(message(422, "description is longer than 140 characters"));
    }
    let target_url = field("target_url")?;
    if target_url
        .as_ref()
        .is_some_and(|url| !url.starts_with("http://") && !url.starts_with("https://"))
    {
        return Err(message(422, "target_url is not an http(s) url"));
    }
    Ok(ReceivedStatus { forge, project, sha, state, context, target_url, description, answered: 0 })
}

/// The forge, project and commit a status path names.
fn route(path: &str) -> Option<(Forge, String, String)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v3", "repos", owner, repo, "statuses", sha]
        | ["repos", owner, repo, "statuses", sha] => {
            Some((Forge::Github, format!("{owner}/{repo}"), sha.to_string()))
        }
        ["api", "v1", "repos", owner, repo, "statuses", sha] => {
            Some((Forge::Gitea, format!("{owner}/{repo}"), sha.to_string()))
        }
        ["api", "v4", "projects", id, "statuses", sha] => {
            let project = id.replace("%2F", "/").replace("%2f", "/");
            Some((Forge::Gitlab, project, sha.to_string()))
        }
        _ => None,
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// A push payload of `forge` for `branch` of the repository at `clone_url`, moving from
/// `before` to `after`.
pub fn push_payload(
    forge: Forge,
    clone_url: &str,
    branch: &str,
    before: &str,
    after: &str,
) -> Vec<u8> {
    let fixture = match forge {
        Forge::Github => GITHUB_PUSH,
        Forge::Gitea => GITEA_PUSH,
        Forge::Gitlab => GITLAB_PUSH,
    };
    let mut payload: Value = serde_json::from_str(fixture).expect("push fixture is JSON");
    payload["ref"] = format!("refs/heads/{branch}").into();
    payload["before"] = before.into();
    payload["after"] = after.into();
    payload["commits"][0]["id"] = after.into();
    match forge {
        Forge::Github => {
            payload["created"] = (before == ZERO_COMMIT).into();
            payload["deleted"] = (after == ZERO_COMMIT).into();
            payload["head_commit"]["id"] = after.into();
            payload["repository"]["clone_url"] = clone_url.into();
        }
        Forge::Gitea => {
            payload["head_commit"]["id"] = after.into();
            payload["repository"]["clone_url"] = clone_url.into();
        }
        Forge::Gitlab => {
            payload["checkout_sha"] = after.into();
            payload["project"]["git_http_url"] = clone_url.into();
            payload["repository"]["git_http_url"] = clone_url.into();
        }
    }
    serde_json::to_vec(&payload).expect("encode payload")
}

/// GitHub's ping payload for the repository at `clone_url`.
pub fn ping_payload(clone_url: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_str(GITHUB_PING).expect("ping fixture is JSON");
    payload["repository"]["clone_url"] = clone_url.into();
    serde_json::to_vec(&payload).expect("encode payload")
}

/// The headers `forge` sends with a delivery of `event` (its own name for it: `push`,
/// `ping`, GitLab's `Push Hook`), signed (or, for GitLab, carrying the token) with
/// `secret`.
pub fn hook_headers(
    forge: Forge,
    event: &str,
    secret: &str,
    body: &[u8],
    delivery_id: &str,
) -> Vec<(String, String)> {
    let pairs: Vec<(&str, String)> = match forge {
        Forge::Github => vec![
            ("User-Agent", "GitHub-Hookshot/5a3b1c9".into()),
            ("X-GitHub-Event", event.into()),
            ("X-GitHub-Delivery", delivery_id.into()),
            ("X-GitHub-Hook-ID", "109948940".into()),
            ("X-GitHub-Hook-Installation-Target-Type", "repository".into()),
            ("X-GitHub-Hook-Installation-Target-ID", "35129377".into()),
            ("X-Hub-Signature-256", format!("sha256={}", sign(body, secret))),
        ],
        Forge::Gitea => vec![
            ("User-Agent", "Go-http-client/1.1".into()),
            ("X-Gitea-Event", event.into()),
            ("X-Gitea-Event-Type", event.into()),
            ("X-Gitea-Delivery", delivery_id.into()),
            ("X-Gitea-Signature", sign(body, secret)),
            ("X-Gogs-Event", event.into()),
            ("X-Gogs-Delivery", delivery_id.into()),
            ("X-GitHub-Event", event.into()),
            ("X-GitHub-Delivery", delivery_id.into()),
        ],
        Forge::Gitlab => vec![
            ("User-Agent", "GitLab/17.6.0".into()),
            ("X-Gitlab-Event", event.into()),
            ("X-Gitlab-Token", secret.into()),
            ("X-Gitlab-Instance", "https://gitlab.example.com".into()),
            ("X-Gitlab-Webhook-UUID", "2b1f7e0c-31a2-4b6e-9a0c-5d2f1c3e4a10".into()),
            ("X-Gitlab-Event-UUID", delivery_id.into()),
            ("Idempotency-Key", delivery_id.into()),
        ],
    };
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    headers.extend(pairs.into_iter().map(|(name, value)| (name.to_owned(), value)));
    headers
}

/// POSTs a delivery to `hook_url` (`http://ADDR/api/v1/hooks/github`); the answer's
/// status code.
pub fn send_hook(hook_url: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    let url = reqwest::Url::parse(hook_url).expect("hook url");
    let addr = url.socket_addrs(|| Some(80)).expect("hook url address")[0];
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    crate::http::request_with(addr, "POST", &path, &pairs, body).expect("send webhook").0
}

/// Delivers a push of `branch` (from `before` to `after`) of the repository at
/// `clone_url`, as `forge` would; the answer's status code.
#[allow(clippy::too_many_arguments)]
pub fn send_push(
    forge: Forge,
    hook_url: &str,
    secret: &str,
    clone_url: &str,
    branch: &str,
    before: &str,
    after: &str,
    delivery_id: &str,
) -> u16 {
    let body = push_payload(forge, clone_url, branch, before, after);
    let event = match forge {
        Forge::Github | Forge::Gitea => "push",
        Forge::Gitlab => "Push Hook",
    };
    send_hook(hook_url, &hook_headers(forge, event, secret, &body, delivery_id), &body)
}

/// Delivers GitHub's ping for the repository at `clone_url`; the answer's status code.
pub fn send_ping(hook_url: &str, secret: &str, clone_url: &str, delivery_id: &str) -> u16 {
    let body = ping_payload(clone_url);
    send_hook(hook_url, &hook_headers(Forge::Github, "ping", secret, &body, delivery_id), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "test-token";
    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn post(forge: &TestForge, path: &str, headers: &[(&str, &str)], body: Value) -> u16 {
        let mut pairs = vec![("Content-Type", "application/json")];
        pairs.extend_from_slice(headers);
        let body = body.to_string();
        crate::http::request_with(forge.addr(), "POST", path, &pairs, body.as_bytes())
            .expect("post")
            .0
    }

    fn github_headers(token: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Authorization", format!("Bearer {token}")),
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
            ("User-Agent", "eventide-test".into()),
        ]
    }

    fn borrow<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        pairs.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn statuses_of_each_forge_are_recorded() {
        let forge = TestForge::start(TOKEN);
        let github = github_headers(TOKEN);
        let body = json!({ "state": "pending", "context": "eventide/test", "description": "queued",
            "target_url": "http://127.0.0.1/jobs/1" });
        let path = format!("/api/v3/repos/octo/hello/statuses/{SHA}");
        assert_eq!(post(&forge, &path, &borrow(&github), body.clone()), 201);
        let path = format!("/api/v1/repos/octo/hello/statuses/{SHA}");
        let gitea_auth = format!("token {TOKEN}");
        assert_eq!(post(&forge, &path, &[("Authorization", &gitea_auth)], body), 201);
        let path = format!("/api/v4/projects/group%2Fsub%2Fhello/statuses/{SHA}");
        let gitlab = json!({ "state": "running", "name": "eventide/test" });
        assert_eq!(post(&forge, &path, &[("PRIVATE-TOKEN", TOKEN)], gitlab), 201);
        let statuses = forge.statuses();
        assert_eq!(statuses.len(), 3, "{statuses:?} {:?}", forge.rejected());
        assert_eq!(statuses[0].forge, Forge::Github);
        assert_eq!(statuses[0].target_url.as_deref(), Some("http://127.0.0.1/jobs/1"));
        assert_eq!(statuses[1].forge, Forge::Gitea);
        assert_eq!(statuses[2].project, "group/sub/hello");
        assert_eq!(statuses[2].state, "running");
        assert_eq!(statuses[2].context, "eventide/test");
    }

    #[test]
    fn bad_tokens_paths_and_bodies_are_refused() {
        let forge = TestForge::start(TOKEN);
        let path = format!("/api/v3/repos/octo/hello/statuses/{SHA}");
        let body = json!({ "state": "success", "context": "eventide/test" });
        let wrong = github_headers("wrong");
        assert_eq!(post(&forge, &path, &borrow(&wrong), body.clone()), 401);
        let right = github_headers(TOKEN);
        let no_agent: Vec<_> =
            borrow(&right).into_iter().filter(|(n, _)| *n != "User-Agent").collect();
        assert_eq!(post(&forge, &path, &no_agent, body.clone()), 403);
        let bad_state = json!({ "state": "running", "context": "eventide/test" });
        assert_eq!(post(&forge, &path, &borrow(&right), bad_state), 422);
        let long = json!({ "state": "success", "context": "c", "description": "x".repeat(141) });
        assert_eq!(post(&forge, &path, &borrow(&right), long), 422);
        assert_eq!(post(&forge, "/api/v3/elsewhere", &borrow(&right), body.clone()), 404);
        let gitlab = format!("/api/v4/projects/g%2Fp/statuses/{SHA}");
        assert_eq!(post(&forge, &gitlab, &[("Authorization", "Bearer test-token")], body), 401);
        assert!(forge.received().is_empty());
        assert_eq!(forge.rejected().len(), 6, "{:?}", forge.rejected());
    }

    #[test]
    fn scripted_answers_come_first() {
        let forge = TestForge::start(TOKEN);
        forge.script([Answer::server_error(), Answer::too_many_requests(1)]);
        forge.script([Answer::unauthorized("Bad credentials")]);
        let path = format!("/api/v3/repos/octo/hello/statuses/{SHA}");
        let right = github_headers(TOKEN);
        let body = json!({ "state": "success", "context": "eventide/test" });
        let codes: Vec<u16> =
            (0..4).map(|_| post(&forge, &path, &borrow(&right), body.clone())).collect();
        assert_eq!(codes, [500, 429, 401, 201]);
        let answered: Vec<u16> = forge.received().iter().map(|s| s.answered).collect();
        assert_eq!(answered, [500, 429, 401, 201]);
        assert_eq!(forge.statuses().len(), 1);
    }

    #[test]
    fn payloads_carry_the_given_fields_and_signatures() {
        let before = "1111111111111111111111111111111111111111";
        for forge in Forge::ALL {
            let body = push_payload(forge, "http://127.0.0.1:9/repo.git", "release/1", before, SHA);
            let payload: Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(payload["ref"], "refs/heads/release/1");
            assert_eq!(payload["before"], before);
            assert_eq!(payload["after"], SHA);
            let url = match forge {
                Forge::Gitlab => &payload["project"]["git_http_url"],
                _ => &payload["repository"]["clone_url"],
            };
            assert_eq!(url, "http://127.0.0.1:9/repo.git");
            let headers = hook_headers(forge, "push", "s", &body, "id-1");
            assert!(headers.iter().any(|(_, v)| v == "id-1"), "{forge:?}");
        }
        let body = ping_payload("http://x/r.git");
        let headers = hook_headers(Forge::Github, "ping", "secret", &body, "d");
        let signature = headers.iter().find(|(n, _)| n == "X-Hub-Signature-256").expect("signed");
        assert_eq!(signature.1, format!("sha256={}", sign(&body, "secret")));
        // The example of GitHub's documentation.
        assert_eq!(
            sign(b"Hello, World!", "It's a Secret to Everybody"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
