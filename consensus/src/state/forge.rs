//! What the cluster knows of a repository's forge: the settings a person gives
//! (`repo add`/`repo set`), named secrets included (by name only: values live sealed in
//! the secret store), the kinds of forge Eventide talks to, and the outbox of commit
//! statuses.
//!
//! Statuses are driven by the state: every change of a job of a repository with a forge
//! enqueues the job's status, replacing the one still waiting for it, so that the outbox
//! holds at most one per job and never a stale `pending` behind a final status. The
//! leader posts them in order and commits each delivery ([`Command::StatusDelivered`]);
//! a failover in between makes the next leader post it again, which the forge takes as
//! the same status.
//!
//! [`Command::StatusDelivered`]: crate::command::Command::StatusDelivered

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Job, JobStatus};
use crate::types::{CommitId, JobId, RepoId, Timestamp};

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

/// The longest forge API url accepted.
pub const MAX_API_URL_BYTES: usize = 512;
/// The longest CA file path accepted.
pub const MAX_PATH_BYTES: usize = 4096;
/// The most branch patterns a repository may have.
pub const MAX_BRANCH_PATTERNS: usize = 32;
/// The longest status context accepted.
pub const MAX_CONTEXT_BYTES: usize = 100;
/// The shortest and longest per-repository poll interval, in milliseconds.
pub const POLL_INTERVAL_MS: std::ops::RangeInclusive<u64> = 100..=24 * 3600 * 1000;
/// The longest status description kept: GitHub's limit.
pub const MAX_DESCRIPTION_BYTES: usize = 140;
/// The most statuses waiting for delivery; beyond it the oldest is dropped (a forge
/// that has refused or been down that long has its error in `status`).
pub const MAX_OUTBOX: usize = 10_000;
/// The longest forge answer kept with a refusal.
pub const MAX_FORGE_ANSWER_BYTES: usize = 512;
/// The context of a repository's statuses unless its settings name one.
pub const DEFAULT_STATUS_CONTEXT: &str = "eventide/test";

impl RepoSettings {
    /// Why these settings cannot be used, if they cannot. Secret names need not exist
    /// yet (a secret may be set after the repository); they must be valid names.
    pub fn problem(&self) -> Option<String> {
        if let Some(api_url) = &self.api_url {
            if api_url.len() > MAX_API_URL_BYTES {
                return Some(format!("api url longer than {MAX_API_URL_BYTES} bytes"));
            }
            if !(api_url.starts_with("https://") || api_url.starts_with("http://"))
                || api_url.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Some(format!("api url {api_url:?} is not an http(s) url"));
            }
        }
        if self.api_url.is_some() && self.forge.is_none() {
            return Some("an api url needs a forge (--forge github|gitlab|gitea)".to_owned());
        }
        let secrets = [
            ("token", &self.token),
            ("ssh key", &self.ssh_key),
            ("known hosts", &self.known_hosts),
            ("webhook secret", &self.webhook_secret),
        ];
        for (what, name) in secrets {
            if let Some(problem) = name.as_deref().and_then(super::secret_name_problem) {
                return Some(format!("{what}: {problem}"));
            }
        }
        if let Some(path) = &self.ca_file {
            if path.len() > MAX_PATH_BYTES || !path.starts_with('/') {
                return Some(format!("ca file {path:?} must be an absolute path"));
            }
            if path.chars().any(char::is_control) {
                return Some("ca file path contains control characters".to_owned());
            }
        }
        if let Some(problem) = branch_patterns_problem(&self.branches) {
            return Some(problem);
        }
        if let Some(ms) = self.poll_interval_ms {
            if !POLL_INTERVAL_MS.contains(&ms) {
                return Some(format!("poll interval {ms} ms: must be between 100ms and 24h"));
            }
        }
        if let Some(context) = &self.status_context {
            if context.is_empty() || context.len() > MAX_CONTEXT_BYTES {
                return Some(format!("status context must be 1 to {MAX_CONTEXT_BYTES} bytes"));
            }
            if context.chars().any(char::is_control) {
                return Some("status context contains control characters".to_owned());
            }
        }
        None
    }

    /// Whether commits on `branch` become jobs (see [`branch_matches`]).
    pub fn watches_branch(&self, branch: &str) -> bool {
        branch_matches(&self.branches, branch)
    }

    /// The context of this repository's commit statuses.
    pub fn context(&self) -> &str {
        self.status_context.as_deref().unwrap_or(DEFAULT_STATUS_CONTEXT)
    }
}

/// Why `patterns` cannot be a list of branch patterns (see [`branch_matches`]), if they
/// cannot: at most [`MAX_BRANCH_PATTERNS`], each a branch name's length at most, with no
/// space, control character or comma (lists are typed comma-separated).
pub fn branch_patterns_problem(patterns: &[String]) -> Option<String> {
    if patterns.len() > MAX_BRANCH_PATTERNS {
        return Some(format!("at most {MAX_BRANCH_PATTERNS} branch patterns"));
    }
    for pattern in patterns {
        let bare = pattern.strip_prefix('!').unwrap_or(pattern);
        if bare.is_empty() || bare.len() > super::MAX_BRANCH_BYTES {
            return Some(format!("branch pattern {pattern:?} is empty or too long"));
        }
        if bare.chars().any(|c| c.is_control() || c.is_whitespace() || c == ',') {
            return Some(format!("branch pattern {pattern:?} has a space or a comma"));
        }
    }
    None
}

/// Whether `branch` passes `patterns`: no patterns pass every branch; otherwise a
/// branch passes if some pattern without `!` matches it and no `!pattern` does (so
/// `["!wip/*"]` alone passes nothing: name what to test, then what to leave out). In a
/// pattern `*` matches any characters but `/`, `**` any characters at all, `?` one
/// character but `/`; everything else matches itself.
pub fn branch_matches(patterns: &[String], branch: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let mut included = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(excluded) if glob_matches(excluded.as_bytes(), branch.as_bytes()) => {
                return false;
            }
            Some(_) => {}
            None => included |= glob_matches(pattern.as_bytes(), branch.as_bytes()),
        }
    }
    included
}

/// `pattern` against `text` (see [`branch_matches`]), by dynamic programming over
/// (pattern position, text position): time in their product, whatever the pattern
/// (both are at most 255 bytes), so no pattern can make a round slow.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (p, t) = (pattern.len(), text.len());
    // matches[j]: pattern[..i] matches text[..j], for the current i.
    let mut matches = vec![false; t + 1];
    matches[0] = true;
    let mut i = 0;
    while i < p {
        let double = pattern[i] == b'*' && pattern.get(i + 1) == Some(&b'*');
        let mut next = vec![false; t + 1];
        match pattern[i] {
            b'*' => {
                // A star matches the empty string, then extends over what it may cover.
                for j in 0..=t {
                    next[j] =
                        matches[j] || (j > 0 && next[j - 1] && (double || text[j - 1] != b'/'));
                }
            }
            b'?' => {
                for j in 1..=t {
                    next[j] = matches[j - 1] && text[j - 1] != b'/';
                }
            }
            literal => {
                for j in 1..=t {
                    next[j] = matches[j - 1] && text[j - 1] == literal;
                }
            }
        }
        matches = next;
        i += if double { 2 } else { 1 };
    }
    matches[t]
}

/// A commit status waiting to be posted to the repository's forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub repo: RepoId,
    pub job: JobId,
    pub commit: CommitId,
    /// The job's status when this was enqueued.
    pub status: JobStatus,
    /// The short text beside the mark, at most [`MAX_DESCRIPTION_BYTES`].
    pub description: String,
    pub at: Timestamp,
}

/// A forge's last refusal of a repository's status, until a status is delivered again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeRefusal {
    pub at: Timestamp,
    /// What the forge answered (status code and message), at most
    /// [`MAX_FORGE_ANSWER_BYTES`].
    pub answer: String,
}

/// The forge half of the replicated data (added in snapshot payload version 4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ForgeData {
    /// Settings of repositories that have any; the others have the defaults.
    pub(super) settings: BTreeMap<RepoId, RepoSettings>,
    pub(super) last_status_id: u64,
    /// Statuses to post, by id (the order they were enqueued); at most one per job.
    pub(super) outbox: BTreeMap<u64, StatusUpdate>,
    pub(super) refusals: BTreeMap<RepoId, ForgeRefusal>,
}

impl ForgeData {
    pub(super) fn is_empty(&self) -> bool {
        self == &ForgeData::default()
    }
}

/// The status a forge shows for a job in `status`, in the project's own words.
pub fn status_description(job: &Job) -> String {
    let text = match (job.status, job.result.as_ref()) {
        (JobStatus::Queued, _) if job.attempt > 1 => {
            format!("queued again (attempt {})", job.attempt)
        }
        (JobStatus::Queued, _) => "queued".to_owned(),
        (JobStatus::Running, _) => "running".to_owned(),
        (JobStatus::Passed, result) => match result.and_then(|r| r.summary.as_ref()) {
            Some(summary) if summary.skipped > 0 => {
                format!("{} passed, {} skipped", summary.passed, summary.skipped)
            }
            Some(summary) => format!("{} passed", summary.passed),
            None => format!("passed in {}", seconds(result)),
        },
        (JobStatus::Failed, result) => match result.and_then(|r| r.summary.as_ref()) {
            Some(summary) => format!(
                "{} of {} failed",
                summary.failed,
                summary.passed + summary.failed + summary.skipped
            ),
            None => match result.and_then(|r| r.exit_code) {
                Some(code) => format!("failed (exit {code})"),
                None => "failed".to_owned(),
            },
        },
        (JobStatus::TimedOut, result) => format!("timed out after {}", seconds(result)),
        (JobStatus::Error, result) => match result.and_then(|r| r.message.as_deref()) {
            Some(message) => format!("error: {message}"),
            None => "error".to_owned(),
        },
        (JobStatus::Cancelled | JobStatus::Skipped, result) => {
            match result.and_then(|r| r.message.as_deref()) {
                Some(message) => message.to_owned(),
                None => job.status.as_str().to_owned(),
            }
        }
        (JobStatus::Waiting, _) => "waiting for the steps it needs".to_owned(),
    };
    super::apply::head_of(&text, MAX_DESCRIPTION_BYTES).to_owned()
}

fn seconds(result: Option<&super::JobResult>) -> String {
    let ms = result.map_or(0, |r| r.duration_ms);
    format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
}
