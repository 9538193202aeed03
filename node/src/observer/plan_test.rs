//! Tests of the observer's planning, over an in-memory commit graph.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Commit number `n` as a full commit id.
fn id(n: u32) -> CommitId {
    CommitId::try_new(&format!("{n:040x}")).expect("40 hex digits")
}

fn number(commit: &CommitId) -> u32 {
    u32::from_str_radix(commit.as_str(), 16).expect("a test commit id")
}

fn ids(numbers: &[u32]) -> Vec<CommitId> {
    numbers.iter().copied().map(id).collect()
}

fn branches(pairs: &[(&str, u32)]) -> BTreeMap<String, CommitId> {
    pairs.iter().map(|&(name, n)| (name.to_owned(), id(n))).collect()
}

/// Commit graph: commit -> parents. Every commit is numbered above its parents, so
/// ascending numbers are a valid oldest-first (topological) order.
///
/// ```text
///  1 ─ 2 ─ 3 ─ 4 ─ 5 ─ 10 ─ 11 ─ 12 ─ 13 ─ 14    main, fast-forwarded
///          ├ 6 ─ 7                               main, rewritten from 3
///          └ 8 ─ 9                               feature, branched from 3
///  20 ─ 21                                       unrelated history (a pages branch)
/// ```
fn graph() -> BTreeMap<u32, Vec<u32>> {
    BTreeMap::from([
        (1, vec![]),
        (2, vec![1]),
        (3, vec![2]),
        (4, vec![3]),
        (5, vec![4]),
        (6, vec![3]),
        (7, vec![6]),
        (8, vec![3]),
        (9, vec![8]),
        (10, vec![5]),
        (11, vec![10]),
        (12, vec![11]),
        (13, vec![12]),
        (14, vec![13]),
        (20, vec![]),
        (21, vec![20]),
    ])
}

fn reachable(graph: &BTreeMap<u32, Vec<u32>>, from: u32) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(commit) = stack.pop() {
        if seen.insert(commit) {
            stack.extend(graph[&commit].iter().copied());
        }
    }
    seen
}

/// What `git::new_commits` does, over [`graph`]; records each call as (head, hide).
fn fake_walk(
    calls: &mut Vec<(u32, Vec<u32>)>,
) -> impl FnMut(&CommitId, &[CommitId]) -> anyhow::Result<Vec<CommitId>> + '_ {
    let graph = graph();
    move |head, hide| {
        let head = number(head);
        let hide: Vec<u32> = hide.iter().map(number).collect();
        calls.push((head, hide.clone()));
        anyhow::ensure!(graph.contains_key(&head), "commit {head} not found");
        let mut commits = reachable(&graph, head);
        for hidden in hide.into_iter().filter(|hidden| graph.contains_key(hidden)) {
            commits = &commits - &reachable(&graph, hidden);
        }
        Ok(commits.into_iter().map(id).collect())
    }
}

fn plan(
    branch: &str,
    expected_head: Option<u32>,
    new_head: u32,
    commits: &[u32],
    skipped: &[u32],
) -> BranchPlan {
    BranchPlan {
        branch: branch.to_owned(),
        expected_head: expected_head.map(id),
        new_head: id(new_head),
        commits: ids(commits),
        skipped: ids(skipped),
    }
}

struct Case {
    name: &'static str,
    heads: &'static [(&'static str, u32)],
    cursors: &'static [(&'static str, u32)],
    cap: usize,
    expected: Vec<BranchPlan>,
    /// The walks the plan asked for, as (head, hidden).
    walks: Vec<(u32, Vec<u32>)>,
}

#[test]
fn plans_follow_the_observation_rules() {
    let cases = [
        Case {
            name: "unchanged branches propose nothing",
            heads: &[("feature", 9), ("main", 5)],
            cursors: &[("feature", 9), ("main", 5)],
            cap: 100,
            expected: vec![],
            walks: vec![],
        },
        Case {
            name: "first round queues only each head, by branch name",
            heads: &[("main", 5), ("feature", 9), ("pages", 21)],
            cursors: &[],
            cap: 100,
            expected: vec![
                plan("feature", None, 9, &[9], &[]),
                plan("main", None, 5, &[5], &[]),
                plan("pages", None, 21, &[21], &[]),
            ],
            walks: vec![],
        },
        Case {
            name: "a fast-forward queues every new commit, oldest first",
            heads: &[("main", 12)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![plan("main", Some(5), 12, &[10, 11, 12], &[])],
            walks: vec![(12, vec![5])],
        },
        Case {
            name: "a force push queues the commits not reachable from the old head",
            heads: &[("main", 7)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![plan("main", Some(5), 7, &[6, 7], &[])],
            walks: vec![(7, vec![5])],
        },
        Case {
            name: "a branch reset to an ancestor moves its cursor and queues nothing",
            heads: &[("main", 3)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![plan("main", Some(5), 3, &[], &[])],
            walks: vec![(3, vec![5])],
        },
        Case {
            name: "a new branch queues what no observed branch reached",
            heads: &[("feature", 9), ("main", 5)],
            cursors: &[("gone", 21), ("main", 5)],
            cap: 100,
            expected: vec![plan("feature", None, 9, &[8, 9], &[])],
            walks: vec![(9, vec![21, 5])],
        },
        Case {
            name: "a new branch at an observed commit queues nothing",
            heads: &[("main", 5), ("release", 4)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![plan("release", None, 4, &[], &[])],
            walks: vec![(4, vec![5])],
        },
        Case {
            name: "a new branch with unrelated history queues all of it",
            heads: &[("main", 5), ("pages", 21)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![plan("pages", None, 21, &[20, 21], &[])],
            walks: vec![(21, vec![5])],
        },
        Case {
            name: "new branches queue a commit they share once, on the first by name",
            heads: &[("alpha", 9), ("beta", 9), ("gamma", 8), ("main", 5)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![
                plan("alpha", None, 9, &[8, 9], &[]),
                plan("beta", None, 9, &[], &[]),
                plan("gamma", None, 8, &[], &[]),
            ],
            walks: vec![(9, vec![5]), (9, vec![5]), (8, vec![5])],
        },
        Case {
            name: "a new branch leaves out what a moved branch and an earlier new one reach",
            heads: &[("alpha", 8), ("beta", 9), ("main", 12), ("topic", 14)],
            cursors: &[("main", 5)],
            cap: 100,
            expected: vec![
                plan("main", Some(5), 12, &[10, 11, 12], &[]),
                plan("alpha", None, 8, &[8], &[]),
                plan("beta", None, 9, &[9], &[]),
                plan("topic", None, 14, &[13, 14], &[]),
            ],
            walks: vec![(12, vec![5]), (8, vec![5, 12]), (9, vec![5, 12]), (14, vec![5, 12])],
        },
        Case {
            name: "what an earlier new branch skipped for the cap is not queued by a later one",
            heads: &[("alpha", 14), ("beta", 12), ("main", 5)],
            cursors: &[("main", 5)],
            cap: 2,
            expected: vec![
                plan("alpha", None, 14, &[13, 14], &[10, 11, 12]),
                plan("beta", None, 12, &[], &[]),
            ],
            walks: vec![(14, vec![5]), (12, vec![5])],
        },
        Case {
            name: "a deleted branch proposes nothing",
            heads: &[("main", 5)],
            cursors: &[("feature", 9), ("main", 5)],
            cap: 100,
            expected: vec![],
            walks: vec![],
        },
        Case {
            name: "the cap keeps the newest commits and skips the older ones",
            heads: &[("main", 14)],
            cursors: &[("main", 5)],
            cap: 2,
            expected: vec![plan("main", Some(5), 14, &[13, 14], &[10, 11, 12])],
            walks: vec![(14, vec![5])],
        },
        Case {
            name: "the cap applies per branch",
            heads: &[("feature", 9), ("main", 14)],
            cursors: &[("feature", 3), ("main", 11)],
            cap: 2,
            expected: vec![
                plan("feature", Some(3), 9, &[8, 9], &[]),
                plan("main", Some(11), 14, &[13, 14], &[12]),
            ],
            walks: vec![(9, vec![3]), (14, vec![11])],
        },
    ];
    for case in cases {
        let mut walks = Vec::new();
        let heads = branches(case.heads);
        let cursors = branches(case.cursors);
        let first_round = cursors.is_empty();
        let plans =
            plan_branches(&heads, &cursors, first_round, case.cap, &mut fake_walk(&mut walks))
                .expect(case.name);
        assert_eq!(plans, case.expected, "{}", case.name);
        assert_eq!(walks, case.walks, "{}", case.name);
    }
}

#[test]
fn a_failed_walk_fails_the_plan() {
    let mut walks = Vec::new();
    let heads = branches(&[("main", 99)]);
    let cursors = branches(&[("main", 5)]);
    let error = plan_branches(&heads, &cursors, false, 100, &mut fake_walk(&mut walks))
        .expect_err("unknown head");
    assert_eq!(error.to_string(), "commit 99 not found");
}

#[test]
fn skipped_lists_keep_the_newest_ids() {
    let mut skipped: Vec<CommitId> = (1..=MAX_SKIPPED_LISTED as u32 + 3).map(id).collect();
    assert_eq!(bound_skipped(&mut skipped), 3);
    assert_eq!(skipped.len(), MAX_SKIPPED_LISTED);
    assert_eq!(skipped.first(), Some(&id(4)));
    assert_eq!(skipped.last(), Some(&id(MAX_SKIPPED_LISTED as u32 + 3)));

    let mut few = ids(&[1, 2]);
    assert_eq!(bound_skipped(&mut few), 0);
    assert_eq!(few, ids(&[1, 2]));
}

#[test]
fn a_push_of_large_builds_keeps_the_newest_commits_that_fit_the_job_budget() {
    // Jobs per commit, oldest first; the number of oldest commits left out.
    let cases: [(&[usize], usize, usize); 6] = [
        (&[], 500, 0),
        (&[1, 1, 1], 500, 0),
        (&[64, 64, 64], 128, 1),
        (&[64, 64, 64], 127, 2),
        (&[10, 600], 500, 1),
        (&[0, 0], 1, 1),
    ];
    for (jobs, budget, left_out) in cases {
        assert_eq!(within_job_budget(jobs, budget), left_out, "{jobs:?} within {budget}");
    }
}
