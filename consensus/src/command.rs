//! The commands (Raft log entries) and the replies the state machine gives them.
//!
//! Every time stamp in a command is chosen by its proposer, so that applying the same
//! log on any replica, at any time, gives byte-identical state. A command the state
//! machine refuses changes nothing and answers [`Reply::Refused`] with the reason.

use std::cell::Cell;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::Sealed;
use crate::state::{Artifact, JobStatus, Limits, RepoSettings};
use crate::types::{BuildId, CommitId, JobId, NodeId, RepoId, Timestamp};

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
    /// New commits on a branch, as [`Command::Observe`], each queued as a build: one job
    /// per planned step and matrix cell. Older binaries cannot decode it: in a rolling
    /// upgrade from a version without builds, upgrade the leader last.
    ObserveBuilds(ObserveBuilds),
    /// Test a commit again, as a new build.
    RerunBuild {
        repo: RepoId,
        branch: String,
        plan: BuildPlan,
        /// Who asked, as the API saw them (shown with the build).
        by: Option<String>,
        at: Timestamp,
    },
    /// Cancel every job of a build that is not final yet.
    CancelBuild { build: BuildId, reason: String, at: Timestamp },
    /// A running job's artifacts, stored on `holders` before the job reports its result
    /// (so that a dependent job queued by the result finds them). Only for the current
    /// attempt of a running job; artifacts of the same name are replaced.
    AddArtifacts { job: JobId, attempt: u32, artifacts: Vec<Artifact>, at: Timestamp },
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
                Command::ObserveBuilds(observe) => {
                    observe.branch.len()
                        + 2 * observe.new_head.as_str().len()
                        + observe.builds.iter().map(BuildPlan::approximate_size).sum::<usize>()
                        + observe.skipped.iter().map(|c| c.as_str().len() + 8).sum::<usize>()
                }
                Command::RerunBuild { branch, plan, by, .. } => {
                    branch.len() + plan.approximate_size() + by.as_ref().map_or(0, String::len)
                }
                Command::CancelBuild { reason, .. } => reason.len(),
                Command::AddArtifacts { artifacts, .. } => artifacts
                    .iter()
                    .map(|a| a.name.len() + a.sha256.len() + 32 + 9 * a.holders.len())
                    .sum(),
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

/// The observer's report of a moved branch head whose commits are queued as builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveBuilds {
    pub repo: RepoId,
    pub branch: String,
    /// As [`Observe::expected_head`]: the command applies only if the cursor equals it.
    pub expected_head: Option<CommitId>,
    pub new_head: CommitId,
    /// One build per commit to test, oldest first.
    pub builds: Vec<BuildPlan>,
    /// As [`Observe::skipped`].
    pub skipped: Vec<CommitId>,
    /// What made the observer look ("webhook github", …), shown with the builds.
    pub by: Option<String>,
    pub at: Timestamp,
}

/// One commit's build as its configuration describes it. A plan out of the state
/// machine's bounds ([`BuildPlan::problem`]) still makes a build, of one job that ends in
/// `error` saying why, so that a bad configuration never stalls its branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub commit: CommitId,
    /// The first line of the commit message (cut to [`MAX_SUBJECT_BYTES`]).
    pub subject: String,
    /// The commit's author, `Name <email>` (cut to [`MAX_AUTHOR_BYTES`]).
    pub author: String,
    /// The jobs in an order where every job comes after the jobs it needs.
    pub jobs: Vec<PlannedJob>,
    /// Cancel the open builds of older commits of the branch when this one is queued.
    pub cancel_superseded: bool,
}

/// One job of a planned build: a step, or one cell of a step's matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The `[[step]]` it comes from (`test` for the one-step form).
    pub step: String,
    /// The cell's values, by key; empty outside a matrix. With the step they name the
    /// job, uniquely in its build: `test`, `test (python=3.11)`.
    pub matrix: Vec<(String, String)>,
    /// Indexes into [`BuildPlan::jobs`] of the jobs this one waits for, each smaller than
    /// its own: the job is queued when all of them passed and skipped if one did not.
    pub needs: Vec<u16>,
    /// Runner labels the job requires.
    pub labels: Vec<String>,
    /// At most one job of a group runs in the cluster at a time.
    pub concurrency: Option<String>,
}

/// The most jobs one build may have.
pub const MAX_JOBS_PER_BUILD: usize = 64;
/// The most jobs one [`Command::ObserveBuilds`] may queue, as many as an `Observe` may:
/// an observer with more new commits than that queues the newest and records the others
/// as skipped.
pub const MAX_JOBS_PER_OBSERVE: usize = crate::state::MAX_COMMITS_PER_OBSERVE;
/// The longest step name accepted.
pub const MAX_STEP_NAME_BYTES: usize = 64;
/// The most keys of a matrix.
pub const MAX_MATRIX_KEYS: usize = 4;
/// The longest matrix key.
pub const MAX_MATRIX_KEY_BYTES: usize = 16;
/// The longest matrix value.
pub const MAX_MATRIX_VALUE_BYTES: usize = 32;
/// The longest commit subject kept.
pub const MAX_SUBJECT_BYTES: usize = 120;
/// The longest author kept.
pub const MAX_AUTHOR_BYTES: usize = 100;
/// The longest "triggered by" kept.
pub const MAX_BY_BYTES: usize = 64;

impl BuildPlan {
    /// A cheap upper estimate of the encoded size (see [`Command::approximate_size`]).
    pub fn approximate_size(&self) -> usize {
        let strings = |items: &[String]| items.iter().map(|s| s.len() + 8).sum::<usize>();
        80 + self.subject.len()
            + self.author.len()
            + self
                .jobs
                .iter()
                .map(|job| {
                    32 + job.step.len()
                        + job.matrix.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>()
                        + 3 * job.needs.len()
                        + strings(&job.labels)
                        + job.concurrency.as_ref().map_or(1, |c| c.len() + 9)
                })
                .sum::<usize>()
    }

    /// Why the state machine cannot queue this plan's jobs as they are, if it cannot.
    pub fn problem(&self) -> Option<String> {
        crate::state::plan_problem(self)
    }
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
    /// The cursor moved; the new builds, oldest commit first, and every job they hold.
    BuildsObserved {
        builds: Vec<BuildId>,
        jobs: Vec<JobId>,
    },
    BuildQueued {
        build: BuildId,
        jobs: Vec<JobId>,
    },
    /// The jobs the cancel ended (cancelled, and the jobs waiting for them skipped).
    BuildCancelled {
        build: BuildId,
        jobs: Vec<JobId>,
    },
    ArtifactsAdded {
        job: JobId,
        count: u32,
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
    #[error("unknown build {build}")]
    UnknownBuild { build: BuildId },
    /// A job of the same concurrency group is running.
    #[error("job {running} of concurrency group {group} is running")]
    GroupBusy { group: String, running: JobId },
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
