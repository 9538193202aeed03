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

use std::net::SocketAddr;

mod server;
mod webhooks;

pub use server::{Answer, ReceivedStatus, TestForge};
pub use webhooks::{
    hook_headers, ping_payload, push_payload, send_hook, send_ping, send_push, sign, ZERO_COMMIT,
};

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

    /// The node's webhook endpoint for this forge: `http://ADDR/api/v1/hooks/{forge}`.
    pub fn hook_url(self, node: SocketAddr) -> String {
        format!("http://{node}/api/v1/hooks/{}", self.as_str())
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
