//! Builds: one trigger of one commit (a push or a rerun) as a graph of jobs.
//!
//! Each step of a repository's pipeline, and each cell of a step's matrix, is a job with
//! the lifecycle, leases and fencing of any job. A job that needs others starts
//! `waiting`; when the last of them ends it is queued if all of them passed and
//! `skipped` otherwise. A build's status follows from its jobs and is stored with it, so
//! that it survives the retention of its jobs. Jobs queued by the older `Observe` and
//! `Rerun` commands belong to no build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::apply::text_problem;
use super::{JobStatus, Trigger, MAX_LABELS, MAX_LABEL_BYTES};
use crate::command::{
    BuildPlan, MAX_JOBS_PER_BUILD, MAX_MATRIX_KEYS, MAX_MATRIX_KEY_BYTES, MAX_MATRIX_VALUE_BYTES,
    MAX_STEP_NAME_BYTES,
};
use crate::types::{BuildId, CommitId, JobId, NodeId, RepoId, Timestamp};

/// The most artifacts one job may keep.
pub const MAX_ARTIFACTS_PER_JOB: usize = 64;
/// The most artifacts the state indexes at once; the artifacts of the oldest final jobs
/// are forgotten first to make room (their runners then delete the files).
pub const MAX_ARTIFACTS: usize = 10_000;
/// The longest artifact name (its path in the workspace) accepted.
pub const MAX_ARTIFACT_NAME_BYTES: usize = 255;
/// The most nodes recorded as holding one artifact.
pub const MAX_ARTIFACT_HOLDERS: usize = 4;

/// Where a build is. Final once every job of it is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BuildStatus {
    /// No job of it has started yet.
    Queued,
    /// At least one job is running, or some ran and others wait.
    Running,
    Passed,
    /// A job failed or timed out.
    Failed,
    /// A job could not run, and none failed.
    Error,
    /// A job was cancelled, and none failed or could not run.
    Cancelled,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 6] = [
        BuildStatus::Queued,
        BuildStatus::Running,
        BuildStatus::Passed,
        BuildStatus::Failed,
        BuildStatus::Error,
        BuildStatus::Cancelled,
    ];

    pub fn is_final(self) -> bool {
        !matches!(self, BuildStatus::Queued | BuildStatus::Running)
    }

    /// The name used in JSON, on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Passed => "passed",
            BuildStatus::Failed => "failed",
            BuildStatus::Error => "error",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    pub fn try_parse(name: &str) -> Option<BuildStatus> {
        BuildStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// The status of a build whose jobs are in `statuses`.
    pub fn of(statuses: impl IntoIterator<Item = JobStatus>) -> BuildStatus {
        let (mut open, mut started, mut failed, mut error, mut cancelled) =
            (false, false, false, false, false);
        for status in statuses {
            match status {
                JobStatus::Waiting | JobStatus::Queued => open = true,
                JobStatus::Running => {
                    open = true;
                    started = true;
                }
                JobStatus::Passed => started = true,
                JobStatus::Failed | JobStatus::TimedOut => {
                    failed = true;
                    started = true;
                }
                JobStatus::Error => {
                    error = true;
                    started = true;
                }
                JobStatus::Cancelled => cancelled = true,
                JobStatus::Skipped => {}
            }
        }
        match (open, started) {
            (true, true) => return BuildStatus::Running,
            (true, false) => return BuildStatus::Queued,
            _ => {}
        }
        if failed {
            BuildStatus::Failed
        } else if error {
            BuildStatus::Error
        } else if cancelled {
            BuildStatus::Cancelled
        } else {
            BuildStatus::Passed
        }
    }
}

/// One trigger of one commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: BuildId,
    pub repo: RepoId,
    pub branch: String,
    pub commit: CommitId,
    pub trigger: Trigger,
    /// Who or what triggered it ("webhook github", the API client of a rerun).
    pub by: Option<String>,
    pub subject: String,
    pub author: String,
    pub created_at: Timestamp,
    /// Its jobs in plan order: every job after the jobs it needs.
    pub jobs: Vec<JobId>,
    /// What [`BuildStatus::of`] its jobs gave when one last changed.
    pub status: BuildStatus,
    /// When the last of its jobs became final.
    pub finished_at: Option<Timestamp>,
    /// Why it was cancelled as a whole (superseded, or by a user).
    pub cancelled: Option<String>,
}

/// What a job of a build is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStep {
    pub build: BuildId,
    pub step: String,
    pub matrix: Vec<(String, String)>,
    /// The jobs this one waits for, as indexes into its build's jobs (see
    /// [`State::needs_of`](super::State::needs_of)).
    pub needs: Vec<u16>,
    pub concurrency: Option<String>,
    /// What the job stored for the jobs that need it.
    pub artifacts: Vec<Artifact>,
}

impl JobStep {
    /// The job's name, unique in its build: `test`, `test (os=linux, python=3.11)`.
    pub fn name(&self) -> String {
        job_name(&self.step, &self.matrix)
    }
}

/// The name of the job of `step` for one cell of its matrix.
pub fn job_name(step: &str, matrix: &[(String, String)]) -> String {
    if matrix.is_empty() {
        return step.to_owned();
    }
    let cell: Vec<String> = matrix.iter().map(|(key, value)| format!("{key}={value}")).collect();
    format!("{step} ({})", cell.join(", "))
}

/// A file a job produced, stored content-addressed on the runners named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its path relative to the job's workspace, where a job that needs it finds it too.
    pub name: String,
    /// Lowercase hex of the content's SHA-256.
    pub sha256: String,
    pub size: u64,
    /// Nodes that stored a copy, the producing runner first.
    pub holders: Vec<NodeId>,
}

/// The builds half of the replicated data (added in snapshot payload version 6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PipelineData {
    pub(super) last_build_id: u64,
    pub(super) builds: BTreeMap<BuildId, Build>,
    /// The step of every job that belongs to a build.
    pub(super) steps: BTreeMap<JobId, JobStep>,
}

impl PipelineData {
    pub(super) fn is_empty(&self) -> bool {
        self.last_build_id == 0 && self.builds.is_empty() && self.steps.is_empty()
    }
}

/// Why `plan` cannot be queued as it is, if it cannot (see [`BuildPlan::problem`]).
pub fn plan_problem(plan: &BuildPlan) -> Option<String> {
    if plan.jobs.is_empty() {
        return Some("a build needs at least one job".to_owned());
    }
    if plan.jobs.len() > MAX_JOBS_PER_BUILD {
        return Some(format!("{} jobs, at most {MAX_JOBS_PER_BUILD}", plan.jobs.len()));
    }
    for (index, job) in plan.jobs.iter().enumerate() {
        let problem = text_problem("step name", &job.step, MAX_STEP_NAME_BYTES)
            .or_else(|| {
                let twice = plan.jobs[..index]
                    .iter()
                    .any(|other| other.step == job.step && other.matrix == job.matrix);
                twice.then(|| format!("{} is planned twice", job_name(&job.step, &job.matrix)))
            })
            .or_else(|| {
                (job.matrix.len() > MAX_MATRIX_KEYS)
                    .then(|| format!("more than {MAX_MATRIX_KEYS} matrix keys"))
            })
            .or_else(|| {
                job.matrix.iter().find_map(|(key, value)| {
                    text_problem("matrix key", key, MAX_MATRIX_KEY_BYTES)
                        .or_else(|| text_problem("matrix value", value, MAX_MATRIX_VALUE_BYTES))
                })
            })
            .or_else(|| {
                job.needs.iter().enumerate().find_map(|(n, &need)| {
                    if usize::from(need) >= index {
                        Some(format!("needs job {need}, which does not come before it"))
                    } else if job.needs[..n].contains(&need) {
                        Some(format!("needs job {need} twice"))
                    } else {
                        None
                    }
                })
            })
            .or_else(|| {
                (job.labels.len() > MAX_LABELS).then(|| format!("more than {MAX_LABELS} labels"))
            })
            .or_else(|| {
                job.labels.iter().find_map(|label| text_problem("label", label, MAX_LABEL_BYTES))
            })
            .or_else(|| {
                job.concurrency
                    .as_deref()
                    .and_then(|group| text_problem("concurrency group", group, MAX_LABEL_BYTES))
            });
        if let Some(problem) = problem {
            return Some(format!("job {index}: {problem}"));
        }
    }
    None
}

/// Why `artifact` cannot be recorded, if it cannot.
pub fn artifact_problem(artifact: &Artifact) -> Option<String> {
    let name = &artifact.name;
    if let Some(problem) = text_problem("artifact name", name, MAX_ARTIFACT_NAME_BYTES) {
        return Some(problem);
    }
    if name.starts_with('/') || name.split('/').any(|part| part.is_empty() || part == "..") {
        return Some(format!("artifact name {name:?} is not a relative path inside the workspace"));
    }
    let hex = artifact.sha256.len() == 64
        && artifact.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Some(format!("artifact {name:?}: sha256 is not 64 lowercase hex digits"));
    }
    if artifact.holders.is_empty() || artifact.holders.len() > MAX_ARTIFACT_HOLDERS {
        return Some(format!("artifact {name:?}: 1 to {MAX_ARTIFACT_HOLDERS} holders"));
    }
    let mut holders = artifact.holders.clone();
    holders.sort();
    holders.dedup();
    if holders.len() != artifact.holders.len() {
        return Some(format!("artifact {name:?}: a holder is named twice"));
    }
    None
}

/// `text` within `limit` bytes, control characters made spaces: the subject and author
/// of a commit are shown as they are, but never break a line or a terminal.
pub(super) fn shown_text(text: &str, limit: usize) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    super::apply::head_of(cleaned.trim(), limit).to_owned()
}
