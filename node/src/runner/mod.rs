//! The runner role (every node with `--runner-slots` > 0): claim a job from the leader,
//! fetch and check out its commit, run its command, renew its lease while it runs, and
//! report the result with `Finish` until the cluster accepts or refuses it.
//!
//! - `exec`: running one command safely (process group, timeout, capped output).
//! - `spawn`: starting it without copying the node (its cgroups, rlimits and group set
//!   in a child that shares the node's memory until `execve`).
//! - `job`: preparing and running one job, and reporting its result through the write
//!   path when it does not go with the next claim.
//! - `secrets`: the secrets a job is given as environment variables, and why not others.
//! - `context`: a job's credentials and secrets from this node's replica, or from the
//!   leader on a node that is not a Raft member.
//! - `mask`: secret values masked as `***` in a job's output, chunk by chunk.
//! - `workspace`: reading files of a job's checkout (regular files only, size-capped).
//! - `reports`: test counts from the output and the JUnit reports of a job.
//! - `gate`: whether to claim at all (free disk above `--min-free-disk`, Raft running).
//!
//! ```text
//!  slot worker ── claim ──> leader ── Assignment ──> job::run ─┐
//!       ^                                                     │ result
//!       └── result + next claim (one request) ──> leader <─────┘
//!           (an older leader: Finish by the write path, then claim)
//!  renewer ── renew every 1 s ──> leader ── revoked? ──> cancel the job
//!           └ no renewal for a lease period ──> self-fence: kill the job, report nothing
//!  gate closed (disk low, raft stopped) ──> no claims; reason logged and gossiped
//! ```
//!
//! Job workspaces live in `<data-dir>/work/`; each is removed when its job ends, and the
//! whole directory is emptied when the runner starts (leftovers of a crash).

pub mod context;
pub mod exec;
pub mod gate;
pub mod job;
pub mod mask;
pub mod reports;
pub mod secrets;
pub mod spawn;
pub mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventide_consensus::auth::Secret;
use eventide_consensus::network::{RpcClient, RpcError, Writer};
use eventide_consensus::state::job_name;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::Outcome;
use eventide_consensus::{JobId, NodeId};
use eventide_node::protocol::dispatch::{
    Assignment, ClaimRequest, ClaimResponse, FinishAndClaimRequest, FinishAndClaimResponse,
    Finished, RenewRequest, RenewResponse, StepAssignment, CLAIM_PATH, FINISH_AND_CLAIM_PATH,
    LEASE_PERIOD, MAX_CLAIM_WAIT, RENEW_INTERVAL, RENEW_PATH,
};
use eventide_node::units::MinFreeDisk;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::artifacts::Artifacts;
use crate::gossip::{Gossip, RaftRole};
use crate::health::Phase;
use crate::joblog::RunningJobs;
use crate::metrics::Metrics;
use crate::raft_view::RaftView;
use crate::sandbox::{Isolation, SandboxSettings};

use self::gate::{Conditions, Gate, Transition};

/// How long a runner waits for a leader to be known before it asks again.
const LEADER_WAIT: Duration = Duration::from_secs(1);

/// How often a paused runner checks whether it may claim again.
const GATE_POLL: Duration = Duration::from_secs(1);

/// How long a runner whose leader did not know the result-and-claim request (an older
/// version) reports results apart before it tries again.
const COMBINED_RETRY: Duration = Duration::from_secs(60);

/// A job this slot ran whose result is not reported yet: it goes with the slot's next
/// claim. The job stays active (renewed, and counted as running) until it is reported.
struct Ended {
    job: JobId,
    attempt: u32,
    outcome: Outcome,
}

/// A job this node is running.
struct Active {
    attempt: u32,
    /// Set to true to kill the job's processes.
    cancel: watch::Sender<bool>,
    /// Set when the job must not report a result (revoked or self-fenced).
    silenced: bool,
    last_renewed: Instant,
}

/// What the runner is configured with.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// This node, as claims and renewals name it.
    pub id: NodeId,
    /// Jobs run at once (`--runner-slots`); 0 turns the runner off.
    pub slots: u32,
    /// The labels this runner offers (`--label`).
    pub labels: BTreeSet<String>,
    /// Holds `work/` (job workspaces) and `logs/`.
    pub data_dir: PathBuf,
    /// The repositories' mirrors (`--runner-mirrors`), perhaps shared with other nodes.
    pub mirrors: PathBuf,
    pub min_free_disk: MinFreeDisk,
    /// The sandbox and job limits (`--sandbox`, `--job-*`).
    pub sandbox: SandboxSettings,
}

/// The handles the runner uses.
pub struct RunnerHandles {
    pub raft: RaftView,
    /// Read for a job's creation time when its result is accepted.
    pub state_machine: StateMachineStore,
    pub writer: Writer,
    pub gossip: Arc<Gossip>,
    /// Sends claims and renewals, signed with the cluster secret (if any), and counts
    /// their failures.
    pub rpc: RpcClient,
    pub metrics: Arc<Metrics>,
    /// Opens the repositories' fetch credentials and the jobs' secrets in the secret
    /// store; never given to a job itself.
    pub secret: Option<Secret>,
    /// Where the attempts this runner is running are recorded, for following their logs.
    pub running: Arc<RunningJobs>,
    /// This node's role as the cluster sees it: a server reads its own replica, a client
    /// asks the leader.
    pub phase: watch::Receiver<Phase>,
    /// Stores a step's artifacts and fetches the ones a job needs.
    pub artifacts: Arc<Artifacts>,
}

/// The runner of this node.
pub struct Runner {
    settings: RunnerSettings,
    raft: RaftView,
    state_machine: StateMachineStore,
    writer: Writer,
    gossip: Arc<Gossip>,
    rpc: RpcClient,
    metrics: Arc<Metrics>,
    secret: Option<Secret>,
    running: Arc<RunningJobs>,
    phase: watch::Receiver<Phase>,
    artifacts: Arc<Artifacts>,
    /// How jobs are isolated here, resolved at start.
    isolation: Isolation,
    active: Mutex<BTreeMap<JobId, Active>>,
    /// Wakes the renewer when a job starts: with none running it sleeps instead of
    /// ticking every second for nothing.
    started: tokio::sync::Notify,
    /// Jobs whose tidying up has run since the node started (every so many of them, the
    /// old logs are pruned).
    jobs_ended: std::sync::atomic::AtomicU64,
    gate: Mutex<Gate>,
    /// Until when results are reported apart from claims: the leader answered the
    /// combined request with 404 (a version before it).
    combined_refused_until: Mutex<Option<Instant>>,
}

impl Runner {
    /// Resolves the sandbox (an error only for `--sandbox bwrap` where it does not work).
    pub fn new(settings: RunnerSettings, handles: RunnerHandles) -> anyhow::Result<Arc<Runner>> {
        let RunnerHandles {
            raft,
            state_machine,
            writer,
            gossip,
            rpc,
            metrics,
            secret,
            running,
            phase,
            artifacts,
        } = handles;
        let isolation = if settings.slots == 0 {
            Isolation::disabled(settings.sandbox.clone())
        } else {
            let path = std::env::var_os("PATH");
            Isolation::resolve(
                settings.sandbox.clone(),
                &settings.id.to_string(),
                path.as_deref(),
                &settings.data_dir,
            )?
        };
        Ok(Arc::new(Runner {
            isolation,
            settings,
            raft,
            state_machine,
            writer,
            gossip,
            rpc,
            metrics,
            secret,
            running,
            phase,
            artifacts,
            active: Mutex::new(BTreeMap::new()),
            started: tokio::sync::Notify::new(),
            jobs_ended: std::sync::atomic::AtomicU64::new(0),
            gate: Mutex::new(Gate::default()),
            combined_refused_until: Mutex::new(None),
        }))
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, Active>> {
        self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the slot workers and the lease renewer until the process stops.
    pub async fn run(self: Arc<Self>) {
        let slots = self.settings.slots;
        if slots == 0 {
            return;
        }
        let work = self.settings.data_dir.join("work");
        match tokio::task::spawn_blocking(move || clear_workspaces(&work)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => info!(removed, "removed job workspaces left from a previous run"),
            Ok(Err(error)) => warn!(error = %error, "failed to remove old job workspaces"),
            Err(error) => warn!(error = %error, "failed to remove old job workspaces"),
        }
        if self.isolation.has_bwrap() {
            self.gossip
                .set_isolation(self.isolation.sandbox_name(), self.isolation.limits_name())
                .await;
        }
        info!(slots, labels = ?self.settings.labels, "runner started");
        let mut tasks = tokio::task::JoinSet::new();
        for slot in 0..slots {
            let runner = self.clone();
            tasks.spawn(async move { runner.work(slot).await });
        }
        let renewer = self.clone();
        tasks.spawn(async move { renewer.renew_forever().await });
        while tasks.join_next().await.is_some() {}
    }

    /// Whether this node is a Raft member the leader counts among its servers (a member
    /// removed while it was away is not, whatever its replica says).
    fn is_server(&self) -> bool {
        self.phase.borrow().role != RaftRole::None
    }

    /// The leader's address, waiting (up to a second) for one to be known. A client
    /// follows no Raft leader: gossip says who leads.
    async fn leader_addr(&self) -> Option<String> {
        if self.is_server() {
            if let Some(addr) = self.raft.wait_leader_addr(LEADER_WAIT).await {
                return Some(addr);
            }
        }
        if let Some(leader) = self.gossip.leader().await {
            return Some(leader.addr.to_string());
        }
        // The callers ask again at once: this is their pace while no leader is known.
        tokio::time::sleep(LEADER_WAIT).await;
        None
    }

    async fn work(self: Arc<Self>, slot: u32) {
        let me = self.settings.id;
        let mut labels: Vec<String> = self.settings.labels.iter().cloned().collect();
        if self.isolation.has_bwrap() {
            labels.push(eventide_node::isolation::SANDBOX_LABEL.to_owned());
        }
        // The last job's result, while it waits for the next claim to carry it.
        let mut ended: Option<Ended> = None;
        loop {
            if !self.may_claim().await {
                if let Some(ended) = ended.take() {
                    self.report_apart(ended).await;
                }
                tokio::time::sleep(GATE_POLL).await;
                continue;
            }
            let Some(leader) = self.leader_addr().await else {
                // The write path waits for a leader itself.
                if let Some(ended) = ended.take() {
                    self.report_apart(ended).await;
                }
                continue;
            };
            let request = ClaimRequest {
                runner: me,
                labels: labels.clone(),
                wait_ms: MAX_CLAIM_WAIT.as_millis() as u64,
            };
            let timeout = MAX_CLAIM_WAIT + Duration::from_secs(5);
            let response: Result<ClaimResponse, RpcError> = match ended.take() {
                Some(ended) => match self.finish_and_claim(&leader, ended, request).await {
                    Some(claim) => Ok(claim),
                    // Reported apart: claim afresh.
                    None => continue,
                },
                None => self.rpc.call(&leader, CLAIM_PATH, &request, timeout).await,
            };
            match response {
                Ok(ClaimResponse::Job(assignment)) => {
                    ended = self.run_claimed(slot, assignment, None).await
                }
                Ok(ClaimResponse::Step(assignment, step)) => {
                    ended = self.run_claimed(slot, assignment, Some(step)).await
                }
                Ok(ClaimResponse::Nothing) => {}
                Ok(ClaimResponse::NotLeader) => {
                    debug!(peer = %leader, "claim sent to a node that no longer leads");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    debug!(peer = %leader, error = %error, "claim failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Runs a claimed job on this slot to its end; its result, still to be reported
    /// (the job stays active until then), or `None` if it has none (cancelled).
    async fn run_claimed(
        &self,
        slot: u32,
        assignment: Assignment,
        step: Option<StepAssignment>,
    ) -> Option<Ended> {
        let job = assignment.job;
        let attempt = assignment.attempt;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.active().insert(
            job,
            Active { attempt, cancel: cancel_tx, silenced: false, last_renewed: Instant::now() },
        );
        self.started.notify_one();
        self.publish_busy().await;
        let name = step.as_ref().map(|step| job_name(&step.step, &step.matrix));
        info!(job_id = %job, attempt, slot, commit = %assignment.commit, step = name.as_deref().unwrap_or(""), "job started");
        self.running.start(job, attempt);
        match job::run(self, assignment, step, cancel_rx).await {
            Some(outcome) => Some(Ended { job, attempt, outcome }),
            None => {
                self.close(job, attempt).await;
                None
            }
        }
    }

    /// The job is over here, its result reported (or not to be).
    async fn close(&self, job: JobId, attempt: u32) {
        self.running.end(job, attempt);
        self.active().remove(&job);
        self.publish_busy().await;
    }

    /// Reports `ended` through the write path, retrying until the cluster answers.
    async fn report_apart(&self, ended: Ended) {
        let Ended { job, attempt, outcome } = ended;
        job::report(self, job, attempt, outcome).await;
        self.close(job, attempt).await;
    }

    /// Reports `ended` and claims in one request; the claim's answer if the result was
    /// recorded (or refused for good), else `None` once the result is reported apart.
    /// An answer that does not come is ambiguous (the leader may have recorded it): the
    /// report through the write path is then refused as not running, and nothing is
    /// recorded twice.
    async fn finish_and_claim(
        &self,
        leader: &str,
        ended: Ended,
        claim: ClaimRequest,
    ) -> Option<ClaimResponse> {
        let refused_until =
            *self.combined_refused_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.silenced(ended.job) || refused_until.is_some_and(|until| Instant::now() < until) {
            self.report_apart(ended).await;
            return None;
        }
        let Ended { job, attempt, outcome } = ended;
        // The answer to the result is not held back by an empty queue: the slot's next
        // claim waits instead.
        let request = FinishAndClaimRequest {
            finished: Finished { job, attempt, outcome, at: crate::clock::now() },
            claim: ClaimRequest { wait_ms: 0, ..claim },
        };
        let timeout = eventide_node::protocol::dispatch::FINISH_AND_CLAIM_TIMEOUT;
        let answer: Result<FinishAndClaimResponse, RpcError> =
            self.rpc.call(leader, FINISH_AND_CLAIM_PATH, &request, timeout).await;
        let finished = request.finished;
        match answer {
            Ok(FinishAndClaimResponse { finished: reply, claim }) => {
                if job::answered(self, &finished, reply) {
                    self.close(job, attempt).await;
                    return Some(claim);
                }
            }
            Err(RpcError::Status { status: 404, .. }) => {
                info!(peer = %leader, "the leader takes no result with a claim (an older version): reporting results apart");
                *self
                    .combined_refused_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + COMBINED_RETRY);
            }
            Err(error) => {
                debug!(peer = %leader, job_id = %job, attempt, error = %error, "result with claim failed; reporting it apart");
            }
        }
        self.report_apart(Ended { job, attempt, outcome: finished.outcome }).await;
        None
    }

    /// Checks the gate before a claim; logs and publishes every change of it.
    async fn may_claim(&self) -> bool {
        let disk = gate::disk_space(&self.settings.data_dir);
        let raft_stopped = self.raft.stopped();
        let decision = gate::decide(&Conditions {
            disk: disk.as_ref().map(|space| *space),
            min_free: self.settings.min_free_disk,
            raft_stopped: raft_stopped.as_deref(),
        });
        let (transition, paused) = {
            let mut gate = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let transition = gate.update(decision);
            (transition, gate.paused().map(str::to_owned))
        };
        match &transition {
            Some(Transition::Paused(reason) | Transition::Changed(reason)) => {
                if raft_stopped.is_some() {
                    error!(reason = %reason, "runner paused: not claiming jobs");
                } else {
                    warn!(reason = %reason, "runner paused: not claiming jobs");
                }
            }
            Some(Transition::Resumed) => info!("runner resumed: claiming jobs again"),
            None => {}
        }
        self.gossip.set_runner_paused(paused.as_deref()).await;
        paused.is_none()
    }

    async fn publish_busy(&self) {
        let busy = self.active().len() as u32;
        self.gossip.set_busy(busy);
    }

    /// True if the job must not report: its lease was revoked or it self-fenced.
    fn silenced(&self, job: JobId) -> bool {
        self.active().get(&job).is_none_or(|a| a.silenced)
    }

    fn silence(&self, job: JobId, why: &str) {
        if let Some(active) = self.active().get_mut(&job) {
            if !active.silenced {
                warn!(job_id = %job, attempt = active.attempt, reason = why, "stopping job");
                active.silenced = true;
                let _ = active.cancel.send(true);
            }
        }
    }

    async fn renew_forever(self: Arc<Self>) {
        let me: NodeId = self.settings.id;
        let mut ticker = tokio::time::interval(RENEW_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let jobs: Vec<(JobId, u32)> =
                self.active().iter().map(|(job, a)| (*job, a.attempt)).collect();
            if jobs.is_empty() {
                // A job started after the look above left a permit: this returns at once.
                self.started.notified().await;
                ticker.reset();
                continue;
            }
            let sent = Instant::now();
            let renewed = match self.leader_addr().await {
                Some(leader) => {
                    let request = RenewRequest { runner: me, jobs: jobs.clone() };
                    self.rpc.call(&leader, RENEW_PATH, &request, RENEW_INTERVAL).await.ok()
                }
                None => None,
            };
            if let Some(RenewResponse::Renewed { revoked }) = renewed {
                for job in &revoked {
                    self.silence(*job, "lease revoked by the leader");
                }
                for (job, _) in &jobs {
                    if let Some(active) = self.active().get_mut(job) {
                        active.last_renewed = sent;
                    }
                }
            }
            // Self-fencing: a job whose lease could not be renewed for a whole period
            // may already run elsewhere; kill it and report nothing.
            let stale: Vec<JobId> = self
                .active()
                .iter()
                .filter(|(_, a)| a.last_renewed.elapsed() >= LEASE_PERIOD)
                .map(|(job, _)| *job)
                .collect();
            for job in stale {
                self.silence(job, "lease not renewed for a whole lease period");
            }
        }
    }
}

/// Removes every job workspace under `work` (none runs while the runner starts); returns
/// how many there were.
fn clear_workspaces(work: &std::path::Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(work) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_workspaces_are_removed_at_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().join("work");
        assert_eq!(clear_workspaces(&work).expect("no dir is fine"), 0);
        std::fs::create_dir_all(work.join("job-7-1/src")).expect("mkdir");
        std::fs::write(work.join("job-7-1/src/a.py"), "x").expect("write");
        std::fs::create_dir_all(work.join("job-8-2")).expect("mkdir");
        std::fs::write(work.join("stray"), "x").expect("write");
        assert_eq!(clear_workspaces(&work).expect("removed"), 3);
        assert_eq!(std::fs::read_dir(&work).expect("still there").count(), 0);
    }
}
