//! The observer role (leader only): turns pushes to watched repositories into jobs.
//!
//! Each round fetches every repository into this node's bare mirror, compares the branch
//! heads with the replicated cursors, and proposes one `Observe` per moved branch. The
//! cursor is a compare-and-set in the replicated state, so a round that races another
//! leader, or is cut short by a failover, is refused or repeated, never applied twice:
//! the next round simply starts again from the replicated cursors.
//!
//! ```text
//!  poll interval / notify ──> round (leader only)
//!     for each repo:  spawn_blocking { fetch mirror, heads, plan_branches, labels }
//!                       └──> Observe per branch ──> Writer ──> Raft ──> cursor + jobs
//! ```
//!
//! [`plan_branches`] is the pure decision; [`run`] is the driver around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use eventide_consensus::network::WriteError;
use eventide_consensus::{Command, CommitId, Observe, ObservedCommit, Refusal, Reply, RepoId};
use openraft::ServerState;
use tracing::{debug, info, warn, Instrument};

use crate::node::NodeContext;
use crate::{clock, git, repo_config};

/// Most commits queued per branch per round; older new commits are recorded as skipped.
pub const COMMITS_PER_ROUND: usize = 100;

/// Most skipped commit ids listed in one `Observe` (the newest ones). The state keeps only
/// the most recent skipped ids anyway; the bound keeps a giant push (or a rewritten
/// history the mirror cannot relate to the old head) from making a Raft entry larger than
/// a message between nodes may be.
pub const MAX_SKIPPED_LISTED: usize = 10_000;

/// The shortest pause between rounds, whatever the configured poll interval.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `walk(head, hide)`: the commits reachable from `head` and from none of `hide`, oldest
/// first ([`git::new_commits`] on a mirror).
pub type CommitWalk<'a> = dyn FnMut(&CommitId, &[CommitId]) -> anyhow::Result<Vec<CommitId>> + 'a;

/// The `Observe` to propose for one branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchPlan {
    pub branch: String,
    /// The branch's cursor when the plan was made (`None`: never observed).
    pub expected_head: Option<CommitId>,
    pub new_head: CommitId,
    /// The commits to queue, oldest first.
    pub commits: Vec<CommitId>,
    /// New commits left out by the per-round cap, oldest first.
    pub skipped: Vec<CommitId>,
}

/// Decides what to propose for one repository, by branch name.
///
/// - A branch whose head equals its cursor, and a branch deleted upstream: nothing.
/// - `first_round` (the repository has no cursor at all yet): only each branch's head.
/// - A branch that moved: the commits reachable from the new head and not from the old
///   one, which after a force push are the commits of the rewritten part. A branch moved
///   back to an ancestor queues nothing but still moves its cursor.
/// - A branch new to an observed repository: the commits no observed branch has reached,
///   i.e. hiding every cursor of the repository and the new head of every branch already
///   observed (those commits are queued on their own branch this round). Branches that
///   moved are planned first, then new branches in name order, each also hiding the new
///   branches before it, so two branches never queue the same commit.
/// - At most `cap` commits per branch, the newest; the older ones go to `skipped`.
pub fn plan_branches(
    heads: &BTreeMap<String, CommitId>,
    cursors: &BTreeMap<String, CommitId>,
    first_round: bool,
    cap: usize,
    walk: &mut CommitWalk<'_>,
) -> anyhow::Result<Vec<BranchPlan>> {
    let mut plans = Vec::new();
    let plan = |branch: &str, head: &CommitId, mut new_commits: Vec<CommitId>| {
        let commits = new_commits.split_off(new_commits.len().saturating_sub(cap));
        BranchPlan {
            branch: branch.to_owned(),
            expected_head: cursors.get(branch).cloned(),
            new_head: head.clone(),
            commits,
            skipped: new_commits,
        }
    };
    // Commits already reached: every cursor, and every observed branch's new head.
    let mut reached: Vec<CommitId> = cursors.values().cloned().collect();
    for (branch, head) in heads {
        match cursors.get(branch) {
            Some(old_head) if old_head == head => {}
            Some(old_head) => {
                let new_commits = if first_round {
                    vec![head.clone()]
                } else {
                    walk(head, std::slice::from_ref(old_head))?
                };
                plans.push(plan(branch, head, new_commits));
                reached.push(head.clone());
            }
            None => {}
        }
    }
    for (branch, head) in heads.iter().filter(|(branch, _)| !cursors.contains_key(*branch)) {
        let new_commits = if first_round { vec![head.clone()] } else { walk(head, &reached)? };
        plans.push(plan(branch, head, new_commits));
        reached.push(head.clone());
    }
    Ok(plans)
}

/// Keeps the newest [`MAX_SKIPPED_LISTED`] of `skipped` (oldest first); returns how many
/// older ones were dropped from the list.
fn bound_skipped(skipped: &mut Vec<CommitId>) -> usize {
    let dropped = skipped.len().saturating_sub(MAX_SKIPPED_LISTED);
    skipped.drain(..dropped);
    dropped
}

/// The observer's latest problem with each repository, for `status`. Only the leader's
/// observer reports; a node that is not the leader reports nothing.
#[derive(Debug, Default)]
pub struct ObserverHealth {
    errors: Mutex<BTreeMap<RepoId, String>>,
}

impl ObserverHealth {
    /// Repositories whose last round failed, with the reason.
    pub fn errors(&self) -> BTreeMap<RepoId, String> {
        self.lock().clone()
    }

    /// Records a repository's round; returns the error it had before.
    fn replace(&self, repo: RepoId, error: Option<String>) -> Option<String> {
        let mut errors = self.lock();
        match error {
            Some(error) => errors.insert(repo, error),
            None => errors.remove(&repo),
        }
    }

    /// Forgets repositories that are no longer watched.
    fn retain(&self, repos: &BTreeSet<RepoId>) {
        self.lock().retain(|repo, _| repos.contains(repo));
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RepoId, String>> {
        // The map is always consistent: a panic while holding the lock cannot tear it.
        self.errors.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the observer forever: one round per poll interval or `notify`, on the leader only.
pub async fn run(context: Arc<NodeContext>, health: Arc<ObserverHealth>) {
    let span = tracing::info_span!("observer", role = "observer");
    async move {
        let mut driver = Driver { context, health, last_write_error: None };
        let pause = driver.context.config.poll_interval.max(MIN_POLL_INTERVAL);
        loop {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = driver.context.wake_observer.notified() => {}
            }
            if driver.is_leader() {
                driver.round().await;
            } else {
                driver.health.clear();
                driver.last_write_error = None;
            }
        }
    }
    .instrument(span)
    .await
}

/// A watched repository as the state had it when the round began.
#[derive(Clone, Debug)]
struct WatchedRepo {
    id: RepoId,
    url: String,
    /// Observed branches and their cursor heads.
    cursors: BTreeMap<String, CommitId>,
}

/// One prepared `Observe`, before its time stamp.
struct Proposal {
    plan: BranchPlan,
    commits: Vec<ObservedCommit>,
    /// Skipped commits left out of `plan.skipped` by [`MAX_SKIPPED_LISTED`].
    unlisted_skipped: usize,
}

/// Why a repository's round stopped early.
enum RepoError {
    /// Something about this repository; recorded in [`ObserverHealth`].
    Repo(anyhow::Error),
    /// The cluster did not take a write: the rest of the round would fail the same way.
    Write(WriteError),
}

struct Driver {
    context: Arc<NodeContext>,
    health: Arc<ObserverHealth>,
    /// The last write failure logged, so that a lost quorum is logged once, not per round.
    last_write_error: Option<String>,
}

impl Driver {
    fn is_leader(&self) -> bool {
        self.context.raft.metrics().borrow().state == ServerState::Leader
    }

    async fn round(&mut self) {
        let repos: Vec<WatchedRepo> = self.context.state_machine.read(|state| {
            state
                .repos()
                .map(|repo| WatchedRepo {
                    id: repo.id,
                    url: repo.url.clone(),
                    cursors: state
                        .cursors(repo.id)
                        .map(|(branch, cursor)| (branch.to_owned(), cursor.head.clone()))
                        .collect(),
                })
                .collect()
        });
        self.health.retain(&repos.iter().map(|repo| repo.id).collect());
        for repo in repos {
            if !self.is_leader() {
                return;
            }
            let error = match self.observe_repo(&repo).await {
                Ok(()) => None,
                Err(RepoError::Repo(error)) => Some(format!("{error:#}")),
                Err(RepoError::Write(error)) => {
                    let message = error.to_string();
                    if self.last_write_error.as_ref() != Some(&message) {
                        warn!(repo = %repo.id, error = %message, "observe not committed");
                        self.last_write_error = Some(message);
                    }
                    return;
                }
            };
            self.last_write_error = None;
            match (self.health.replace(repo.id, error.clone()), error) {
                (previous, Some(error)) if previous.as_ref() != Some(&error) => {
                    warn!(repo = %repo.id, url = %repo.url, error = %error, "cannot observe repository");
                }
                (Some(_), None) => {
                    info!(repo = %repo.id, url = %repo.url, "repository observed again");
                }
                _ => {}
            }
        }
    }

    /// Fetches and plans off the runtime, then proposes each branch's `Observe` in order.
    /// A refused branch does not stop the others; the first refusal is the repository's
    /// error.
    async fn observe_repo(&self, repo: &WatchedRepo) -> Result<(), RepoError> {
        let mirrors = self.context.config.data_dir.join("mirrors");
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

        let mut first_error = None;
        for proposal in proposals {
            match self.propose(repo.id, proposal).await {
                Ok(()) => {}
                Err(RepoError::Repo(error)) => {
                    first_error.get_or_insert(error);
                }
                Err(write) => return Err(write),
            }
        }
        first_error.map_or(Ok(()), |error| Err(RepoError::Repo(error)))
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
        match self.context.writer.write(command).await.map_err(RepoError::Write)? {
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
            Reply::Refused(refusal) => {
                return Err(RepoError::Repo(anyhow::anyhow!(
                    "observe of branch {branch} refused: {refusal}"
                )));
            }
            other => {
                return Err(RepoError::Repo(anyhow::anyhow!(
                    "observe of branch {branch}: unexpected reply {other:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The blocking part of a repository's round: fetch, plan, and read each new commit's
/// runner labels.
fn prepare(mirrors: &Path, repo: &WatchedRepo) -> anyhow::Result<Vec<Proposal>> {
    let mirror: PathBuf = git::mirror_path(mirrors, &repo.url);
    git::fetch_mirror(&mirror, &repo.url)?;
    let heads = git::branch_heads(&mirror)?;
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
#[path = "observer_test.rs"]
mod tests;
