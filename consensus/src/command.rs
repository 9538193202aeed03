//! The commands (Raft log entries) and the replies the state machine gives them.
//!
//! Every time stamp in a command is chosen by its proposer, so that applying the same
//! log on any replica, at any time, gives byte-identical state. A command the state
//! machine refuses changes nothing and answers [`Reply::Refused`] with the reason.

use std::cell::Cell;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::Sealed;
use crate::state::{JobStatus, Limits, RepoSettings};
use crate::types::{CommitId, JobId, NodeId, RepoId, Timestamp};

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Watch a repository. Refused if the same url is already watched.
    AddRepo { url: String, at: Timestamp },
    /// Stop watching a repository; its queued and running jobs are cancelled.
    RemoveRepo { repo: RepoId, at: Timestamp },
    /// New commits on a branch (compare-and-set on the branch cursor).
    Observe(Observe),
    /// Give a queued job to a runner. Only from `queued`, only for the current attempt.
    Assign { job: JobId, runner: NodeId, attempt: u32, at: Timestamp },
    /// The runner of the current attempt was lost (died, lease expired). The job goes
    /// back to `queued` with `attempt + 1`, or ends in `error` after the last attempt.
    Requeue { job: JobId, attempt: u32, reason: String, at: Timestamp },
    /// A runner's result. Only for the current attempt of a running job: a late result
    /// from an older attempt is refused, so a job has exactly one final result.
    Finish { job: JobId, attempt: u32, outcome: Outcome, at: Timestamp },
    /// Test a commit again, as a new job.
    Rerun {
        repo: RepoId,
        branch: String,
        commit: CommitId,
        /// Runner labels the new job requires (read from the commit's configuration).
        labels: Vec<String>,
        at: Timestamp,
    },
    /// Cancel a job that is not final yet.
    Cancel { job: JobId, reason: String, at: Timestamp },
    /// Change the limits the state machine enforces.
    SetLimits { limits: Limits },
    /// Several commands proposed together as one log entry, so that one disk flush and
    /// one replication round commit all of them. Applied in order, each exactly as if
    /// it were its own entry, with its own reply in [`Reply::Batch`]. A batch never
    /// holds a batch: decoding refuses one, on the wire and from disk, and the state
    /// machine refuses only that inner command should one be applied in process. Older
    /// binaries cannot decode it: in a rolling upgrade from a version without batches,
    /// upgrade the leader last.
    Batch(#[serde(deserialize_with = "unnested_batch")] Vec<Command>),
    /// Store a secret's value, sealed by the proposer (the state machine never sees the
    /// clear text). Creates the secret or replaces its value.
    SetSecret { name: String, sealed: Sealed, at: Timestamp },
    /// Forget a secret.
    RemoveSecret { name: String, at: Timestamp },
    /// Watch a repository with settings: refused as `AddRepo` is, and for settings out of
    /// their bounds ([`RepoSettings::problem`]).
    WatchRepo { url: String, settings: RepoSettings, at: Timestamp },
    /// Replace a repository's settings. Statuses still waiting for a forge the new
    /// settings no longer name are dropped.
    SetRepoSettings { repo: RepoId, settings: RepoSettings, at: Timestamp },
    /// The leader posted the outbox's status `id` to the forge, or the forge refused it
    /// for good (`refused`: its answer). Either way the status leaves the outbox; a
    /// status enqueued for the same job since stays.
    StatusDelivered { id: u64, refused: Option<String>, at: Timestamp },
    /// Store a secret's value as [`Command::SetSecret`] does, for jobs of the branches
    /// matching `branches` only ([`branch_matches`](crate::state::branch_matches)). An
    /// empty list is no restriction; `SetSecret` also clears one. Older binaries cannot
    /// decode it: set restricted secrets once every node runs a version that has them.
    SetRestrictedSecret { name: String, sealed: Sealed, branches: Vec<String>, at: Timestamp },
}

impl Command {
    /// A cheap upper estimate of the command's encoded size in bytes, so that a
    /// proposer can keep batches well under the codec's message limit.
    pub fn approximate_size(&self) -> usize {
        const FIXED: usize = 64;
        let strings = |items: &[String]| items.iter().map(|s| s.len() + 8).sum::<usize>();
        FIXED
            + match self {
                Command::AddRepo { url, .. } => url.len(),
                Command::RemoveRepo { .. } | Command::Assign { .. } | Command::SetLimits { .. } => {
                    0
                }
                Command::Observe(observe) => {
                    observe.branch.len()
                        + 2 * observe.new_head.as_str().len()
                        + observe
                            .commits
                            .iter()
                            .map(|c| c.commit.as_str().len() + 16 + strings(&c.labels))
                            .sum::<usize>()
                        + observe.skipped.iter().map(|c| c.as_str().len() + 8).sum::<usize>()
                }
                Command::Requeue { reason, .. } | Command::Cancel { reason, .. } => reason.len(),
                Command::Finish { outcome, .. } => {
                    outcome.output_tail.len()
                        + outcome.message.as_ref().map_or(0, String::len)
                        + outcome.summary.as_ref().map_or(0, |s| strings(&s.failing))
                }
                Command::Rerun { branch, commit, labels, .. } => {
                    branch.len() + commit.as_str().len() + strings(labels)
                }
                Command::Batch(commands) => {
                    commands.iter().map(Command::approximate_size).sum::<usize>()
                }
                Command::SetSecret { name, sealed, .. } => {
                    name.len() + sealed.nonce.len() + sealed.ciphertext.len()
                }
                Command::RemoveSecret { name, .. } => name.len(),
                Command::WatchRepo { url, settings, .. } => url.len() + settings_size(settings),
                Command::SetRepoSettings { settings, .. } => settings_size(settings),
                Command::StatusDelivered { refused, .. } => refused.as_ref().map_or(0, String::len),
                Command::SetRestrictedSecret { name, sealed, branches, .. } => {
                    name.len() + sealed.nonce.len() + sealed.ciphertext.len() + strings(branches)
                }
            }
    }
}

/// A cheap upper estimate of a repository's settings' encoded size.
fn settings_size(settings: &RepoSettings) -> usize {
    let text = |text: &Option<String>| text.as_ref().map_or(1, |text| text.len() + 9);
    let RepoSettings {
        forge: _,
        api_url,
        token,
        ssh_key,
        known_hosts,
        webhook_secret,
        ca_file,
        branches,
        poll_interval_ms: _,
        status_context,
    } = settings;
    32 + [api_url, token, ssh_key, known_hosts, webhook_secret, ca_file, status_context]
        .into_iter()
        .map(text)
        .sum::<usize>()
        + branches.iter().map(|branch| branch.len() + 9).sum::<usize>()
}

/// The observer's report of a moved branch head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observe {
    pub repo: RepoId,
    pub branch: String,
    /// The cursor the observer started from; `None` for a branch never seen before.
    /// The command applies only if the replicated cursor still equals it.
    pub expected_head: Option<CommitId>,
    pub new_head: CommitId,
    /// The commits to test, oldest first; one job each, queued in this order.
    pub commits: Vec<ObservedCommit>,
    /// Commits the observer did not queue because of its per-round cap, newest last.
    pub skipped: Vec<CommitId>,
    pub at: Timestamp,
}

/// One commit to queue, with the runner labels its configuration requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedCommit {
    pub commit: CommitId,
    pub labels: Vec<String>,
}

/// How a run ended, as the runner reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The tests ran and passed.
    Passed,
    /// The tests ran and failed.
    Failed,
    /// The run exceeded its timeout and was killed.
    TimedOut,
    /// The tests could not run: checkout failed, bad configuration, …
    Error,
}

impl Verdict {
    pub fn status(self) -> JobStatus {
        match self {
            Verdict::Passed => JobStatus::Passed,
            Verdict::Failed => JobStatus::Failed,
            Verdict::TimedOut => JobStatus::TimedOut,
            Verdict::Error => JobStatus::Error,
        }
    }
}

/// What a runner reports when a job ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The end of the job's output; the state machine keeps at most
    /// [`Limits::output_tail_bytes`] of it.
    pub output_tail: String,
    /// Parsed test counts, when the output could be parsed.
    pub summary: Option<TestSummary>,
    /// Why the job could not run, for `error`.
    pub message: Option<String>,
}

/// Counts parsed from a test runner's output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSummary {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Names of the failing tests.
    pub failing: Vec<String>,
}

/// The state machine's answer to one log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Blank and membership entries.
    #[default]
    None,
    RepoAdded {
        repo: RepoId,
    },
    RepoRemoved {
        repo: RepoId,
        cancelled: Vec<JobId>,
    },
    /// The cursor moved; the new jobs, oldest commit first.
    Observed {
        jobs: Vec<JobId>,
    },
    Assigned {
        job: JobId,
        attempt: u32,
    },
    /// The job is queued again for `attempt`.
    Requeued {
        job: JobId,
        attempt: u32,
    },
    /// The last attempt's runner was lost: the job ended in `error`.
    GaveUp {
        job: JobId,
        attempts: u32,
    },
    Finished {
        job: JobId,
        status: JobStatus,
    },
    RerunQueued {
        job: JobId,
    },
    Cancelled {
        job: JobId,
    },
    LimitsSet,
    /// One reply per command of a [`Command::Batch`], in order (never a batch itself:
    /// decoding refuses one).
    Batch(#[serde(deserialize_with = "unnested_batch")] Vec<Reply>),
    Refused(Refusal),
    SecretSet {
        name: String,
        created_at: Timestamp,
        updated_at: Timestamp,
    },
    SecretRemoved {
        name: String,
    },
    RepoSettingsSet {
        repo: RepoId,
    },
    /// `current`: the status was still in the outbox (a later one may have replaced it).
    StatusDelivered {
        id: u64,
        current: bool,
    },
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("unknown repository {repo}")]
    UnknownRepo { repo: RepoId },
    #[error("repository already watched as {existing}")]
    DuplicateRepo { existing: RepoId },
    #[error("unknown job {job}")]
    UnknownJob { job: JobId },
    #[error("branch cursor moved: expected {expected:?}, found {actual:?}")]
    CursorMoved { expected: Option<CommitId>, actual: Option<CommitId> },
    #[error("job {job} is {status:?}, not queued")]
    NotQueued { job: JobId, status: JobStatus },
    #[error("job {job} is {status:?}, not running")]
    NotRunning { job: JobId, status: JobStatus },
    #[error("job {job} is at attempt {current}, not {got}")]
    StaleAttempt { job: JobId, current: u32, got: u32 },
    #[error("job {job} is already final ({status:?})")]
    AlreadyFinal { job: JobId, status: JobStatus },
    #[error("invalid command: {reason}")]
    Invalid { reason: String },
    /// The repository already has `limit` jobs queued or running (`max_queue_per_repo`).
    #[error(
        "repository {repo} already has {limit} jobs queued or running, the most it may have; try again once some have finished"
    )]
    QueueFull { repo: RepoId, limit: u32 },
    /// The state keeps no more of `what` (`max_repos`, `max_branches_per_repo`).
    #[error("{what}: at most {limit}")]
    LimitReached { what: String, limit: u32 },
    #[error("unknown secret {name}")]
    UnknownSecret { name: String },
}

impl Reply {
    /// The refusal, if the command was refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Reply::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

thread_local! {
    /// Set while this thread decodes the elements of a batch.
    static IN_BATCH: Cell<bool> = const { Cell::new(false) };
}

/// Decodes the elements of a [`Command::Batch`] or a [`Reply::Batch`], refusing a batch
/// among them before reading it: batches nest one level, so that a hostile body cannot
/// make decoding recurse once per level (the codec bounds every value's depth too).
/// The wire format is unchanged. Decoding is synchronous, so a flag of the decoding
/// thread knows whether this batch is inside another.
fn unnested_batch<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    /// Clears the flag when the outer batch is decoded, or fails, or unwinds.
    struct Outermost;
    impl Drop for Outermost {
        fn drop(&mut self) {
            IN_BATCH.with(|flag| flag.set(false));
        }
    }
    if IN_BATCH.with(|flag| flag.replace(true)) {
        return Err(D::Error::custom("a batch inside a batch"));
    }
    let _outermost = Outermost;
    Vec::deserialize(deserializer)
}
