//! The observer's driver: rounds on the leader, one task per repository.
//!
//! Every poll interval (the node's `--poll-interval`, or a repository's own) or on a
//! wake (`notify`, or a forge's webhook for one repository) the driver starts a round of
//! each due repository that has none running: a task that fetches and plans off the
//! runtime, then proposes each moved branch's `Observe` in order; only branches the
//! repository's filter passes are planned. A wake during a round marks the repository
//! to go again as soon as it ends, so that it is not lost. A slow or dead
//! upstream thus only ever delays itself; its fetch is bounded by the fetch deadline
//! (`git::FetchLimits`), and the error shows in `status`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use eventide_consensus::network::{WriteError, Writer};
use eventide_consensus::state::branch_matches;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, CommitId, Observe, ObservedCommit, Refusal, Reply, RepoId};
use tracing::{debug, info, warn, Instrument};

use super::plan::{bound_skipped, plan_branches, BranchPlan, COMMITS_PER_ROUND};
use super::refusals::RefusalMemo;
use crate::health::{Asked, ObserverHealth, ObserverWake};
use crate::raft_view::RaftView;
use crate::{clock, git, repo_config};

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
}

/// One prepared `Observe`, before its time stamp.
struct Proposal {
    plan: BranchPlan,
    commits: Vec<ObservedCommit>,
    /// Skipped commits left out of `plan.skipped` by `MAX_SKIPPED_LISTED`.
    unlisted_skipped: usize,
}

/// Why a repository's round stopped early.
enum RepoError {
    /// Something about this repository; recorded in [`ObserverHealth`].
    Repo(anyhow::Error),
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
}

/// The observer of this node: what the rounds of all repositories share.
pub struct Observer {
    settings: ObserverSettings,
    raft: RaftView,
    state_machine: StateMachineStore,
    writer: Writer,
    wake: Arc<ObserverWake>,
    health: Arc<ObserverHealth>,
    refusals: Mutex<RefusalMemo>,
    /// The last write failure logged, so that a lost quorum is logged once, not per round.
    last_write_error: Mutex<Option<String>>,
    /// The repositories whose round runs, each with whether another was asked for
    /// meanwhile.
    rounds: Mutex<HashMap<RepoId, bool>>,
    /// When each repository's next polled round is due.
    due: Mutex<HashMap<RepoId, Instant>>,
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
        let ObserverHandles { raft, state_machine, writer, wake, health } = handles;
        Arc::new(Observer {
            settings,
            raft,
            state_machine,
            writer,
            wake,
            health,
            refusals: Mutex::default(),
            last_write_error: Mutex::default(),
            rounds: Mutex::default(),
            due: Mutex::default(),
        })
    }

    /// Runs the observer forever: one round per poll interval or `notify`, on the leader
    /// only.
    pub async fn run(self: Arc<Self>) {
        let span = tracing::info_span!("observer", role = "observer");
        async move {
            loop {
                let pause = self.next_pause();
                let asked = tokio::select! {
                    () = tokio::time::sleep(pause) => None,
                    () = self.wake.wait() => Some(self.wake.take()),
                };
                if self.is_leader() {
                    self.start_rounds(asked);
                } else {
                    self.health.clear();
                    *lock(&self.last_write_error) = None;
                }
            }
        }
        .instrument(span)
        .await
    }

    fn is_leader(&self) -> bool {
        self.raft.is_leader()
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
            let entry = RoundEntry { observer: self.clone(), repo, removed: false };
            let observer = self.clone();
            tokio::spawn(async move { observer.rounds_of(entry).await }.in_current_span());
        }
    }

    /// Runs rounds of one repository until none is asked for.
    async fn rounds_of(self: Arc<Self>, mut entry: RoundEntry) {
        loop {
            self.round(entry.repo).await;
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
    async fn round(&self, repo: RepoId) {
        let watched = self.state_machine.read(|state| {
            state.repo(repo).map(|found| WatchedRepo {
                id: repo,
                url: found.url.clone(),
                cursors: state
                    .cursors(repo)
                    .map(|(branch, cursor)| (branch.to_owned(), cursor.head.clone()))
                    .collect(),
                branches: state.repo_settings(repo).branches.clone(),
            })
        });
        let Some(watched) = watched.filter(|_| self.is_leader()) else { return };
        let error = match self.observe_repo(&watched).await {
            Ok(()) => None,
            Err(RepoError::Repo(error)) => Some(format!("{error:#}")),
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
        let url = &watched.url;
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
        let proposals = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            prepare(&mirrors, &watched)
        })
        .await
        .context("observer task failed")
        .and_then(|prepared| prepared)
        .map_err(RepoError::Repo)?;
        self.health.record_fetch(repo.id, clock::now());

        let planned = proposals
            .iter()
            .map(|proposal| (proposal.plan.branch.clone(), proposal.plan.new_head.clone()))
            .collect();
        lock(&self.refusals).retain_planned(repo.id, &planned);
        let mut first_error = None;
        for proposal in proposals {
            let (branch, head) = (&proposal.plan.branch, &proposal.plan.new_head);
            let remembered = lock(&self.refusals)
                .refused(repo.id, branch, head, Instant::now())
                .map(|reason| refused_error(branch, head, reason));
            let result = match remembered.or_else(|| self.queue_full(repo.id, &proposal)) {
                Some(error) => Err(RepoError::Repo(error)),
                None => self.propose(repo.id, proposal).await,
            };
            match result {
                Ok(()) => {}
                Err(RepoError::Repo(error)) => {
                    first_error.get_or_insert(error);
                }
                Err(write) => return Err(write),
            }
        }
        first_error.map_or(Ok(()), |error| Err(RepoError::Repo(error)))
    }

    /// The error to show instead of proposing commits to a repository whose queue this
    /// replica sees full: the state would refuse them (and the cursor stays, so they
    /// are offered again once there is room), so a full queue costs no Raft entry per
    /// round. A proposal that queues nothing (a cursor move) still goes ahead.
    fn queue_full(&self, repo: RepoId, proposal: &Proposal) -> Option<anyhow::Error> {
        if proposal.commits.is_empty() {
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
        let Proposal { plan, commits, unlisted_skipped } = proposal;
        let skipped = plan.skipped.len() + unlisted_skipped;
        let branch = plan.branch.clone();
        let new_head = plan.new_head.clone();
        let command = Command::Observe(Observe {
            repo,
            branch: plan.branch,
            expected_head: plan.expected_head,
            new_head: plan.new_head,
            commits,
            skipped: plan.skipped,
            at: clock::now(),
        });
        match self.writer.write(command).await.map_err(RepoError::Write)? {
            Reply::Observed { jobs } if jobs.is_empty() && skipped == 0 => {
                debug!(repo = %repo, branch = %branch, commit = %new_head, "branch cursor moved");
            }
            Reply::Observed { jobs } => {
                info!(
                    repo = %repo,
                    branch = %branch,
                    commit = %new_head,
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
                return Err(RepoError::Repo(refused_error(
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

/// The blocking part of a repository's round: fetch, plan, and read each new commit's
/// runner labels.
fn prepare(mirrors: &Path, repo: &WatchedRepo) -> anyhow::Result<Vec<Proposal>> {
    let mirror: PathBuf = git::mirror_path(mirrors, &repo.url);
    git::fetch_mirror(&mirror, &repo.url, &git::RemoteAuth::default())?;
    let mut heads = git::branch_heads(&mirror)?;
    heads.retain(|branch, _| branch_matches(&repo.branches, branch));
    let first_round = repo.cursors.is_empty();
    let mut walk = |head: &CommitId, hide: &[CommitId]| git::new_commits(&mirror, head, hide);
    let plans = plan_branches(&heads, &repo.cursors, first_round, COMMITS_PER_ROUND, &mut walk)?;
    let proposals = plans
        .into_iter()
        .map(|mut plan| {
            let unlisted_skipped = bound_skipped(&mut plan.skipped);
            let commits = plan
                .commits
                .iter()
                .map(|commit| ObservedCommit {
                    commit: commit.clone(),
                    labels: labels_at(&mirror, commit),
                })
                .collect();
            Proposal { plan, commits, unlisted_skipped }
        })
        .collect();
    Ok(proposals)
}

/// The runner labels `commit` requires. A configuration that cannot be read requires
/// none: the job goes to any runner, which reports the problem as the job's error.
fn labels_at(mirror: &Path, commit: &CommitId) -> Vec<String> {
    match git::read_file_at(mirror, commit, repo_config::CONFIG_FILE) {
        Ok(file) => repo_config::labels_of(file.as_deref()),
        Err(error) => {
            debug!(commit = %commit, error = %format!("{error:#}"), "configuration unreadable");
            repo_config::labels_of(None)
        }
    }
}

#[cfg(test)]
#[path = "driver_test.rs"]
mod tests;
