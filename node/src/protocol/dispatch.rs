//! The claim and renew protocol between runners and the leader's dispatcher: claim a
//! job (long poll), report the last job's result with the next claim, and renew leases,
//! with the timings both sides keep. Bodies are
//! codec-encoded and sent with `eventide_consensus::network::RpcClient`; the paths live
//! under `/internal/`, so requests are signed.

use std::time::Duration;

use eventide_consensus::network::WriteError;
use eventide_consensus::state::Artifact;
use eventide_consensus::{BuildId, CommitId, JobId, NodeId, Outcome, Reply, Timestamp};
use serde::{Deserialize, Serialize};

/// How long a lease lasts without renewal.
pub const LEASE_PERIOD: Duration = Duration::from_secs(5);
/// How often runners renew (a fifth of the lease).
pub const RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a claim is held when nothing is queued.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(10);
/// How long a runner waits for the answer to a result with a claim: the result's write
/// may wait for its entry to commit (10 s at most, as a forwarded write), the claim is
/// not held.
pub const FINISH_AND_CLAIM_TIMEOUT: Duration = Duration::from_secs(15);

pub const CLAIM_PATH: &str = "/internal/dispatch/claim";
pub const RENEW_PATH: &str = "/internal/dispatch/renew";
/// A result and the next claim in one request. Leaders of versions before it answer 404
/// (certainly not applied): the runner then reports through the write path and claims
/// on [`CLAIM_PATH`].
pub const FINISH_AND_CLAIM_PATH: &str = "/internal/dispatch/finish-and-claim";

/// A runner with a free slot asks for work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub runner: NodeId,
    pub labels: Vec<String>,
    /// How long the leader may hold the request when nothing is queued.
    pub wait_ms: u64,
}

/// A job given to a runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub job: JobId,
    pub attempt: u32,
    pub repo_url: String,
    pub branch: String,
    pub commit: CommitId,
}

/// What a job of a build is, for its runner: which step and matrix cell of the commit's
/// configuration to run, and the artifacts of the jobs it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAssignment {
    pub build: BuildId,
    pub step: String,
    pub matrix: Vec<(String, String)>,
    /// Each artifact with the job that made it, in the order of the job's needs.
    pub inputs: Vec<(JobId, Artifact)>,
    /// The bytes of the artifacts the build's jobs recorded so far (for the per-build
    /// limit).
    pub build_artifact_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimResponse {
    /// A job of no build (queued by a binary from before builds).
    Job(Assignment),
    /// Nothing runnable arrived while the request was held.
    Nothing,
    /// Ask the leader instead.
    NotLeader,
    /// A job of a build. Older runners cannot decode it: in a rolling upgrade from a
    /// version without builds, upgrade the leader last.
    Step(Assignment, StepAssignment),
}

/// The result of an attempt, as `Command::Finish` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub job: JobId,
    pub attempt: u32,
    pub outcome: Outcome,
    pub at: Timestamp,
}

/// A runner whose slot just ended a job reports its result and asks for the next one:
/// one request a job instead of a write and a claim. The leader records the result first
/// and claims only once it is recorded (a job the result unblocks may be the one given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishAndClaimRequest {
    pub finished: Finished,
    /// Its `wait_ms` is how long the claim may be held once the result is in; a runner
    /// sends 0, so that the result's answer is not held back by an empty queue.
    pub claim: ClaimRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishAndClaimResponse {
    /// What recording the result gave, as a forwarded write answers it. On an error the
    /// claim was not tried ([`ClaimResponse::Nothing`], or `NotLeader` from a node that
    /// does not lead).
    pub finished: Result<Reply, WriteError>,
    pub claim: ClaimResponse,
}

/// A runner renews the leases of every job it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub runner: NodeId,
    pub jobs: Vec<(JobId, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenewResponse {
    /// Leases extended, except for these jobs, which the runner must stop (cancelled,
    /// requeued or given to another runner).
    Renewed {
        revoked: Vec<JobId>,
    },
    NotLeader,
}
