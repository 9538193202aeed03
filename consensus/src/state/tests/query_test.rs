//! The read-only views: job listing with filters and pages, queue counts, running jobs
//! and the next job a runner may claim.

use std::collections::BTreeSet;

use super::*;
use crate::state::{JobFilter, JobStatus, QueueCounts};

/// Seven jobs across two repositories, two branches and every phase:
///
/// | job | repo | branch | commit | status                   |
/// |-----|------|--------|--------|--------------------------|
/// | 1   | 1    | main   | 01…    | passed                   |
/// | 2   | 1    | main   | 02…    | running on OTHER_RUNNER  |
/// | 3   | 1    | main   | 03…    | failed                   |
/// | 4   | 1    | dev    | 04…    | queued                   |
/// | 5   | 2    | main   | 02…    | running on RUNNER        |
/// | 6   | 2    | main   | ab…    | queued                   |
/// | 7   | 1    | main   | 01…    | queued (rerun)           |
fn listing() -> State {
    let mut state = repo_with_jobs(3);
    apply_ok(&mut state, observe(REPO, "dev", None, &[4]));
    apply_ok(&mut state, add_repo(OTHER_URL));
    apply_ok(&mut state, observe(RepoId(2), MAIN, None, &[2, 0xab]));
    apply_ok(&mut state, rerun(REPO, 1, &[]));
    run_to_end(&mut state, 1, Verdict::Passed);
    run_to_end(&mut state, 3, Verdict::Failed);
    apply_ok(&mut state, assign(2, OTHER_RUNNER, 1));
    apply_ok(&mut state, assign(5, RUNNER, 1));
    state
}

fn ids(jobs: &[&crate::state::Job]) -> Vec<u64> {
    jobs.iter().map(|job| job.id.0).collect()
}

fn runner_labels(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn jobs_lists_newest_first_and_applies_every_filter() {
    let state = listing();
    let all = JobFilter::default;
    let commit_filter = |text: &str| JobFilter { commit: Some(text.to_owned()), ..all() };
    let full = |n: u8| commit(n).to_string();
    let cases: Vec<(&str, JobFilter, Vec<u64>)> = vec![
        ("everything", all(), vec![7, 6, 5, 4, 3, 2, 1]),
        ("repo 1", JobFilter { repo: Some(REPO), ..all() }, vec![7, 4, 3, 2, 1]),
        ("repo 2", JobFilter { repo: Some(RepoId(2)), ..all() }, vec![6, 5]),
        ("unknown repo", JobFilter { repo: Some(RepoId(9)), ..all() }, vec![]),
        ("branch dev", JobFilter { branch: Some("dev".into()), ..all() }, vec![4]),
        ("branch main", JobFilter { branch: Some(MAIN.into()), ..all() }, vec![7, 6, 5, 3, 2, 1]),
        (
            "repo and branch",
            JobFilter { repo: Some(REPO), branch: Some(MAIN.into()), ..all() },
            vec![7, 3, 2, 1],
        ),
        ("full commit", commit_filter(&full(1)), vec![7, 1]),
        ("full commit, two repos", commit_filter(&full(2)), vec![5, 2]),
        ("full commit in capitals", commit_filter(&full(0xab).to_uppercase()), vec![6]),
        ("full commit never seen", commit_filter(&full(0xee)), vec![]),
        ("commit prefix", commit_filter("0202"), vec![5, 2]),
        ("commit prefix in capitals", commit_filter("ABA"), vec![6]),
        ("short commit prefix", commit_filter("0"), vec![7, 5, 4, 3, 2, 1]),
        ("prefix matching nothing", commit_filter("ff"), vec![]),
        ("queued", JobFilter { status: Some(JobStatus::Queued), ..all() }, vec![7, 6, 4]),
        ("running", JobFilter { status: Some(JobStatus::Running), ..all() }, vec![5, 2]),
        ("passed", JobFilter { status: Some(JobStatus::Passed), ..all() }, vec![1]),
        ("failed", JobFilter { status: Some(JobStatus::Failed), ..all() }, vec![3]),
        ("cancelled", JobFilter { status: Some(JobStatus::Cancelled), ..all() }, vec![]),
        (
            "queued in repo 1",
            JobFilter { status: Some(JobStatus::Queued), repo: Some(REPO), ..all() },
            vec![7, 4],
        ),
        ("before 5", JobFilter { before: Some(JobId(5)), ..all() }, vec![4, 3, 2, 1]),
        ("before 1", JobFilter { before: Some(JobId(1)), ..all() }, vec![]),
        ("limit 2", JobFilter { limit: Some(2), ..all() }, vec![7, 6]),
        ("limit 0", JobFilter { limit: Some(0), ..all() }, vec![]),
        (
            "before and limit",
            JobFilter { before: Some(JobId(6)), limit: Some(2), ..all() },
            vec![5, 4],
        ),
        (
            "full commit before",
            JobFilter { before: Some(JobId(7)), ..commit_filter(&full(1)) },
            vec![1],
        ),
        (
            "queued before",
            JobFilter { status: Some(JobStatus::Queued), before: Some(JobId(7)), ..all() },
            vec![6, 4],
        ),
        (
            "full commit and status",
            JobFilter { status: Some(JobStatus::Running), ..commit_filter(&full(2)) },
            vec![5, 2],
        ),
        (
            "full commit, other status",
            JobFilter { status: Some(JobStatus::Queued), ..commit_filter(&full(2)) },
            vec![],
        ),
        ("full commit and limit", JobFilter { limit: Some(1), ..commit_filter(&full(1)) }, vec![7]),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(ids(&state.jobs(&filter)), expected, "{name}: {filter:?}");
    }
}

#[test]
fn jobs_pages_with_before_cover_every_job_once() {
    let state = listing();
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = ids(&state.jobs(&JobFilter { before, limit: Some(3), ..JobFilter::default() }));
        let Some(&last) = page.last() else { break };
        before = Some(JobId(last));
        pages.push(page);
    }
    assert_eq!(pages, [vec![7, 6, 5], vec![4, 3, 2], vec![1]]);
}

#[test]
fn queue_counts_and_running_jobs_follow_every_phase() {
    let state = listing();
    assert_eq!(state.queue_counts(), QueueCounts { queued: 3, running: 2, finished: 2 });
    // Oldest first across runners, although RUNNER sorts before OTHER_RUNNER.
    assert_eq!(ids(&state.running_jobs()), [2, 5]);
    assert_eq!(ids(&state.running_on(RUNNER)), [5]);
    assert_eq!(ids(&state.running_on(OTHER_RUNNER)), [2]);
    assert!(state.running_on(NodeId(99)).is_empty());
    assert_eq!(state.last_job_id(), JobId(7));
}

#[test]
fn an_empty_state_has_nothing_to_show() {
    let state = State::default();
    assert_eq!(state.queue_counts(), QueueCounts::default());
    assert_eq!(state.last_job_id(), JobId(0));
    assert!(state.jobs(&JobFilter::default()).is_empty());
    assert!(state.running_jobs().is_empty());
    assert!(state.next_claimable(&BTreeSet::new()).is_none());
    assert_eq!(state.repos().count(), 0);
    assert_eq!(*state.limits(), Limits::default());
}

#[test]
fn running_on_lists_a_runners_jobs_oldest_first() {
    let mut state = repo_with_jobs(3);
    apply_ok(&mut state, assign(3, RUNNER, 1));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(ids(&state.running_on(RUNNER)), [1, 3]);
}

#[test]
fn next_claimable_skips_jobs_whose_labels_the_runner_lacks() {
    let mut state = repo_with_jobs(0);
    let labelled =
        |n: u8, names: &[&str]| ObservedCommit { commit: commit(n), labels: labels(names) };
    let observe = Observe {
        commits: vec![
            labelled(1, &["gpu"]),
            labelled(2, &[]),
            labelled(3, &["linux"]),
            labelled(4, &["linux", "gpu"]),
        ],
        ..observation(REPO, MAIN, None, &[4])
    };
    apply_ok(&mut state, Command::Observe(observe));

    let claim = |state: &State, names: &[&str]| {
        state.next_claimable(&runner_labels(names)).map(|job| job.id.0)
    };
    let before_assign: [(&[&str], Option<u64>); 5] = [
        (&[], Some(2)),
        (&["gpu"], Some(1)),
        (&["linux"], Some(2)),
        (&["gpu", "linux"], Some(1)),
        (&["arm", "gpu", "linux"], Some(1)),
    ];
    for (names, expected) in before_assign {
        assert_eq!(claim(&state, names), expected, "runner labels {names:?}");
    }

    apply_ok(&mut state, assign(1, RUNNER, 1));
    apply_ok(&mut state, assign(2, RUNNER, 1));
    let after_assign: [(&[&str], Option<u64>); 4] =
        [(&[], None), (&["gpu"], None), (&["linux"], Some(3)), (&["gpu", "linux"], Some(3))];
    for (names, expected) in after_assign {
        assert_eq!(claim(&state, names), expected, "runner labels {names:?}");
    }
}

/// `claimable` lists, oldest first, every queued job `next_claimable` could give: the
/// dispatcher skips the ones other claims are assigning.
#[test]
fn claimable_lists_every_queued_job_a_runner_may_take_oldest_first() {
    let mut state = repo_with_jobs(0);
    let labelled =
        |n: u8, names: &[&str]| ObservedCommit { commit: commit(n), labels: labels(names) };
    let observe = Observe {
        commits: vec![labelled(1, &[]), labelled(2, &["gpu"]), labelled(3, &[]), labelled(4, &[])],
        ..observation(REPO, MAIN, None, &[4])
    };
    apply_ok(&mut state, Command::Observe(observe));
    apply_ok(&mut state, assign(3, RUNNER, 1));
    let listed = |names: &[&str]| -> Vec<u64> {
        state.claimable(&runner_labels(names)).map(|job| job.id.0).collect()
    };
    assert_eq!(listed(&[]), [1, 4]);
    assert_eq!(listed(&["gpu"]), [1, 2, 4]);
    assert_eq!(
        state.next_claimable(&runner_labels(&["gpu"])).map(|job| job.id.0),
        listed(&["gpu"]).first().copied()
    );
}
