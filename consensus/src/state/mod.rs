//! The CI state machine: every rule about jobs, as plain deterministic code.
//!
//! [`State::apply`] maps (state, command) to (new state, reply) with no clock, no
//! randomness and no I/O, so replicas applying the same log end byte-identical. A
//! refused command changes nothing.
//!
//! - `job`: the records (repositories, cursors, jobs).
//! - `apply`: the rules, one function per command.
//! - `query`: read-only views the rest of the system needs.
//!
//! Only [`Data`] is replicated and snapshotted; the indexes are derived from it and
//! rebuilt when a snapshot is decoded.

mod apply;
mod job;
mod query;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::job::{Attempt, Cursor, Job, JobResult, JobStatus, Repo, Trigger};
pub use self::query::{JobFilter, QueueCounts};
use crate::types::{CommitId, JobId, NodeId, RepoId};

/// Limits the state machine enforces; changed by `Command::SetLimits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Attempts a job gets when its runner is lost before it ends in `error`.
    pub max_attempts: u32,
    /// The most output a final job keeps.
    pub output_tail_bytes: u32,
    /// Final jobs whose output tail is kept; older ones keep only their result.
    pub retained_outputs: u32,
    /// Final jobs kept at all; older ones are forgotten (their cursors remain, so their
    /// commits are never queued again).
    pub retained_jobs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attempts: 3,
            output_tail_bytes: 64 * 1024,
            retained_outputs: 1_000,
            retained_jobs: 100_000,
        }
    }
}

impl Limits {
    /// Why these limits cannot be used, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if self.max_attempts == 0 {
            Some("max_attempts must be at least 1")
        } else if self.output_tail_bytes < 1024 {
            Some("output_tail_bytes must be at least 1024")
        } else if self.retained_jobs == 0 {
            Some("retained_jobs must be at least 1")
        } else if self.retained_outputs > self.retained_jobs {
            Some("retained_outputs must not exceed retained_jobs")
        } else {
            None
        }
    }
}

/// The most commits one `Observe` may queue; the observer caps far lower (100 by default).
pub const MAX_COMMITS_PER_OBSERVE: usize = 10_000;
/// The longest repository url or branch name accepted.
pub const MAX_NAME_BYTES: usize = 4096;
/// The most labels a job may require.
pub const MAX_LABELS: usize = 64;
/// The longest message kept with a result (why a job could not run).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest reason kept for a requeue or a cancel.
pub const MAX_REASON_BYTES: usize = 1024;
/// The most failing test names kept with a result; longer lists are cut.
pub const MAX_FAILING_NAMES: usize = 100;

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
}

/// Indexes derived from [`Data`]; never serialized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Index {
    queued: BTreeSet<JobId>,
    running: BTreeMap<NodeId, BTreeSet<JobId>>,
    by_commit: BTreeMap<CommitId, BTreeSet<JobId>>,
    repo_by_url: BTreeMap<String, RepoId>,
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
