//! What the background tasks report for `status`: the cluster task's formation phase
//! and the observer's latest problem with each repository. They write here and the API
//! reads here, so neither imports the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use eventide_consensus::RepoId;

/// What the cluster task knows that `status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phase {
    /// Why this node is not in a cluster yet, if it is not.
    pub waiting: Option<String>,
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
    pub fn replace(&self, repo: RepoId, error: Option<String>) -> Option<String> {
        let mut errors = self.lock();
        match error {
            Some(error) => errors.insert(repo, error),
            None => errors.remove(&repo),
        }
    }

    /// Forgets repositories that are no longer watched.
    pub fn retain(&self, repos: &BTreeSet<RepoId>) {
        self.lock().retain(|repo, _| repos.contains(repo));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RepoId, String>> {
        // The map is always consistent: a panic while holding the lock cannot tear it.
        self.errors.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        health.clear();
        assert!(health.errors().is_empty());
    }
}
