//! What the cluster knows of a repository's forge: the settings a person gives
//! (`repo add`/`repo set`), named secrets included (by name only: values live sealed in
//! the secret store), and the kinds of forge Eventide talks to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A forge whose webhooks Eventide verifies and whose commit-status API it posts to.
/// Forgejo speaks Gitea's API and sends Gitea's webhooks, so it is `Gitea`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

impl ForgeKind {
    pub const ALL: [ForgeKind; 3] = [ForgeKind::Github, ForgeKind::Gitlab, ForgeKind::Gitea];

    /// The name in flags, URLs (`/api/v1/hooks/{name}`) and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForgeKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "github" => Ok(ForgeKind::Github),
            "gitlab" => Ok(ForgeKind::Gitlab),
            "gitea" | "forgejo" => Ok(ForgeKind::Gitea),
            _ => Err(format!("unknown forge {text:?}: expected github, gitlab or gitea")),
        }
    }
}

/// The settings of one watched repository. Every secret is named, never held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSettings {
    /// The forge that hosts it: enables its webhook endpoint and commit statuses.
    pub forge: Option<ForgeKind>,
    /// The forge's API root (`https://api.github.com`, `https://gitlab.example/api/v4`);
    /// `None`: derived from the repository's url.
    pub api_url: Option<String>,
    /// Secret holding the token for https fetches and the status API.
    pub token: Option<String>,
    /// Secret holding the private key for ssh fetches.
    pub ssh_key: Option<String>,
    /// Secret holding `known_hosts` lines trusted for this repository's ssh host, on top
    /// of each node's own `known_hosts` files.
    pub known_hosts: Option<String>,
    /// Secret the forge signs (or sends) its webhook deliveries with.
    pub webhook_secret: Option<String>,
    /// A CA bundle (a path on every node) trusted for https besides the system's.
    pub ca_file: Option<String>,
    /// Branch patterns (`main`, `release/*`) whose commits become jobs; empty: all.
    pub branches: Vec<String>,
    /// How often the leader polls this repository; `None`: the node's `--poll-interval`.
    pub poll_interval_ms: Option<u64>,
    /// The context of its commit statuses; `None`: `eventide/test`.
    pub status_context: Option<String>,
}
