//! The observations the state machine refused, so that they are not proposed again.
//!
//! A refused `Observe` (say, of a branch whose name has a control character, which git
//! allows and the state does not) changes nothing, so the next round plans exactly the
//! same one: without this memo every poll would commit one more refused Raft entry. An
//! entry holds the refused head of one branch of one repository; it is forgotten once
//! the branch moves or disappears, or after [`RETRY_AFTER`] (a refusal that was not
//! permanent is then tried once more). [`MAX_REMEMBERED`] bounds the memo whatever an
//! upstream holds; beyond it the oldest entry goes, which costs at most one more
//! refused entry.
//!
//! Time comes in as an argument; the memo itself never reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use eventide_consensus::{CommitId, RepoId};

/// Most refusals remembered, over all repositories.
pub const MAX_REMEMBERED: usize = 1024;

/// How long a refusal is remembered while its branch stays where it was.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);

/// One refused observation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refused {
    head: CommitId,
    reason: String,
    at: Instant,
}

/// Refused observations by repository and branch.
#[derive(Debug, Default)]
pub struct RefusalMemo {
    entries: BTreeMap<(RepoId, String), Refused>,
}

impl RefusalMemo {
    /// Why the observation of `branch` at `head` was refused, if it was and that is
    /// still remembered at `now`.
    pub fn refused(
        &self,
        repo: RepoId,
        branch: &str,
        head: &CommitId,
        now: Instant,
    ) -> Option<&str> {
        let entry = self.entries.get(&(repo, branch.to_owned()))?;
        let fresh = now.saturating_duration_since(entry.at) < RETRY_AFTER;
        (entry.head == *head && fresh).then_some(entry.reason.as_str())
    }

    /// Remembers that the observation of `branch` at `head` was refused for `reason`.
    pub fn remember(
        &mut self,
        repo: RepoId,
        branch: &str,
        head: &CommitId,
        reason: String,
        now: Instant,
    ) {
        let key = (repo, branch.to_owned());
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_REMEMBERED {
            let oldest = self.entries.iter().min_by_key(|(_, entry)| entry.at);
            if let Some(oldest) = oldest.map(|(key, _)| key.clone()) {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, Refused { head: head.clone(), reason, at: now });
    }

    /// Forgets `branch` of `repo` (its observation was accepted).
    pub fn forget(&mut self, repo: RepoId, branch: &str) {
        self.entries.remove(&(repo, branch.to_owned()));
    }

    /// Keeps only the entries of `repo` whose branch is still planned at the refused
    /// head: `planned` maps every branch the round would propose to its new head.
    pub fn retain_planned(&mut self, repo: RepoId, planned: &BTreeMap<String, CommitId>) {
        self.entries.retain(|(entry_repo, branch), entry| {
            *entry_repo != repo || planned.get(branch) == Some(&entry.head)
        });
    }

    /// Forgets repositories that are no longer watched.
    pub fn retain_repos(&mut self, repos: &BTreeSet<RepoId>) {
        self.entries.retain(|(repo, _), _| repos.contains(repo));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use eventide_consensus::testing::commit_for_test as commit;

    use super::*;

    #[test]
    fn a_refusal_is_remembered_until_its_branch_moves() {
        let start = Instant::now();
        let mut memo = RefusalMemo::default();
        let repo = RepoId(1);
        memo.remember(repo, "x\u{85}y", &commit(1), "bad name".into(), start);
        assert_eq!(memo.refused(repo, "x\u{85}y", &commit(1), start), Some("bad name"));
        assert_eq!(memo.refused(repo, "x\u{85}y", &commit(2), start), None, "the head moved");
        assert_eq!(memo.refused(RepoId(2), "x\u{85}y", &commit(1), start), None);
        assert_eq!(memo.refused(repo, "main", &commit(1), start), None);

        // Planned again at the same head: kept. Moved or gone: forgotten.
        memo.retain_planned(repo, &BTreeMap::from([("x\u{85}y".to_owned(), commit(1))]));
        assert_eq!(memo.len(), 1);
        memo.retain_planned(repo, &BTreeMap::from([("x\u{85}y".to_owned(), commit(2))]));
        assert_eq!(memo.len(), 0);
        memo.remember(repo, "gone", &commit(3), "bad".into(), start);
        memo.retain_planned(RepoId(9), &BTreeMap::new());
        assert_eq!(memo.len(), 1, "another repository's round keeps it");
        memo.retain_planned(repo, &BTreeMap::new());
        assert_eq!(memo.len(), 0);

        memo.remember(repo, "b", &commit(4), "bad".into(), start);
        memo.forget(repo, "b");
        assert_eq!(memo.refused(repo, "b", &commit(4), start), None, "accepted after all");
    }

    #[test]
    fn a_refusal_is_tried_again_after_a_while() {
        let start = Instant::now();
        let mut memo = RefusalMemo::default();
        memo.remember(RepoId(1), "b", &commit(1), "busy".into(), start);
        let almost = start + RETRY_AFTER - Duration::from_millis(1);
        assert_eq!(memo.refused(RepoId(1), "b", &commit(1), almost), Some("busy"));
        assert_eq!(memo.refused(RepoId(1), "b", &commit(1), start + RETRY_AFTER), None);
    }

    #[test]
    fn the_memo_is_bounded_and_drops_the_oldest_first() {
        let start = Instant::now();
        let mut memo = RefusalMemo::default();
        let at = |n: usize| start + Duration::from_millis(n as u64);
        for n in 0..MAX_REMEMBERED + 10 {
            memo.remember(RepoId(1), &format!("b{n}"), &commit(1), "bad".into(), at(n));
        }
        assert_eq!(memo.len(), MAX_REMEMBERED);
        let now = at(MAX_REMEMBERED + 10);
        assert_eq!(memo.refused(RepoId(1), "b9", &commit(1), now), None, "dropped");
        assert_eq!(memo.refused(RepoId(1), "b10", &commit(1), now), Some("bad"), "kept");
        // Refusing an entry already there again does not evict another.
        memo.remember(RepoId(1), "b10", &commit(2), "bad".into(), now);
        assert_eq!(memo.len(), MAX_REMEMBERED);
        assert_eq!(memo.refused(RepoId(1), "b11", &commit(1), now), Some("bad"));

        memo.retain_repos(&BTreeSet::from([RepoId(2)]));
        assert_eq!(memo.len(), 0);
    }
}
