//! What the background tasks report for `status`: the cluster task's formation phase
//! and the observer's latest problem with each repository. They write here and the API
//! reads here, so neither imports the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use eventide_api::RaftRole;
use eventide_consensus::{RepoId, Timestamp};

/// What the cluster task knows that `status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phase {
    /// Why this node is not in a cluster yet, if it is not.
    pub waiting: Option<String>,
    /// This node's role as the cluster sees it (see `cluster::effective_role`): a
    /// leader, voter or learner (standby) serves the API from its replica, a node with
    /// `None` is a client and asks a server.
    pub role: RaftRole,
}

/// Asks the observer for an immediate round, of every repository (`notify`) or of one (a
/// forge's webhook). Requests made before the observer looks are merged, none lost.
#[derive(Debug, Default)]
pub struct ObserverWake {
    notify: Notify,
    asked: Mutex<Asked>,
}

/// What was asked since the observer last looked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub all: bool,
    pub repos: BTreeSet<RepoId>,
}

impl ObserverWake {
    /// A round of every repository now.
    pub fn all(&self) {
        self.asked().all = true;
        self.notify.notify_one();
    }

    /// A round of `repo` now.
    pub fn repo(&self, repo: RepoId) {
        self.asked().repos.insert(repo);
        self.notify.notify_one();
    }

    /// Waits for a request (one made since the last [`ObserverWake::take`] wakes at once).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// What was asked since the last call, cleared.
    pub fn take(&self) -> Asked {
        std::mem::take(&mut *self.asked())
    }

    fn asked(&self) -> std::sync::MutexGuard<'_, Asked> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The observer's latest problem with each repository and when it last fetched it, for
/// `status` and `repo list`. Only the leader's observer reports; a node that is not the
/// leader reports nothing.
#[derive(Debug, Default)]
pub struct ObserverHealth {
    repos: Mutex<Repos>,
}

#[derive(Debug, Default)]
struct Repos {
    errors: BTreeMap<RepoId, String>,
    /// When each was last fetched without an error.
    fetched: BTreeMap<RepoId, Timestamp>,
}

impl ObserverHealth {
    /// Repositories whose last round failed, with the reason.
    pub fn errors(&self) -> BTreeMap<RepoId, String> {
        self.lock().errors.clone()
    }

    /// When each repository was last fetched without an error.
    pub fn fetched(&self) -> BTreeMap<RepoId, Timestamp> {
        self.lock().fetched.clone()
    }

    /// Records a repository's round; returns the error it had before.
    pub fn replace(&self, repo: RepoId, error: Option<String>) -> Option<String> {
        let mut repos = self.lock();
        match error {
            Some(error) => repos.errors.insert(repo, error),
            None => repos.errors.remove(&repo),
        }
    }

    /// Records a fetch of `repo` that succeeded at `at`.
    pub fn record_fetch(&self, repo: RepoId, at: Timestamp) {
        self.lock().fetched.insert(repo, at);
    }

    /// Forgets repositories that are no longer watched.
    pub fn retain(&self, watched: &BTreeSet<RepoId>) {
        let mut repos = self.lock();
        repos.errors.retain(|repo, _| watched.contains(repo));
        repos.fetched.retain(|repo, _| watched.contains(repo));
    }

    pub fn clear(&self) {
        let mut repos = self.lock();
        repos.errors.clear();
        repos.fetched.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Repos> {
        // The maps are always consistent: a panic while holding the lock cannot tear them.
        self.repos.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wake_requests_are_merged_until_taken() {
        let wake = ObserverWake::default();
        wake.repo(RepoId(2));
        wake.repo(RepoId(1));
        wake.wait().await;
        assert_eq!(
            wake.take(),
            Asked { all: false, repos: BTreeSet::from([RepoId(1), RepoId(2)]) }
        );
        wake.all();
        wake.repo(RepoId(3));
        wake.wait().await;
        assert_eq!(wake.take(), Asked { all: true, repos: BTreeSet::from([RepoId(3)]) });
        assert_eq!(wake.take(), Asked::default());
    }

    #[test]
    fn health_keeps_the_latest_error_per_watched_repository() {
        let health = ObserverHealth::default();
        assert_eq!(health.replace(RepoId(1), Some("unreachable".to_owned())), None);
        assert_eq!(
            health.replace(RepoId(1), Some("still unreachable".to_owned())).as_deref(),
            Some("unreachable")
        );
        health.replace(RepoId(2), Some("gone".to_owned()));
        assert_eq!(health.replace(RepoId(2), None).as_deref(), Some("gone"));
        health.replace(RepoId(3), Some("removed".to_owned()));
        health.retain(&BTreeSet::from([RepoId(1), RepoId(2)]));
        assert_eq!(health.errors(), BTreeMap::from([(RepoId(1), "still unreachable".to_owned())]));
        health.record_fetch(RepoId(1), Timestamp(5));
        health.record_fetch(RepoId(3), Timestamp(6));
        health.retain(&BTreeSet::from([RepoId(1)]));
        assert_eq!(health.fetched(), BTreeMap::from([(RepoId(1), Timestamp(5))]));
        health.clear();
        assert!(health.errors().is_empty());
        assert!(health.fetched().is_empty());
    }
}
