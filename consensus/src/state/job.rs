//! What the state machine records: repositories, branch cursors and jobs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::command::TestSummary;
use crate::types::{CommitId, JobId, NodeId, RepoId, Timestamp};

/// A watched repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub id: RepoId,
    /// Where runners and the observer fetch from: a path or a `file://`/`http://` url.
    pub url: String,
    pub added_at: Timestamp,
}

/// The last observed head of one branch of one repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub head: CommitId,
    pub updated_at: Timestamp,
    /// How many commits the observer's per-round cap has skipped on this branch.
    pub skipped_total: u64,
    /// The most recently skipped commits, newest last, at most
    /// [`Cursor::RECENT_SKIPPED`] of them.
    pub recent_skipped: Vec<CommitId>,
}

impl Cursor {
    pub const RECENT_SKIPPED: usize = 10;
}

/// Why a job exists.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// A commit the observer saw on a branch.
    Push,
    /// A user asked for the commit to be tested again.
    Rerun,
}

/// Where a job is in its life. `queued` → `running` → one of the final states; a job of a
/// build that needs others starts `waiting` and is queued or `skipped` when they end.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    Queued,
    Running,
    Passed,
    Failed,
    TimedOut,
    Error,
    Cancelled,
    /// Part of a build, waiting for the jobs it needs to pass.
    Waiting,
    /// Part of a build, not run because a job it needs did not pass.
    Skipped,
}

impl JobStatus {
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Passed,
        JobStatus::Failed,
        JobStatus::TimedOut,
        JobStatus::Error,
        JobStatus::Cancelled,
        JobStatus::Waiting,
        JobStatus::Skipped,
    ];

    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Waiting | JobStatus::Queued | JobStatus::Running)
    }

    /// The name used in JSON, on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Passed => "passed",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Waiting => "waiting",
            JobStatus::Skipped => "skipped",
        }
    }

    /// Parses [`JobStatus::as_str`]'s names.
    pub fn try_parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// One attempt at running a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub runner: NodeId,
    pub started_at: Timestamp,
    /// Set when the attempt ended (finished, requeued or cancelled).
    pub ended_at: Option<Timestamp>,
    /// Why it ended, when not by a result: "requeued: runner died", "cancelled: …".
    pub note: Option<String>,
}

/// What a final job keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The end of the output, at most `Limits::output_tail_bytes`.
    pub output_tail: String,
    /// True once retention dropped the tail, and the failing test names (their counts
    /// stay), to keep the state small.
    pub output_pruned: bool,
    pub summary: Option<TestSummary>,
    /// Why the job could not run, was cancelled or gave up.
    pub message: Option<String>,
    pub finished_at: Timestamp,
}

impl JobResult {
    /// The result of a job that never ran, saying why.
    pub(super) fn message_only(message: String, at: Timestamp) -> JobResult {
        JobResult {
            exit_code: None,
            duration_ms: 0,
            output_tail: String::new(),
            output_pruned: false,
            summary: None,
            message: Some(message),
            finished_at: at,
        }
    }
}

/// A commit to test on a branch of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub repo: RepoId,
    pub branch: String,
    pub commit: CommitId,
    pub trigger: Trigger,
    /// Labels a runner must all have to take the job (sorted, no duplicates).
    pub labels: Vec<String>,
    pub status: JobStatus,
    /// The current attempt, starting at 1. A `Finish` or `Requeue` for any other attempt
    /// is refused.
    pub attempt: u32,
    pub created_at: Timestamp,
    /// The runner of the current (or last) attempt.
    pub runner: Option<NodeId>,
    pub started_at: Option<Timestamp>,
    /// Every attempt that started, oldest first.
    pub attempts: Vec<Attempt>,
    /// Set exactly once, when the job becomes final.
    pub result: Option<JobResult>,
}

impl Job {
    /// True if a runner with `runner_labels` may take this job.
    pub fn runnable_with(&self, runner_labels: &BTreeSet<String>) -> bool {
        self.labels.iter().all(|label| runner_labels.contains(label))
    }
}
