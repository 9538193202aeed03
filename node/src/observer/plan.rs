//! The observer's pure decision: which `Observe` to propose for each moved branch of a
//! repository, given its branch heads and the replicated cursors.

use std::collections::{BTreeMap, HashSet};

use eventide_consensus::CommitId;

/// Most commits queued per branch per round; older new commits are recorded as skipped.
pub const COMMITS_PER_ROUND: usize = 100;

/// Most skipped commit ids listed in one `Observe` (the newest ones). The state keeps only
/// the most recent skipped ids anyway; the bound keeps a giant push (or a rewritten
/// history the mirror cannot relate to the old head) from making a Raft entry larger than
/// a message between nodes may be.
pub const MAX_SKIPPED_LISTED: usize = 10_000;

/// Leaves the newest commits whose builds fit `budget` jobs in all (the most one
/// `ObserveBuilds` may queue), moving the older ones, oldest first, to the end of
/// `skipped` (which holds commits older still): a push of many commits with many steps
/// each is capped like one of many commits, the newest kept. The newest commit is always
/// kept, whatever its size: the state refuses a build of too many jobs on its own.
/// Returns how many of the oldest commits to leave out.
pub fn within_job_budget(jobs_per_commit: &[usize], budget: usize) -> usize {
    let mut total = 0;
    let mut kept = 0;
    for &jobs in jobs_per_commit.iter().rev() {
        let jobs = jobs.max(1);
        if kept > 0 && total + jobs > budget {
            break;
        }
        total += jobs;
        kept += 1;
    }
    jobs_per_commit.len() - kept
}

/// `walk(head, hide)`: the commits reachable from `head` and from none of `hide`, oldest
/// first (`git::new_commits` on a mirror).
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
///   moved are planned first, then new branches in name order, each also leaving out
///   what the new branches before it reach, so two branches never queue the same commit.
///   That is done by taking their commits out of its walk rather than by hiding their
///   heads in it: the same commits (whatever an earlier new head reaches is hidden or in
///   that branch's walk), but each walk goes through its own branch's new history only,
///   not through every earlier new branch's too (ten new branches of a hundred commits
///   each: a thousand commits walked instead of 5,500).
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
    // What the new branches planned so far reach that `reached` does not.
    let mut taken: HashSet<CommitId> = HashSet::new();
    for (branch, head) in heads.iter().filter(|(branch, _)| !cursors.contains_key(*branch)) {
        let new_commits = if first_round {
            vec![head.clone()]
        } else {
            let walked = walk(head, &reached)?;
            let fresh = walked.iter().filter(|commit| !taken.contains(*commit)).cloned().collect();
            taken.extend(walked);
            fresh
        };
        plans.push(plan(branch, head, new_commits));
    }
    Ok(plans)
}

/// Keeps the newest [`MAX_SKIPPED_LISTED`] of `skipped` (oldest first); returns how many
/// older ones were dropped from the list.
pub fn bound_skipped(skipped: &mut Vec<CommitId>) -> usize {
    let dropped = skipped.len().saturating_sub(MAX_SKIPPED_LISTED);
    skipped.drain(..dropped);
    dropped
}

#[cfg(test)]
#[path = "plan_test.rs"]
mod tests;
