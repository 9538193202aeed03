//! Jobs and results: `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`,
//! `POST /api/v1/jobs/{id}/cancel` and `POST /api/v1/rerun`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most jobs one request lists.
pub const MAX_LIMIT: usize = 1000;

/// A job's state: `waiting` (for the steps it needs), `queued`, `running`, `passed`,
/// `failed`, `timed_out`, `error`, `cancelled` or `skipped` (a step it needs did not
/// pass). All but the first three are final.
#[derive(Serialize, Deserialize, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Passed,
    Failed,
    TimedOut,
    Error,
    Cancelled,
    Waiting,
    Skipped,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Running,
        JobState::Passed,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Error,
        JobState::Cancelled,
        JobState::Waiting,
        JobState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Passed => "passed",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Error => "error",
            JobState::Cancelled => "cancelled",
            JobState::Waiting => "waiting",
            JobState::Skipped => "skipped",
        }
    }

    /// Parses [`JobState::as_str`]'s names.
    pub fn try_parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// True once the job has ended; it never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Waiting | JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What made a job: a commit observed on a branch (`push`) or a user (`rerun`).
#[derive(Serialize, Deserialize, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Push,
    Rerun,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Push => "push",
            Trigger::Rerun => "rerun",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Parsed test counts.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SummaryDoc {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub failing: Vec<String>,
}

/// A job as lists show it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobDoc {
    pub id: u64,
    /// The repository's url.
    pub repo: String,
    pub repo_id: String,
    pub branch: String,
    /// The full commit id.
    pub commit: String,
    pub trigger: Trigger,
    pub labels: Vec<String>,
    pub state: JobState,
    pub attempt: u32,
    /// Id of the runner node of the current or last attempt.
    pub runner: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Why the job could not run, was cancelled or gave up.
    pub message: Option<String>,
    pub summary: Option<SummaryDoc>,
    /// The build it belongs to (none for jobs queued before builds existed).
    pub build: Option<u64>,
    /// Its name in the build: `test`, `test (python=3.11)`.
    pub name: Option<String>,
}

/// One attempt of a job.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AttemptDoc {
    pub attempt: u32,
    pub runner: String,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    /// Why the attempt ended, when not by a result (its runner died, it was cancelled).
    pub note: Option<String>,
}

/// A job with everything the state keeps about it: the fields of [`JobDoc`], then these.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobDetailDoc {
    #[serde(flatten)]
    pub job: JobDoc,
    pub attempts: Vec<AttemptDoc>,
    /// The end of the output kept in the replicated state.
    pub output_tail: String,
    /// True once retention dropped the tail of this old job.
    pub output_pruned: bool,
}

/// Query parameters of `GET /api/v1/jobs`.
///
/// `state` stays text, so that an unknown name is answered with the list of known ones
/// rather than a generic decode error; an empty one means no filter.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub repo: Option<u64>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub state: Option<String>,
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

/// The body of `POST /api/v1/rerun`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RerunRequest {
    /// A full commit id or an unambiguous prefix of one that Eventide has tested.
    pub commit: String,
    /// The branch to record; defaults to the branch of the newest job of that commit.
    pub branch: Option<String>,
    /// Who asks (`user@host`), shown with the new build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_are_their_snake_case_names() {
        let cases = [
            (JobState::Queued, "queued", false),
            (JobState::Running, "running", false),
            (JobState::Passed, "passed", true),
            (JobState::Failed, "failed", true),
            (JobState::TimedOut, "timed_out", true),
            (JobState::Error, "error", true),
            (JobState::Cancelled, "cancelled", true),
            (JobState::Waiting, "waiting", false),
            (JobState::Skipped, "skipped", true),
        ];
        for (state, name, is_final) in cases {
            let text = serde_json::to_string(&state).expect("serialisable");
            assert_eq!(text, format!("\"{name}\""));
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(state.is_final(), is_final, "{name}");
            assert_eq!(JobState::try_parse(name), Some(state));
            assert_eq!(serde_json::from_str::<JobState>(&text).expect("parses"), state);
        }
        assert_eq!(JobState::try_parse("done"), None);
    }

    #[test]
    fn triggers_are_push_or_rerun() {
        for (trigger, name) in [(Trigger::Push, "push"), (Trigger::Rerun, "rerun")] {
            let text = serde_json::to_string(&trigger).expect("serialisable");
            assert_eq!(text, format!("\"{name}\""));
            assert_eq!(trigger.to_string(), name);
            assert_eq!(serde_json::from_str::<Trigger>(&text).expect("parses"), trigger);
        }
    }
}
