//! The dispatcher (leader only): runners pull work, the leader picks the oldest queued
//! job whose labels the runner has, commits `Assign`, and keeps a lease per running job
//! that the runner renews. A job whose runner is dead by gossip, or whose lease runs
//! out, is requeued (`Requeue`, fenced by attempt).
//!
//! - `leases`: the pure lease table.
//!
//! The claim and renew messages, paths and timings are `eventide_node::protocol::dispatch`
//! (shared with the runner, and fuzzed). The leader also answers runners whose replica
//! is empty with a job's sealed credentials and secrets, decided by the rules of
//! `eventide_node::protocol::context` on its own replica.
//!
//! ```text
//!  runner ── claim (long poll) ──> leader: next_claimable ─> Assign ─> lease
//!  runner ── result + claim ─────> leader: Finish ─> (recorded) ─> claim as above
//!  runner ── renew every 1 s ───> leader: extend leases / revoke
//!  tick every 250 ms ──────────────────> expired leases, dead runners ─> Requeue
//!  runner ── job context (no replica) ─> leader: context::answer ─> sealed values, notes
//! ```

mod leases;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Router};
use eventide_consensus::network::WriteError;
use eventide_consensus::network::{Codec, CodecReply, RpcService, Writer};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, JobId, Reply};
use eventide_node::protocol::context::{
    self, JobContextRequest, JobContextResponse, JOB_CONTEXT_PATH,
};
use eventide_node::protocol::dispatch::{
    Assignment, ClaimRequest, ClaimResponse, FinishAndClaimRequest, FinishAndClaimResponse,
    Finished, RenewRequest, RenewResponse, StepAssignment, CLAIM_PATH, FINISH_AND_CLAIM_PATH,
    LEASE_PERIOD, MAX_CLAIM_WAIT, RENEW_PATH,
};
use tracing::{debug, info, warn};

use self::leases::{Leases, RunningJob};
use crate::clock;
use crate::gossip::Gossip;
use crate::raft_view::RaftView;

const TICK: Duration = Duration::from_millis(250);

/// The leader-side dispatcher state.
pub struct Dispatcher {
    raft: RaftView,
    state_machine: StateMachineStore,
    writer: Writer,
    /// Tells which runners are dead, so that their jobs are requeued.
    gossip: Arc<Gossip>,
    leases: Mutex<Leases>,
    /// Jobs a claim has picked and is assigning (its `Assign` is in flight): other
    /// claims skip them, so two runners never race for one job, yet concurrent claims
    /// commit their `Assign`s together instead of one after another.
    picking: Arc<Mutex<BTreeSet<JobId>>>,
}

/// A job picked by a claim; it is free for other claims again once this is dropped
/// (assigned, refused, failed, or the claim abandoned mid-write).
struct Picked {
    job: JobId,
    picking: Arc<Mutex<BTreeSet<JobId>>>,
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.picking.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.job);
    }
}

impl Dispatcher {
    pub fn new(
        raft: RaftView,
        state_machine: StateMachineStore,
        writer: Writer,
        gossip: Arc<Gossip>,
    ) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            raft,
            state_machine,
            writer,
            gossip,
            leases: Mutex::new(Leases::new(LEASE_PERIOD)),
            picking: Arc::new(Mutex::new(BTreeSet::new())),
        })
    }

    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(CLAIM_PATH, post(claim))
            .route(FINISH_AND_CLAIM_PATH, post(finish_and_claim))
            .route(RENEW_PATH, post(renew))
            .route(JOB_CONTEXT_PATH, post(job_context))
            .layer(Extension(RpcService("dispatcher")))
            .with_state(self.clone())
    }

    fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    fn running_jobs(&self) -> Vec<RunningJob> {
        self.state_machine.read(|state| {
            state
                .running_jobs()
                .into_iter()
                .filter_map(|job| {
                    Some(RunningJob { job: job.id, runner: job.runner?, attempt: job.attempt })
                })
                .collect()
        })
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        // A poisoned lock only means a panic elsewhere; the table itself stays usable.
        self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requeues jobs of dead runners and expired leases; runs until the process stops.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.raft.changes();
        loop {
            if !self.is_leader() {
                self.leases().clear();
                // Only the leader expires leases: a follower or a client waits for this
                // node to lead instead of waking every tick for nothing.
                while !self.is_leader() {
                    if !changes.changed().await {
                        return; // Raft has shut down: the node is stopping.
                    }
                }
                ticker.reset();
            }
            ticker.tick().await;
            if !self.is_leader() {
                continue;
            }
            let dead: BTreeSet<_> = self
                .gossip
                .members()
                .await
                .into_iter()
                .filter(|m| !m.alive)
                .map(|m| m.id)
                .collect();
            let running = self.running_jobs();
            let expired = self.leases().expire(&running, &dead, Instant::now());
            for expired in expired {
                let command = Command::Requeue {
                    job: expired.job,
                    attempt: expired.attempt,
                    reason: expired.reason.clone(),
                    at: clock::now(),
                };
                match self.writer.write(command).await {
                    Ok(Reply::Requeued { job, attempt }) => {
                        info!(job_id = %job, attempt, reason = %expired.reason, "job requeued");
                    }
                    Ok(Reply::GaveUp { job, attempts }) => {
                        warn!(job_id = %job, attempts, reason = %expired.reason, "job gave up after its last attempt");
                    }
                    Ok(other) => {
                        debug!(job_id = %expired.job, reply = ?other, "requeue not applied")
                    }
                    Err(error) => warn!(job_id = %expired.job, error = %error, "requeue failed"),
                }
            }
        }
    }

    async fn claim(&self, request: ClaimRequest) -> ClaimResponse {
        let labels: BTreeSet<String> = request.labels.into_iter().collect();
        let wait = Duration::from_millis(request.wait_ms).min(MAX_CLAIM_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.raft.changes();
        loop {
            if !self.is_leader() {
                return ClaimResponse::NotLeader;
            }
            // Read before looking: an entry applied after this is waited for below.
            let applied = self.raft.status().applied_index;
            if let Some((assignment, _picked)) = self.pick(&labels) {
                let command = Command::Assign {
                    job: assignment.job,
                    runner: request.runner,
                    attempt: assignment.attempt,
                    at: clock::now(),
                };
                match self.writer.write(command).await {
                    Ok(Reply::Assigned { job, attempt }) => {
                        let running = RunningJob { job, runner: request.runner, attempt };
                        self.leases().grant(running, Instant::now());
                        info!(job_id = %job, attempt, peer = %request.runner, commit = %assignment.commit, "job assigned");
                        // The inputs are read now: the jobs they come from are final.
                        let step = self.state_machine.read(|state| step_assignment(state, job));
                        return match step {
                            Some(step) => ClaimResponse::Step(assignment, step),
                            None => ClaimResponse::Job(assignment),
                        };
                    }
                    Ok(other) => {
                        debug!(job_id = %assignment.job, reply = ?other, "assign refused; picking again");
                        continue;
                    }
                    Err(error) => {
                        warn!(job_id = %assignment.job, error = %error, "assign failed");
                        return ClaimResponse::Nothing;
                    }
                }
            }
            // Nothing runnable: wait for the state to change (an applied entry may bring
            // a job), for this node to stop leading, or for the deadline. A hundred idle
            // runners each hold a claim here: heartbeats must not wake them.
            if !changes.applied_or_role_changed_before(applied, deadline).await {
                return ClaimResponse::Nothing;
            }
        }
    }

    /// Records a runner's result, then claims for the slot that ran it. The claim is not
    /// tried unless the result was recorded (or refused for good): the runner then
    /// reports it again through the write path, and claims after.
    async fn finish_and_claim(&self, request: FinishAndClaimRequest) -> FinishAndClaimResponse {
        if !self.is_leader() {
            let finished = Err(WriteError::NotLeader { leader: None });
            return FinishAndClaimResponse { finished, claim: ClaimResponse::NotLeader };
        }
        let Finished { job, attempt, outcome, at } = request.finished;
        let finished = self.writer.write(Command::Finish { job, attempt, outcome, at }).await;
        let claim = match &finished {
            Ok(_) => self.claim(request.claim).await,
            Err(error) => {
                debug!(job_id = %job, attempt, error = %error, "result not recorded; no claim");
                ClaimResponse::Nothing
            }
        };
        FinishAndClaimResponse { finished, claim }
    }

    /// The oldest queued job for `labels` that no other claim is assigning, marked as
    /// picked until the returned guard is dropped.
    fn pick(&self, labels: &BTreeSet<String>) -> Option<(Assignment, Picked)> {
        let mut picking = self.picking.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let assignment = self.state_machine.read(|state| {
            let job = state.claimable(labels).find(|job| !picking.contains(&job.id))?;
            let repo = state.repo(job.repo)?;
            Some(Assignment {
                job: job.id,
                attempt: job.attempt,
                repo_url: repo.url.clone(),
                branch: job.branch.clone(),
                commit: job.commit.clone(),
            })
        })?;
        picking.insert(assignment.job);
        let picked = Picked { job: assignment.job, picking: self.picking.clone() };
        Some((assignment, picked))
    }

    fn renew(&self, request: RenewRequest) -> RenewResponse {
        if !self.is_leader() {
            return RenewResponse::NotLeader;
        }
        let running = self.running_jobs();
        let revoked = self.leases().renew(request.runner, &request.jobs, &running, Instant::now());
        if !revoked.is_empty() {
            let ids: Vec<String> = revoked.iter().map(|id| id.to_string()).collect();
            info!(peer = %request.runner, jobs = ?ids, "leases revoked");
        }
        RenewResponse::Renewed { revoked }
    }
}

/// What the runner of `job` needs to know of its build, if it belongs to one.
fn step_assignment(state: &eventide_consensus::State, job: JobId) -> Option<StepAssignment> {
    let step = state.step_of(job)?;
    Some(StepAssignment {
        build: step.build,
        step: step.step.clone(),
        matrix: step.matrix.clone(),
        inputs: state.inputs_of(job).into_iter().map(|(from, a)| (from, a.clone())).collect(),
        build_artifact_bytes: state.build(step.build).map_or(0, |build| {
            let steps = build.jobs.iter().filter_map(|id| state.step_of(*id));
            steps.flat_map(|s| s.artifacts.iter()).map(|a| a.size).sum()
        }),
    })
}

async fn claim(
    State(dispatcher): State<Arc<Dispatcher>>,
    Codec(request): Codec<ClaimRequest>,
) -> CodecReply<ClaimResponse> {
    CodecReply(dispatcher.claim(request).await)
}

async fn finish_and_claim(
    State(dispatcher): State<Arc<Dispatcher>>,
    Codec(request): Codec<FinishAndClaimRequest>,
) -> CodecReply<FinishAndClaimResponse> {
    CodecReply(dispatcher.finish_and_claim(request).await)
}

async fn renew(
    State(dispatcher): State<Arc<Dispatcher>>,
    Codec(request): Codec<RenewRequest>,
) -> CodecReply<RenewResponse> {
    CodecReply(dispatcher.renew(request))
}

async fn job_context(
    State(dispatcher): State<Arc<Dispatcher>>,
    Codec(request): Codec<JobContextRequest>,
) -> CodecReply<JobContextResponse> {
    let is_leader = dispatcher.is_leader();
    let response =
        dispatcher.state_machine.read(|state| context::answer(is_leader, state, &request));
    debug!(job_id = %request.job, attempt = request.attempt, secrets = request.secrets.len(), leader = is_leader, "job context asked");
    CodecReply(response)
}
