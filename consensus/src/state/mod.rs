//! The CI state machine: every rule about jobs, as plain deterministic code.
//!
//! [`State::apply`] maps (state, command) to (new state, reply) with no clock, no
//! randomness and no I/O, so replicas applying the same log end byte-identical. A
//! refused command changes nothing.
//!
//! - `job`: the records (repositories, cursors, jobs).
//! - `apply`: the rules, one function per command.
//! - `query`: read-only views the rest of the system needs.
//! - `forge`: a repository's forge settings.
//! - `secrets`: the secret store (sealed values by name) and its rules.
//! - `pipeline`: builds (a commit's trigger as a graph of jobs) and artifacts;
//!   `pipeline_rules`: their rules.
//! - `bounds`: the largest state (and so snapshot) the limits allow.
//! - `legacy`: the data as snapshots of earlier versions hold it.
//!
//! Only [`Data`] is replicated and snapshotted; the indexes are derived from it and
//! rebuilt when a snapshot is decoded.

mod apply;
mod bounds;
mod forge;
mod job;
mod legacy;
mod pipeline;
mod pipeline_rules;
mod query;
mod secrets;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::bounds::largest_state_bytes;
use self::forge::ForgeData;
pub use self::forge::{
    branch_matches, branch_patterns_problem, status_description, ForgeKind, ForgeRefusal,
    RepoSettings, StatusUpdate, DEFAULT_STATUS_CONTEXT, MAX_BRANCH_PATTERNS, MAX_DESCRIPTION_BYTES,
    MAX_FORGE_ANSWER_BYTES, MAX_OUTBOX,
};
pub use self::job::{Attempt, Cursor, Job, JobResult, JobStatus, Repo, Trigger};
#[cfg(test)]
pub(crate) use self::legacy::WrittenV1;
pub use self::legacy::{
    StateV1, StateV2, StateV3, StateV4, StateV5, WrittenV2, WrittenV3, WrittenV4, WrittenV5,
};
use self::pipeline::PipelineData;
pub use self::pipeline::{
    artifact_problem, job_name, plan_problem, Artifact, Build, BuildStatus, JobStep, MAX_ARTIFACTS,
    MAX_ARTIFACTS_PER_JOB, MAX_ARTIFACT_HOLDERS, MAX_ARTIFACT_NAME_BYTES,
};
pub use self::query::{BuildFilter, JobFilter, QueueCounts};
pub use self::secrets::{
    sealed_size_problem, secret_name_problem, SecretAccess, SecretInfo, StoredSecret,
    MAX_SEALED_BYTES, MAX_SECRETS, MAX_SECRET_NAME_BYTES, MAX_SECRET_VALUE_BYTES,
};
use crate::types::{BuildId, CommitId, JobId, NodeId, RepoId};

/// Limits the state machine enforces; changed by `Command::SetLimits`.
///
/// With the per-item bounds below they bound the whole state, and so every snapshot: see
/// [`largest_state_bytes`]. The defaults are also the most each limit may be set to,
/// so that no sequence of `SetLimits` can let the state outgrow what a node can read back
/// from its own disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Attempts a job gets when its runner is lost before it ends in `error`.
    pub max_attempts: u32,
    /// The most output a final job keeps.
    pub output_tail_bytes: u32,
    /// Final jobs whose output tail (and failing test names) are kept; older ones keep
    /// only their result and counts.
    pub retained_outputs: u32,
    /// Final jobs kept at all; older ones are forgotten (their cursors remain, so their
    /// commits are never queued again).
    pub retained_jobs: u32,
    /// Jobs a repository may have queued or running. At that many, a rerun is refused
    /// ([`Refusal::QueueFull`](crate::command::Refusal::QueueFull)) and so is an
    /// observation, whose cursor then stays, so that its commits are offered again. An
    /// observation is never split: one accepted below the limit may pass it by up to
    /// [`MAX_COMMITS_PER_OBSERVE`] - 1 jobs.
    pub max_queue_per_repo: u32,
    /// Repositories watched at once.
    pub max_repos: u32,
    /// Branches of one repository with a cursor; an observation of another is refused.
    pub max_branches_per_repo: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attempts: 3,
            output_tail_bytes: 64 * 1024,
            retained_outputs: 1_000,
            retained_jobs: 100_000,
            max_queue_per_repo: 500,
            max_repos: 100,
            max_branches_per_repo: 1_000,
        }
    }
}

impl Limits {
    /// Why these limits cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let most = Limits::default();
        let checks = [
            ("max_attempts", self.max_attempts, 1, most.max_attempts),
            ("output_tail_bytes", self.output_tail_bytes, 1024, most.output_tail_bytes),
            ("retained_outputs", self.retained_outputs, 0, most.retained_outputs),
            ("retained_jobs", self.retained_jobs, 1, most.retained_jobs),
            ("max_queue_per_repo", self.max_queue_per_repo, 1, most.max_queue_per_repo),
            ("max_repos", self.max_repos, 1, most.max_repos),
            ("max_branches_per_repo", self.max_branches_per_repo, 1, most.max_branches_per_repo),
        ];
        for (name, value, least, most) in checks {
            if value < least || value > most {
                return Some(format!("{name} must be {least} to {most}, not {value}"));
            }
        }
        if self.retained_outputs > self.retained_jobs {
            return Some("retained_outputs must not exceed retained_jobs".to_owned());
        }
        None
    }
}

/// The most commits one `Observe` may queue; the observer caps far lower (100 by default).
pub const MAX_COMMITS_PER_OBSERVE: usize = 500;
/// The longest repository url accepted.
pub const MAX_NAME_BYTES: usize = 4096;
/// The longest branch name accepted (what most forges allow).
pub const MAX_BRANCH_BYTES: usize = 255;
/// The most labels a job may require.
pub const MAX_LABELS: usize = 8;
/// The longest label accepted.
pub const MAX_LABEL_BYTES: usize = 32;
/// The longest message kept with a result (why a job could not run, was cancelled or
/// gave up).
pub const MAX_MESSAGE_BYTES: usize = 512;
/// The longest reason kept for a requeue or a cancel.
pub const MAX_REASON_BYTES: usize = 64;
/// The longest note kept with an attempt: a reason behind a short prefix ("requeued: ").
pub const MAX_NOTE_BYTES: usize = MAX_REASON_BYTES + 16;
/// The most failing test names kept with a result; longer lists are cut.
pub const MAX_FAILING_NAMES: usize = 100;
/// The longest failing test name kept; longer ones are cut.
pub const MAX_TEST_NAME_BYTES: usize = 256;

/// The replicated data: exactly what a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Data {
    limits: Limits,
    last_repo_id: u64,
    last_job_id: u64,
    repos: BTreeMap<RepoId, Repo>,
    cursors: BTreeMap<RepoId, BTreeMap<String, Cursor>>,
    jobs: BTreeMap<JobId, Job>,
    /// Final jobs in the order they became final (for `retained_jobs`).
    finished: VecDeque<JobId>,
    /// The newest final jobs that still keep their output (for `retained_outputs`), a
    /// suffix of `finished`.
    outputs_kept: VecDeque<JobId>,
    /// The secret store, sealed values only (added in snapshot payload version 3).
    secrets: BTreeMap<String, StoredSecret>,
    /// Repository settings and the status outbox (added in snapshot payload version 4).
    forge: ForgeData,
    /// The branch patterns of the secrets restricted to some branches (added in snapshot
    /// payload version 5); a secret without an entry is for every branch. Every key is a
    /// name in `secrets`.
    secret_branches: BTreeMap<String, Vec<String>>,
    /// Builds and the steps of their jobs (added in snapshot payload version 6).
    pipeline: PipelineData,
}

/// Indexes derived from [`Data`]; never serialized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Index {
    queued: BTreeSet<JobId>,
    running: BTreeMap<NodeId, BTreeSet<JobId>>,
    by_commit: BTreeMap<CommitId, BTreeSet<JobId>>,
    repo_by_url: BTreeMap<String, RepoId>,
    /// How many jobs of each repository are queued or running (no entry: none).
    open_by_repo: BTreeMap<RepoId, u32>,
    /// The outbox entry of each job that has one.
    status_by_job: BTreeMap<JobId, u64>,
    /// Builds not final yet.
    open_builds: BTreeSet<BuildId>,
    /// Artifacts indexed, over all jobs (at most [`MAX_ARTIFACTS`]).
    artifacts: usize,
    /// The running jobs of each concurrency group (one at most, by the rules).
    groups_running: BTreeMap<String, BTreeSet<JobId>>,
}

impl Index {
    fn build(data: &Data) -> Index {
        let mut index = Index::default();
        for repo in data.repos.values() {
            index.repo_by_url.insert(repo.url.clone(), repo.id);
        }
        for job in data.jobs.values() {
            index.insert_job(job);
        }
        for (&id, update) in &data.forge.outbox {
            index.status_by_job.insert(update.job, id);
        }
        index.artifacts = data.pipeline.steps.values().map(|step| step.artifacts.len()).sum();
        for job in data.jobs.values().filter(|job| job.status == JobStatus::Running) {
            if let Some(group) =
                data.pipeline.steps.get(&job.id).and_then(|s| s.concurrency.clone())
            {
                index.groups_running.entry(group).or_default().insert(job.id);
            }
        }
        for (&id, build) in &data.pipeline.builds {
            if !build.status.is_final() {
                index.open_builds.insert(id);
            }
        }
        index
    }

    fn insert_job(&mut self, job: &Job) {
        self.by_commit.entry(job.commit.clone()).or_default().insert(job.id);
        self.track_status(job);
    }

    fn remove_job(&mut self, job: &Job) {
        self.untrack_status(job);
        if let Some(ids) = self.by_commit.get_mut(&job.commit) {
            ids.remove(&job.id);
            if ids.is_empty() {
                self.by_commit.remove(&job.commit);
            }
        }
    }

    /// Records the job under its current status.
    fn track_status(&mut self, job: &Job) {
        if !job.status.is_final() {
            *self.open_by_repo.entry(job.repo).or_default() += 1;
        }
        match (job.status, job.runner) {
            (JobStatus::Queued, _) => {
                self.queued.insert(job.id);
            }
            (JobStatus::Running, Some(runner)) => {
                self.running.entry(runner).or_default().insert(job.id);
            }
            _ => {}
        }
    }

    /// Forgets the job under its current status (call before changing it).
    fn untrack_status(&mut self, job: &Job) {
        if !job.status.is_final() {
            if let Some(open) = self.open_by_repo.get_mut(&job.repo) {
                *open -= 1;
                if *open == 0 {
                    self.open_by_repo.remove(&job.repo);
                }
            }
        }
        match (job.status, job.runner) {
            (JobStatus::Queued, _) => {
                self.queued.remove(&job.id);
            }
            (JobStatus::Running, Some(runner)) => {
                if let Some(ids) = self.running.get_mut(&runner) {
                    ids.remove(&job.id);
                    if ids.is_empty() {
                        self.running.remove(&runner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The whole CI state of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    data: Data,
    index: Index,
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = Data::deserialize(deserializer)?;
        let index = Index::build(&data);
        Ok(State { data, index })
    }
}
