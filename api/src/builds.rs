//! Builds: `GET /api/v1/builds`, `GET /api/v1/builds/{id}`,
//! `POST /api/v1/builds/{id}/cancel`, and a job's artifacts
//! (`GET /api/v1/jobs/{id}/artifacts`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobState, Trigger};

/// A build's state: `queued`, `running`, `passed`, `failed` (a job failed or timed out),
/// `error` (a job could not run) or `cancelled`. The last four are final.
#[derive(Serialize, Deserialize, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Queued,
    Running,
    Passed,
    Failed,
    Error,
    Cancelled,
}

impl BuildState {
    pub const ALL: [BuildState; 6] = [
        BuildState::Queued,
        BuildState::Running,
        BuildState::Passed,
        BuildState::Failed,
        BuildState::Error,
        BuildState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Running => "running",
            BuildState::Passed => "passed",
            BuildState::Failed => "failed",
            BuildState::Error => "error",
            BuildState::Cancelled => "cancelled",
        }
    }

    pub fn try_parse(name: &str) -> Option<BuildState> {
        BuildState::ALL.into_iter().find(|state| state.as_str() == name)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, BuildState::Queued | BuildState::Running)
    }
}

impl fmt::Display for BuildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A file a job stored for the jobs after it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDoc {
    /// Its path in the job's workspace.
    pub name: String,
    pub size: u64,
    /// Hex of the content's SHA-256.
    pub sha256: String,
    /// Ids of the nodes that keep a copy.
    pub holders: Vec<String>,
}

/// One job of a build, as the build shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BuildJobDoc {
    pub id: u64,
    /// `test`, or `test (python=3.11)` for a matrix cell.
    pub name: String,
    pub step: String,
    pub matrix: BTreeMap<String, String>,
    /// Ids of the jobs it waits for.
    pub needs: Vec<u64>,
    pub state: JobState,
    pub attempt: u32,
    pub runner: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
    pub artifacts: Vec<ArtifactDoc>,
}

/// A build: one trigger of one commit, with its jobs in plan order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BuildDoc {
    pub id: u64,
    /// The repository's url.
    pub repo: String,
    pub repo_id: String,
    pub branch: String,
    pub commit: String,
    /// The first line of the commit message.
    pub subject: String,
    pub author: String,
    pub trigger: Trigger,
    /// Who or what triggered it, when known.
    pub by: Option<String>,
    pub state: BuildState,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub finished_at: Option<u64>,
    /// From its creation to the end of its last job.
    pub duration_ms: Option<u64>,
    /// Why it was cancelled as a whole (superseded by a newer commit, or by a user).
    pub cancelled: Option<String>,
    pub jobs: Vec<BuildJobDoc>,
}

/// Query parameters of `GET /api/v1/builds`, as for jobs.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildListQuery {
    pub repo: Option<u64>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub state: Option<String>,
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_states_are_their_snake_case_names() {
        for state in BuildState::ALL {
            let text = serde_json::to_string(&state).expect("serialisable");
            assert_eq!(text, format!("\"{}\"", state.as_str()));
            assert_eq!(BuildState::try_parse(state.as_str()), Some(state));
            let is_final = !matches!(state, BuildState::Queued | BuildState::Running);
            assert_eq!(state.is_final(), is_final);
        }
        assert_eq!(BuildState::try_parse("done"), None);
    }
}
