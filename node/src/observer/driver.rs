//! The observer's driver: rounds on the leader, one task per repository.
//!
//! Every poll interval (the node's `--poll-interval`, or a repository's own) or on a
//! wake (`notify`, or a forge's webhook for one repository) the driver starts a round of
//! each due repository that has none running: a task that fetches and plans off the
//! runtime, then proposes each moved branch's `Observe` in order; only branches the
//! repository's filter passes are planned. A wake during a round marks the repository
//! to go again as soon as it ends, so that it is not lost. A round held back by a full
//! queue (`max_queue_per_repo`) goes again as soon as an applied entry leaves the
//! repository room, not at the next poll: a push larger than the queue is tested
//! without pauses, whatever the poll interval. A slow or dead upstream thus only ever
//! delays itself; its fetch is bounded by the fetch deadline
//! (`git::FetchLimits`), and the error shows in `status`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use eventide_consensus::auth::Secret;
use eventide_consensus::command::{BuildPlan, ObserveBuilds, PlannedJob, MAX_JOBS_PER_OBSERVE};
use eventide_consensus::network::{WriteError, Writer};
use eventide_consensus::state::branch_matches;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, CommitId, Refusal, Reply, RepoId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use super::plan::{bound_skipped, plan_branches, within_job_budget, BranchPlan, COMMITS_PER_ROUND};
use super::refusals::RefusalMemo;
use crate::health::{Asked, ObserverHealth, ObserverWake};
use crate::raft_view::RaftView;
use crate::remote::auth_for;
use crate::{clock, git, pipeline_config, repo_config};

/// Branch proposals a round's reading may get ahead of its writes.
const PROPOSALS_AHEAD: usize = 64;

/// The shortest pause between rounds, whatever the configured poll interval.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A watched repository as the state had it when its round began.
#[derive(Clone, Debug)]
struct WatchedRepo {
    id: RepoId,
    url: String,
    /// Observed branches and their cursor heads.
    cursors: BTreeMap<String, CommitId>,
    /// The branch patterns whose commits become jobs (empty: all).
    branches: Vec<String>,
    /// The credentials of its fetches, opened from the secret store.
    auth: Arc<git::RemoteAuth>,
    /// Whether the round fetches first; a round for room in the queue plans from the
    /// mirror as the last fetch left it (those commits are what waits).
    fetch: bool,
}

/// One prepared `ObserveBuilds`, before its time stamp.
struct Proposal {
    plan: BranchPlan,
    /// One build per commit of `plan.commits`, oldest first.
    builds: Vec<BuildPlan>,
    /// Skipped commits left out of `plan.skipped` by `MAX_SKIPPED_LISTED`.
    unlisted_skipped: usize,
}

/// Why a repository's round stopped early.
enum RepoError {
    /// Something about this repository; recorded in [`ObserverHealth`].
    Repo(anyhow::Error),
    /// A branch's commits wait for room in the repository's queue; recorded as `Repo`.
    Full(anyhow::Error),
    /// The cluster did not take a write: the rest of the round would fail the same way.
    Write(WriteError),
}

/// What the observer is configured with.
#[derive(Clone, Debug)]
pub struct ObserverSettings {
    /// The pause between rounds (`--poll-interval`).
    pub poll_interval: Duration,
    /// Holds `mirrors/`, the observer's bare mirror of each repository.
    pub data_dir: PathBuf,
}

/// The handles the observer uses.
pub struct ObserverHandles {
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    pub writer: Writer,
    /// Wakes the observer for an immediate round (`notify`, webhooks).
    pub wake: Arc<ObserverWake>,
    /// Each repository's latest problem, which `status` shows.
    pub health: Arc<ObserverHealth>,
    /// Opens the repositories' credentials in the secret store.
    pub secret: Option<Secret>,
}

/// The observer of this node: what the rounds of all repositories share.
pub struct Observer {
    settings: ObserverSettings,
    raft: RaftView,
    state_machine: StateMachineStore,
    writer: Writer,
    wake: Arc<ObserverWake>,
    health: Arc<ObserverHealth>,
    secret: Option<Secret>,
    refusals: Mutex<RefusalMemo>,
    /// The last write failure logged, so that a lost quorum is logged once, not per round.
    last_write_error: Mutex<Option<String>>,
    /// The repositories whose round runs, each with whether another was asked for
    /// meanwhile.
    rounds: Mutex<HashMap<RepoId, bool>>,
    /// When each repository's next polled round is due.
    due: Mutex<HashMap<RepoId, Instant>>,
    /// The repositories whose last round left commits unqueued because their queue was
    /// full: each goes again once it has room.
    held: Mutex<BTreeSet<RepoId>>,
}

/// A repository's entry in [`Observer::rounds`], removed when its task ends, even by a
/// panic.
struct RoundEntry {
    observer: Arc<Observer>,
    repo: RepoId,
    /// Already removed (under the same lock that saw no new round was asked for).
    removed: bool,
}

impl Drop for RoundEntry {
    fn drop(&mut self) {
        if !self.removed {
            lock(&self.observer.rounds).remove(&self.repo);
        }
    }
}

impl Observer {
    pub fn new(settings: ObserverSettings, handles: ObserverHandles) -> Arc<Observer> {
        let ObserverHandles { raft, state_machine, writer, wake, health, secret } = handles;
        Arc::new(Observer {
            settings,
            raft,
            state_machine,
            writer,
            wake,
            health,
            secret,
            refusals: Mutex::default(),
            last_write_error: Mutex::default(),
            rounds: Mutex::default(),
            due: Mutex::default(),
            held: Mutex::default(),
        })
    }

    /// Runs the observer forever: one round per poll interval or `notify`, on the leader
    /// only.
    pub async fn run(self: Arc<Self>) {
        let span = tracing::info_span!("observer", role = "observer");
        async move {
            let mut changes = self.raft.changes();
            let mut was_leader = false;
            loop {
                // Only the leader polls: another node waits for Raft to make it leader.
                let pause = if was_leader { self.next_pause() } else { Duration::MAX };
                let asked = tokio::select! {
                    () = tokio::time::sleep(pause) => None,
                    () = self.wake.wait() => Some(self.wake.take()),
                    // An applied entry or a new leader: act only on what matters (below).
                    alive = changes.changed() => {
                        if !alive {
                            return; // Raft has shut down: the node is stopping.
                        }
                        if self.unpolled_or_new_leader(was_leader) {
                            None
                        } else if let Some(roomy) = self.held_with_room() {
                            self.start_rounds_for_room(roomy);
                            continue;
                        } else {
                            was_leader = self.is_leader();
                            continue;
                        }
                    }
                };
                was_leader = self.is_leader();
                if was_leader {
                    self.start_rounds(asked);
                } else {
                    self.health.clear();
                    lock(&self.due).clear();
                    lock(&self.held).clear();
                    *lock(&self.last_write_error) = None;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Whether this node just became the leader, or a repository was added that has no
    /// round scheduled: both start rounds at once rather than at the next poll, so that a
    /// new leader carries on without waiting out a long `--poll-interval`.
    fn unpolled_or_new_leader(&self, was_leader: bool) -> bool {
        if !self.is_leader() {
            return was_leader;
        }
        if !was_leader {
            return true;
        }
        let scheduled = lock(&self.due).len();
        self.state_machine.read(|state| state.repos().count()) > scheduled
    }

    fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The held-back repositories that now have room in their queue, taken out of
    /// `held` (a round that finds the queue full again puts its repository back); `None`
    /// if there are none (or this node is not the leader).
    fn held_with_room(&self) -> Option<BTreeSet<RepoId>> {
        let mut held = lock(&self.held);
        if held.is_empty() || !self.is_leader() {
            return None;
        }
        let roomy: BTreeSet<RepoId> = self.state_machine.read(|state| {
            let limit = state.limits().max_queue_per_repo;
            held.iter().copied().filter(|repo| state.open_jobs(*repo) < limit).collect()
        });
        held.retain(|repo| !roomy.contains(repo));
        (!roomy.is_empty()).then_some(roomy)
    }

    /// The repositories' poll intervals: their own, else the node's.
    fn intervals(&self) -> BTreeMap<RepoId, Duration> {
        let default = self.settings.poll_interval;
        self.state_machine.read(|state| {
            state
                .repos()
                .map(|repo| {
                    let own = state.repo_settings(repo.id).poll_interval_ms;
                    (repo.id, own.map_or(default, Duration::from_millis))
                })
                .collect()
        })
    }

    /// How long to sleep until the next repository is due (at most the node's interval).
    fn next_pause(&self) -> Duration {
        let now = Instant::now();
        let due = lock(&self.due);
        let soonest = due.values().min().map(|at| at.saturating_duration_since(now));
        soonest
            .map_or(self.settings.poll_interval, |wait| wait.min(self.settings.poll_interval))
            .max(MIN_POLL_INTERVAL)
    }

    /// Starts a round of every due repository that has none running, or, on a wake, of
    /// those asked for (every one for `notify`). A woken repository that is already
    /// running is asked for another round (its fetch may have begun before the push);
    /// a poll leaves it be.
    fn start_rounds(self: &Arc<Self>, asked: Option<Asked>) {
        let intervals = self.intervals();
        let repos: BTreeSet<RepoId> = intervals.keys().copied().collect();
        self.health.retain(&repos);
        lock(&self.refusals).retain_repos(&repos);
        let now = Instant::now();
        let mut due = lock(&self.due);
        due.retain(|repo, _| repos.contains(repo));
        let mut rounds = lock(&self.rounds);
        for (repo, interval) in intervals {
            let woken =
                asked.as_ref().is_some_and(|asked| asked.all || asked.repos.contains(&repo));
            let polled = due.get(&repo).is_none_or(|at| *at <= now);
            if !(woken || polled) {
                continue;
            }
            if let Some(again) = rounds.get_mut(&repo) {
                *again |= woken;
                continue;
            }
            due.insert(repo, now + interval.max(MIN_POLL_INTERVAL));
            rounds.insert(repo, false);
            self.spawn_rounds(repo, true);
        }
    }

    /// Starts a round without a fetch of each of `roomy`, repositories whose commits
    /// wait for the room their queue now has. One whose round runs is asked for another
    /// (with a fetch: the running round may have read the queue before the room came).
    fn start_rounds_for_room(self: &Arc<Self>, roomy: BTreeSet<RepoId>) {
        let mut rounds = lock(&self.rounds);
        for repo in roomy {
            if let Some(again) = rounds.get_mut(&repo) {
                *again = true;
                continue;
            }
            rounds.insert(repo, false);
            self.spawn_rounds(repo, false);
        }
    }

    /// The task that runs `repo`'s rounds (its entry in `rounds` is made).
    fn spawn_rounds(self: &Arc<Self>, repo: RepoId, fetch: bool) {
        let entry = RoundEntry { observer: self.clone(), repo, removed: false };
        let observer = self.clone();
        tokio::spawn(async move { observer.rounds_of(entry, fetch).await }.in_current_span());
    }

    /// Runs rounds of one repository until none is asked for; the first fetches if
    /// `fetch`, the others always.
    async fn rounds_of(self: Arc<Self>, mut entry: RoundEntry, mut fetch: bool) {
        loop {
            self.round(entry.repo, fetch).await;
            fetch = true;
            let mut rounds = lock(&self.rounds);
            match rounds.get_mut(&entry.repo) {
                Some(again) if *again && self.is_leader() => *again = false,
                _ => {
                    rounds.remove(&entry.repo);
                    entry.removed = true;
                    return;
                }
            }
        }
    }

    /// One round of one repository, from the state as it is now.
    async fn round(&self, repo: RepoId, fetch: bool) {
        let watched = self.state_machine.read(|state| {
            let found = state.repo(repo)?;
            let auth = auth_for(state, self.secret.as_ref(), repo)
                .map_err(|error| (found.url.clone(), error));
            Some(auth.map(|auth| {
                WatchedRepo {
                    id: repo,
                    url: found.url.clone(),
                    cursors: state
                        .cursors(repo)
                        .map(|(branch, cursor)| (branch.to_owned(), cursor.head.clone()))
                        .collect(),
                    branches: state.repo_settings(repo).branches.clone(),
                    auth: Arc::new(auth),
                    fetch,
                }
            }))
        });
        let Some(watched) = watched.filter(|_| self.is_leader()) else { return };
        let watched = match watched {
            Ok(watched) => watched,
            Err((url, error)) => {
                self.record(repo, &url, Some(format!("{error:#}")));
                return;
            }
        };
        let error = match self.observe_repo(&watched).await {
            Ok(()) => None,
            Err(RepoError::Repo(error) | RepoError::Full(error)) => Some(format!("{error:#}")),
            Err(RepoError::Write(error)) => {
                let message = error.to_string();
                let mut last = lock(&self.last_write_error);
                if last.as_ref() != Some(&message) {
                    warn!(repo = %repo, error = %message, "observe not committed");
                    *last = Some(message);
                }
                return;
            }
        };
        *lock(&self.last_write_error) = None;
        if !self.is_leader() {
            return;
        }
        self.record(repo, &watched.url, error);
    }

    /// Records a round's outcome for `status`, logging a change.
    fn record(&self, repo: RepoId, url: &str, error: Option<String>) {
        match (self.health.replace(repo, error.clone()), error) {
            (previous, Some(error)) if previous.as_ref() != Some(&error) => {
                warn!(repo = %repo, url = %url, error = %error, "cannot observe repository");
            }
            (Some(_), None) => info!(repo = %repo, url = %url, "repository observed again"),
            _ => {}
        }
    }

    /// Fetches and plans off the runtime, then proposes each branch's `Observe` in order.
    /// A refused branch does not stop the others; the first refusal is the repository's
    /// error. A branch whose head was refused before is not proposed again (its refusal
    /// stays the repository's error).
    async fn observe_repo(&self, repo: &WatchedRepo) -> Result<(), RepoError> {
        let mirrors = self.settings.data_dir.join("mirrors");
        let span = tracing::Span::current();
        let watched = repo.clone();
        // Each branch's proposal is sent as soon as its commits' pipelines are read, and
        // proposed while the next branches' are: a push of many branches has its first
        // jobs queued after one branch's reading, not after all of them, and the reading
        // does not wait for the writes.
        let (sender, mut prepared) = mpsc::channel(PROPOSALS_AHEAD);
        let preparing = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            prepare(&mirrors, &watched, &sender)
        });
        let planned = match prepared.recv().await {
            Some(Prepared::Planned(planned)) => planned,
            // Nothing planned: the preparation failed (or its task did).
            _ => {
                let failed = preparing.await.context("observer task failed");
                return Err(RepoError::Repo(match failed {
                    Ok(Err(error)) => error,
                    Err(error) => error,
                    Ok(Ok(())) => anyhow::anyhow!("observer round planned nothing"),
                }));
            }
        };
        if repo.fetch {
            self.health.record_fetch(repo.id, clock::now());
        }
        lock(&self.refusals).retain_planned(repo.id, &planned);
        let mut first_error = None;
        let mut full = false;
        while let Some(Prepared::Proposal(proposal)) = prepared.recv().await {
            let (branch, head) = (&proposal.plan.branch, &proposal.plan.new_head);
            let remembered = lock(&self.refusals)
                .refused(repo.id, branch, head, Instant::now())
                .map(|reason| refused_error(branch, head, reason));
            let result = match remembered {
                Some(error) => Err(RepoError::Repo(error)),
                None => match self.queue_full(repo.id, &proposal) {
                    Some(error) => Err(RepoError::Full(error)),
                    None => self.propose(repo.id, proposal).await,
                },
            };
            match result {
                Ok(()) => {}
                Err(RepoError::Repo(error)) => {
                    first_error.get_or_insert(error);
                }
                Err(RepoError::Full(error)) => {
                    full = true;
                    first_error.get_or_insert(error);
                }
                Err(write) => return Err(write),
            }
        }
        if full {
            // After the last write of the round: an entry applied from now on that
            // leaves room starts the next round.
            lock(&self.held).insert(repo.id);
        }
        match preparing.await.context("observer task failed") {
            Ok(Ok(())) => {}
            Ok(Err(error)) | Err(error) => {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), |error| Err(RepoError::Repo(error)))
    }

    /// The error to show instead of proposing commits to a repository whose queue this
    /// replica sees full: the state would refuse them (and the cursor stays, so they
    /// are offered again once there is room), so a full queue costs no Raft entry per
    /// round. A proposal that queues nothing (a cursor move) still goes ahead.
    fn queue_full(&self, repo: RepoId, proposal: &Proposal) -> Option<anyhow::Error> {
        if proposal.builds.is_empty() {
            return None;
        }
        let (open, limit) = self
            .state_machine
            .read(|state| (state.open_jobs(repo), state.limits().max_queue_per_repo));
        (open >= limit).then(|| {
            let refusal = Refusal::QueueFull { repo, limit };
            anyhow::anyhow!("new commits on branch {:?} wait: {refusal}", proposal.plan.branch)
        })
    }

    async fn propose(&self, repo: RepoId, proposal: Proposal) -> Result<(), RepoError> {
        let Proposal { plan, builds, unlisted_skipped } = proposal;
        let skipped = plan.skipped.len() + unlisted_skipped;
        let branch = plan.branch.clone();
        let new_head = plan.new_head.clone();
        let command = Command::ObserveBuilds(ObserveBuilds {
            repo,
            branch: plan.branch,
            expected_head: plan.expected_head,
            new_head: plan.new_head,
            builds,
            skipped: plan.skipped,
            by: None,
            at: clock::now(),
        });
        match self.writer.write(command).await.map_err(RepoError::Write)? {
            Reply::BuildsObserved { jobs, .. } if jobs.is_empty() && skipped == 0 => {
                debug!(repo = %repo, branch = %branch, commit = %new_head, "branch cursor moved");
            }
            Reply::BuildsObserved { builds, jobs } => {
                info!(
                    repo = %repo,
                    branch = %branch,
                    commit = %new_head,
                    builds = builds.len(),
                    jobs = jobs.len(),
                    skipped,
                    "new commits queued"
                );
            }
            Reply::Refused(Refusal::CursorMoved { expected, actual }) => {
                // Another leader observed first; the next round starts from its cursor.
                debug!(repo = %repo, branch = %branch, ?expected, ?actual, "branch cursor moved meanwhile");
            }
            // Removed during the round: the next round no longer sees it.
            Reply::Refused(Refusal::UnknownRepo { .. }) => {}
            // Not remembered: the same commits are offered again as soon as the queue
            // has room (the cursor did not move).
            Reply::Refused(refusal @ Refusal::QueueFull { .. }) => {
                return Err(RepoError::Full(refused_error(
                    &branch,
                    &new_head,
                    &refusal.to_string(),
                )));
            }
            Reply::Refused(refusal) => {
                let reason = refusal.to_string();
                let error = refused_error(&branch, &new_head, &reason);
                lock(&self.refusals).remember(repo, &branch, &new_head, reason, Instant::now());
                return Err(RepoError::Repo(error));
            }
            other => {
                return Err(RepoError::Repo(anyhow::anyhow!(
                    "observe of branch {branch:?}: unexpected reply {other:?}"
                )));
            }
        }
        lock(&self.refusals).forget(repo, &branch);
        Ok(())
    }
}

/// The error of a refused observation; the branch is quoted, since what the state
/// refuses in a name may be unprintable.
fn refused_error(branch: &str, head: &CommitId, reason: &str) -> anyhow::Error {
    anyhow::anyhow!("observe of branch {branch:?} at {head} refused: {reason}")
}

/// Locks a mutex whose data a panic cannot leave torn.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the blocking part of a round sends, in this order: the branch heads it planned
/// for, then one proposal per branch.
enum Prepared {
    Planned(BTreeMap<String, CommitId>),
    Proposal(Proposal),
}

/// The blocking part of a repository's round: fetch (if the round does), plan, and read each new commit's
/// pipeline, sending what it planned and then each branch's proposal to `sent` as soon
/// as it is ready. An error only before anything is sent; it stops early if the
/// receiver is gone.
fn prepare(
    mirrors: &Path,
    repo: &WatchedRepo,
    sent: &mpsc::Sender<Prepared>,
) -> anyhow::Result<()> {
    let mirror: PathBuf = git::mirror_path(mirrors, &repo.url);
    if repo.fetch {
        git::fetch_mirror(&mirror, &repo.url, &repo.auth)?;
    }
    let mut heads = git::branch_heads(&mirror)?;
    heads.retain(|branch, _| branch_matches(&repo.branches, branch));
    let first_round = repo.cursors.is_empty();
    let opened = git::Mirror::open(&mirror)?;
    let mut walk = |head: &CommitId, hide: &[CommitId]| opened.new_commits(head, hide);
    let plans = plan_branches(&heads, &repo.cursors, first_round, COMMITS_PER_ROUND, &mut walk)?;
    let planned = plans.iter().map(|plan| (plan.branch.clone(), plan.new_head.clone())).collect();
    if sent.blocking_send(Prepared::Planned(planned)).is_err() {
        return Ok(());
    }
    for mut plan in plans {
        let mut builds: Vec<BuildPlan> =
            plan.commits.iter().map(|commit| build_plan_at(&opened, commit)).collect();
        let sizes: Vec<usize> = builds.iter().map(|build| build.jobs.len()).collect();
        let left_out = within_job_budget(&sizes, MAX_JOBS_PER_OBSERVE);
        plan.skipped.extend(plan.commits.drain(..left_out));
        builds.drain(..left_out);
        let unlisted_skipped = bound_skipped(&mut plan.skipped);
        let proposal = Proposal { plan, builds, unlisted_skipped };
        if sent.blocking_send(Prepared::Proposal(proposal)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The build `commit`'s configuration describes: its steps and matrix cells with their
/// needs and labels, and the commit's subject and author. A configuration that cannot be
/// read is one job, `test`, without labels: it goes to any runner, which reports the
/// problem as the job's error.
fn build_plan_at(mirror: &git::Mirror, commit: &CommitId) -> BuildPlan {
    let file = mirror.read_file_at(commit, repo_config::CONFIG_FILE).unwrap_or_else(|error| {
        debug!(commit = %commit, error = %format!("{error:#}"), "configuration unreadable");
        None
    });
    let parsed = file.as_deref().map(pipeline_config::parse);
    let (jobs, cancel_superseded) = match &parsed {
        Some(Ok(config)) => (pipeline_config::plan(config), config.cancel_superseded),
        _ => (pipeline_config::plan_of(None), false),
    };
    let (subject, author) = mirror.commit_info(commit).unwrap_or_default();
    BuildPlan {
        commit: commit.clone(),
        subject,
        author,
        jobs: jobs
            .into_iter()
            .map(|job| PlannedJob {
                step: job.step,
                matrix: job.matrix,
                needs: job.needs,
                labels: job.labels,
                concurrency: job.concurrency,
            })
            .collect(),
        cancel_superseded,
    }
}

#[cfg(test)]
#[path = "driver_test.rs"]
mod tests;
