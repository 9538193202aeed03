//! `AddRepo`, `RemoveRepo` and `Observe`: repositories, branch cursors and new jobs.

use super::*;
use crate::state::{Cursor, JobFilter, JobStatus, QueueCounts, Trigger};
use crate::state::{
    MAX_BRANCH_BYTES, MAX_COMMITS_PER_OBSERVE, MAX_LABELS, MAX_LABEL_BYTES, MAX_NAME_BYTES,
};

#[test]
fn add_repo_gives_sequential_ids_and_indexes_the_url() {
    let mut state = State::default();
    assert_eq!(state.apply(&add_repo(URL)), Reply::RepoAdded { repo: RepoId(1) });
    assert_eq!(state.apply(&add_repo(OTHER_URL)), Reply::RepoAdded { repo: RepoId(2) });

    let repo = state.repo(RepoId(1)).expect("the first repository is recorded");
    assert_eq!((repo.id, repo.url.as_str(), repo.added_at), (RepoId(1), URL, Timestamp(1)));
    assert_eq!(state.repo_by_url(OTHER_URL).map(|repo| repo.id), Some(RepoId(2)));
    assert_eq!(state.repos().map(|repo| repo.id).collect::<Vec<_>>(), [RepoId(1), RepoId(2)]);
}

#[test]
fn add_repo_refuses_a_url_already_watched() {
    let mut state = State::default();
    apply_ok(&mut state, add_repo(URL));
    apply_ok(&mut state, add_repo(OTHER_URL));
    assert_refused(&mut state, add_repo(OTHER_URL), Refusal::DuplicateRepo { existing: RepoId(2) });
}

#[test]
fn add_repo_refuses_empty_long_and_control_character_urls() {
    let too_long = format!("file:///{}", "a".repeat(MAX_NAME_BYTES));
    let longest = "a".repeat(MAX_NAME_BYTES);
    let cases = [
        ("", Some("empty repository url")),
        (too_long.as_str(), Some("repository url longer than 4096 bytes")),
        ("file:///srv/a\nb.git", Some("repository url contains control characters")),
        ("file:///srv/a\u{7f}.git", Some("repository url contains control characters")),
        (longest.as_str(), None),
    ];
    for (url, refusal) in cases {
        let mut state = State::default();
        match refusal {
            Some(reason) => assert_refused(&mut state, add_repo(url), invalid(reason)),
            None => assert_eq!(state.apply(&add_repo(url)), Reply::RepoAdded { repo: RepoId(1) }),
        }
    }
}

#[test]
fn remove_repo_refuses_an_unknown_repository() {
    let mut state = repo_with_jobs(1);
    assert_refused(
        &mut state,
        Command::RemoveRepo { repo: RepoId(9), at: ENDED_AT },
        Refusal::UnknownRepo { repo: RepoId(9) },
    );
}

#[test]
fn remove_repo_cancels_its_open_jobs_and_forgets_its_cursors() {
    // On the removed repository: jobs 1 (queued), 2 (running) and 3 (passed) on `main`
    // and 4 (queued) on `dev`. Job 5, on another repository, must not be touched.
    let mut state = repo_with_jobs(3);
    apply_ok(&mut state, observe(REPO, "dev", None, &[9]));
    run_to_end(&mut state, 3, Verdict::Passed);
    apply_ok(&mut state, assign(2, RUNNER, 1));
    apply_ok(&mut state, add_repo(OTHER_URL));
    apply_ok(&mut state, observe(RepoId(2), MAIN, None, &[20]));

    let reply = state.apply(&Command::RemoveRepo { repo: REPO, at: ENDED_AT });

    assert_eq!(
        reply,
        Reply::RepoRemoved { repo: REPO, cancelled: vec![JobId(1), JobId(2), JobId(4)] }
    );
    for (job, duration_ms) in [(1, 0), (2, 3_000), (4, 0)] {
        let job = state.job(JobId(job)).expect("cancelled jobs are kept");
        assert_eq!(job.status, JobStatus::Cancelled);
        let result = job.result.as_ref().expect("a cancelled job has a result");
        assert_eq!(result.message.as_deref(), Some("cancelled: repository removed"));
        assert_eq!((result.finished_at, result.duration_ms), (ENDED_AT, duration_ms));
    }
    let attempt = &state.job(JobId(2)).expect("job 2 is kept").attempts[0];
    assert_eq!(attempt.ended_at, Some(ENDED_AT));
    assert_eq!(attempt.note.as_deref(), Some("cancelled: repository removed"));
    assert_eq!(state.job(JobId(3)).map(|job| job.status), Some(JobStatus::Passed));
    assert_eq!(state.job(JobId(5)).map(|job| job.status), Some(JobStatus::Queued));

    assert!(state.repo(REPO).is_none());
    assert!(state.repo_by_url(URL).is_none());
    assert!(state.cursor(REPO, MAIN).is_none());
    assert_eq!(state.cursors(REPO).count(), 0);
    assert!(state.running_on(RUNNER).is_empty());
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 0, finished: 4 });
}

#[test]
fn a_removed_url_can_be_watched_again_from_scratch() {
    let mut state = repo_with_jobs(2);
    apply_ok(&mut state, Command::RemoveRepo { repo: REPO, at: ENDED_AT });
    assert_eq!(state.apply(&add_repo(URL)), Reply::RepoAdded { repo: RepoId(2) });
    // The new repository has no cursor, so the branch is observed as never seen.
    assert_eq!(
        state.apply(&observe(RepoId(2), MAIN, None, &[1, 2])),
        Reply::Observed { jobs: vec![JobId(3), JobId(4)] }
    );
}

#[test]
fn observe_of_a_new_branch_queues_one_job_per_commit_oldest_first() {
    let mut state = repo_with_jobs(0);
    let reply = state.apply(&observe(REPO, MAIN, None, &[3, 1, 2]));

    assert_eq!(reply, Reply::Observed { jobs: vec![JobId(1), JobId(2), JobId(3)] });
    assert_eq!(state.last_job_id(), JobId(3));
    for (id, n) in [(1, 3), (2, 1), (3, 2)] {
        let job = state.job(JobId(id)).expect("observed jobs exist");
        assert_eq!(job.commit, commit(n));
        assert_eq!((job.repo, job.branch.as_str(), job.trigger), (REPO, MAIN, Trigger::Push));
        assert_eq!((job.status, job.attempt, job.created_at), (JobStatus::Queued, 1, OBSERVED_AT));
        assert_eq!((job.runner, job.started_at, job.result.as_ref()), (None, None, None));
        assert!(job.attempts.is_empty());
    }
    let cursor = state.cursor(REPO, MAIN).expect("the branch has a cursor");
    let expected = Cursor {
        head: commit(2),
        updated_at: OBSERVED_AT,
        skipped_total: 0,
        recent_skipped: Vec::new(),
    };
    assert_eq!(*cursor, expected);
    assert_eq!(state.queue_counts(), QueueCounts { queued: 3, running: 0, finished: 0 });
}

#[test]
fn observe_from_the_current_head_moves_the_cursor_and_continues_the_ids() {
    let mut state = repo_with_jobs(2);
    assert_eq!(
        state.apply(&observe(REPO, MAIN, Some(2), &[3, 4])),
        Reply::Observed { jobs: vec![JobId(3), JobId(4)] }
    );
    assert_eq!(state.cursor(REPO, MAIN).map(|cursor| cursor.head.clone()), Some(commit(4)));
    // A moved head with nothing to test (e.g. a rewind) moves the cursor only.
    let mut rewind = observation(REPO, MAIN, Some(4), &[]);
    rewind.new_head = commit(1);
    assert_eq!(state.apply(&Command::Observe(rewind)), Reply::Observed { jobs: vec![] });
    assert_eq!(state.cursor(REPO, MAIN).map(|cursor| cursor.head.clone()), Some(commit(1)));
    assert_eq!(state.last_job_id(), JobId(4));
}

#[test]
fn observe_is_refused_unless_the_cursor_still_equals_the_expected_head() {
    // Cursor of `main` is at commit 2; `dev` was never observed.
    let cases = [
        (MAIN, None, Some(2)),
        (MAIN, Some(1), Some(2)),
        (MAIN, Some(9), Some(2)),
        ("dev", Some(2), None),
    ];
    for (branch, expected, actual) in cases {
        let mut state = repo_with_jobs(2);
        assert_refused(
            &mut state,
            observe(REPO, branch, expected, &[5]),
            Refusal::CursorMoved { expected: expected.map(commit), actual: actual.map(commit) },
        );
    }
}

#[test]
fn observe_of_one_branch_leaves_other_branches_and_repositories_alone() {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, add_repo(OTHER_URL));
    apply_ok(&mut state, observe(RepoId(2), MAIN, None, &[7]));
    apply_ok(&mut state, observe(REPO, "dev", None, &[8]));

    let heads: Vec<_> = state.cursors(REPO).map(|(name, c)| (name, c.head.clone())).collect();
    assert_eq!(heads, [("dev", commit(8)), (MAIN, commit(1))]);
    assert_eq!(state.cursor(RepoId(2), MAIN).map(|c| c.head.clone()), Some(commit(7)));
}

#[test]
fn observe_records_skipped_commits_in_the_cursor_up_to_the_cap() {
    let mut state = repo_with_jobs(0);
    let mut first = observation(REPO, MAIN, None, &[200]);
    first.skipped = commits(0..5);
    apply_ok(&mut state, Command::Observe(first));
    let cursor = state.cursor(REPO, MAIN).expect("the branch has a cursor");
    assert_eq!((cursor.skipped_total, cursor.recent_skipped.clone()), (5, commits(0..5)));

    let mut second = observation(REPO, MAIN, Some(200), &[201]);
    second.skipped = commits(5..150);
    apply_ok(&mut state, Command::Observe(second));
    let cursor = state.cursor(REPO, MAIN).expect("the branch has a cursor");
    assert_eq!(cursor.skipped_total, 150);
    assert_eq!(cursor.recent_skipped.len(), Cursor::RECENT_SKIPPED);
    // The newest are kept, newest last.
    assert_eq!(cursor.recent_skipped, commits(140..150));

    // A few more push the oldest out.
    let mut third = observation(REPO, MAIN, Some(201), &[202]);
    third.skipped = commits(150..153);
    apply_ok(&mut state, Command::Observe(third));
    let cursor = state.cursor(REPO, MAIN).expect("the branch has a cursor");
    assert_eq!(cursor.recent_skipped, commits(143..153));

    // An observation that skips nothing keeps the record.
    apply_ok(&mut state, observe(REPO, MAIN, Some(202), &[203]));
    let cursor = state.cursor(REPO, MAIN).expect("the branch has a cursor");
    assert_eq!((cursor.skipped_total, cursor.recent_skipped.len()), (153, 10));
}

#[test]
fn observe_refuses_an_unknown_repository() {
    let mut state = repo_with_jobs(1);
    assert_refused(
        &mut state,
        observe(RepoId(2), MAIN, None, &[1]),
        Refusal::UnknownRepo { repo: RepoId(2) },
    );
}

#[test]
fn observe_refuses_invalid_branches_and_too_many_commits() {
    let with_commits = |count: usize| Observe {
        commits: vec![ObservedCommit { commit: commit(1), labels: Vec::new() }; count],
        ..observation(REPO, MAIN, None, &[1])
    };
    let longest = "b".repeat(MAX_BRANCH_BYTES);
    let too_long = format!("{longest}é");
    let cases = [
        (observation(REPO, "", None, &[1]), Some("empty branch".to_owned())),
        (observation(REPO, "a\tb", None, &[1]), Some("branch contains control characters".into())),
        (observation(REPO, &too_long, None, &[1]), Some("branch longer than 255 bytes".into())),
        (
            with_commits(MAX_COMMITS_PER_OBSERVE + 1),
            Some(format!("501 commits in one observation, at most {MAX_COMMITS_PER_OBSERVE}")),
        ),
        (observation(REPO, &longest, None, &[1]), None),
        (with_commits(MAX_COMMITS_PER_OBSERVE), None),
    ];
    for (observe, refusal) in cases {
        let mut state = repo_with_jobs(0);
        match refusal {
            Some(reason) => assert_refused(&mut state, Command::Observe(observe), invalid(&reason)),
            None => {
                apply_ok(&mut state, Command::Observe(observe));
            }
        }
    }
}

/// Labels come from the repository's own configuration: a commit whose labels break
/// the bounds must not stall its branch (every later observation would include it), so
/// its job ends in `error` at once, saying why, and the rest are queued.
#[test]
fn a_commit_with_labels_beyond_the_bounds_gets_a_job_that_ends_in_error() {
    let too_many: Vec<String> = (0..=MAX_LABELS).map(|n| format!("label-{n}")).collect();
    let most: Vec<String> = too_many[..MAX_LABELS].to_vec();
    let cases = [
        (too_many, Some("more than 8 labels")),
        (labels(&["linux", ""]), Some("empty label")),
        (vec!["l".repeat(MAX_LABEL_BYTES + 1)], Some("label longer than 32 bytes")),
        (labels(&["bad\nlabel"]), Some("label contains control characters")),
        (vec!["l".repeat(MAX_LABEL_BYTES)], None),
        (most, None),
    ];
    for (commit_labels, problem) in cases {
        let mut state = repo_with_jobs(0);
        let observe = Observe {
            commits: vec![
                ObservedCommit { commit: commit(1), labels: commit_labels.clone() },
                ObservedCommit { commit: commit(2), labels: Vec::new() },
            ],
            ..observation(REPO, MAIN, None, &[2])
        };

        let reply = apply_ok(&mut state, Command::Observe(observe));

        assert_eq!(reply, Reply::Observed { jobs: vec![JobId(1), JobId(2)] });
        let first = state.job(JobId(1)).expect("job 1");
        match problem {
            Some(problem) => {
                assert_eq!(first.status, JobStatus::Error, "{commit_labels:?}");
                assert!(first.labels.is_empty());
                let message = first.result.as_ref().and_then(|r| r.message.clone());
                let expected = format!("not run: its runner labels are refused: {problem}");
                assert_eq!(message, Some(expected));
            }
            None => {
                assert_eq!(first.status, JobStatus::Queued);
                let mut sorted = commit_labels.clone();
                sorted.sort();
                assert_eq!(first.labels, sorted);
            }
        }
        assert_eq!(state.job(JobId(2)).map(|job| job.status), Some(JobStatus::Queued));
        assert_eq!(state.cursor(REPO, MAIN).map(|c| c.head.clone()), Some(commit(2)));
    }
}

#[test]
fn observe_sorts_and_deduplicates_each_jobs_labels() {
    let mut state = repo_with_jobs(0);
    let observe = Observe {
        commits: vec![
            ObservedCommit { commit: commit(1), labels: labels(&["linux", "gpu", "linux"]) },
            ObservedCommit { commit: commit(2), labels: Vec::new() },
        ],
        ..observation(REPO, MAIN, None, &[2])
    };
    apply_ok(&mut state, Command::Observe(observe));
    let labels_of = |id| state.job(JobId(id)).map(|job| job.labels.clone());
    assert_eq!(labels_of(1), Some(labels(&["gpu", "linux"])));
    assert_eq!(labels_of(2), Some(Vec::new()));
    let by_commit = JobFilter { commit: Some(commit(1).to_string()), ..JobFilter::default() };
    assert_eq!(state.jobs(&by_commit).len(), 1);
}
