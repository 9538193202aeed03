//! `SetLimits` and retention: old outputs are pruned and old final jobs forgotten, oldest
//! (first to become final) first, while open jobs are never touched.

use super::*;
use crate::command::TestSummary;
use crate::state::{JobFilter, JobStatus, QueueCounts};

fn ids_for_commit(state: &State, n: u8) -> Vec<JobId> {
    let filter = JobFilter { commit: Some(commit(n).to_string()), ..JobFilter::default() };
    state.jobs(&filter).iter().map(|job| job.id).collect()
}

fn output_of(state: &State, job: u64) -> Option<(String, bool)> {
    let result = state.job(JobId(job))?.result.as_ref()?;
    Some((result.output_tail.clone(), result.output_pruned))
}

/// Runs job `job` to `Passed` with the output `out <job>`.
fn pass_with_output(state: &mut State, job: u64) {
    apply_ok(state, assign(job, RUNNER, 1));
    apply_ok(state, finish_with(job, 1, outcome(Verdict::Passed, &format!("out {job}"))));
}

#[test]
fn set_limits_refuses_unusable_limits_and_any_above_the_defaults() {
    let defaults = Limits::default;
    let cases = [
        (Limits { max_attempts: 0, ..defaults() }, "max_attempts must be 1 to 3, not 0"),
        (Limits { max_attempts: 4, ..defaults() }, "max_attempts must be 1 to 3, not 4"),
        (
            Limits { output_tail_bytes: 1023, ..defaults() },
            "output_tail_bytes must be 1024 to 65536, not 1023",
        ),
        (
            Limits { output_tail_bytes: 65537, ..defaults() },
            "output_tail_bytes must be 1024 to 65536, not 65537",
        ),
        (
            Limits { retained_outputs: 1001, ..defaults() },
            "retained_outputs must be 0 to 1000, not 1001",
        ),
        (Limits { retained_jobs: 0, ..defaults() }, "retained_jobs must be 1 to 100000, not 0"),
        (
            Limits { retained_jobs: 100_001, ..defaults() },
            "retained_jobs must be 1 to 100000, not 100001",
        ),
        (
            Limits { retained_jobs: 5, retained_outputs: 6, ..defaults() },
            "retained_outputs must not exceed retained_jobs",
        ),
        (
            Limits { max_queue_per_repo: 0, ..defaults() },
            "max_queue_per_repo must be 1 to 500, not 0",
        ),
        (
            Limits { max_queue_per_repo: 501, ..defaults() },
            "max_queue_per_repo must be 1 to 500, not 501",
        ),
        (Limits { max_repos: 0, ..defaults() }, "max_repos must be 1 to 100, not 0"),
        (Limits { max_repos: 101, ..defaults() }, "max_repos must be 1 to 100, not 101"),
        (
            Limits { max_branches_per_repo: 0, ..defaults() },
            "max_branches_per_repo must be 1 to 1000, not 0",
        ),
        (
            Limits { max_branches_per_repo: u32::MAX, ..defaults() },
            "max_branches_per_repo must be 1 to 1000, not 4294967295",
        ),
    ];
    for (limits, reason) in cases {
        let mut state = repo_with_jobs(1);
        assert_refused(&mut state, Command::SetLimits { limits }, invalid(reason));
        assert_eq!(*state.limits(), Limits::default());
    }
}

#[test]
fn set_limits_replaces_the_limits() {
    let mut state = State::default();
    let limits = Limits {
        max_attempts: 1,
        output_tail_bytes: 1024,
        retained_outputs: 0,
        retained_jobs: 1,
        max_queue_per_repo: 1,
        max_repos: 1,
        max_branches_per_repo: 1,
    };
    assert_eq!(state.apply(&Command::SetLimits { limits: limits.clone() }), Reply::LimitsSet);
    assert_eq!(*state.limits(), limits);
}

#[test]
fn retention_prunes_outputs_then_forgets_jobs_in_the_order_they_ended() {
    let mut state = repo_with_jobs(6);
    apply_ok(
        &mut state,
        set_limits(|limits| {
            limits.retained_outputs = 2;
            limits.retained_jobs = 3;
        }),
    );
    // Jobs end in the order 3, 1, 5, 2, 4; job 6 stays queued.
    for job in [3, 1, 5, 2, 4] {
        pass_with_output(&mut state, job);
    }

    // The three that ended last are kept, and of those the two newest keep their output.
    for forgotten in [3, 1] {
        assert!(state.job(JobId(forgotten)).is_none(), "job {forgotten} is kept");
        assert!(ids_for_commit(&state, forgotten as u8).is_empty());
    }
    assert_eq!(output_of(&state, 5), Some((String::new(), true)));
    assert_eq!(output_of(&state, 2), Some(("out 2".to_owned(), false)));
    assert_eq!(output_of(&state, 4), Some(("out 4".to_owned(), false)));
    assert_eq!(state.job(JobId(5)).map(|job| job.status), Some(JobStatus::Passed));
    assert_eq!(ids_for_commit(&state, 5), [JobId(5)]);
    assert_eq!(state.job(JobId(6)).map(|job| job.status), Some(JobStatus::Queued));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 0, finished: 3 });
    let listed: Vec<JobId> = state.jobs(&JobFilter::default()).iter().map(|job| job.id).collect();
    assert_eq!(listed, [JobId(6), JobId(5), JobId(4), JobId(2)]);
    // Ids are never reused, and the cursor still stops the commits being queued again.
    assert_eq!(state.last_job_id(), JobId(6));
    assert_refused(
        &mut state,
        observe(REPO, MAIN, None, &[1, 3]),
        Refusal::CursorMoved { expected: None, actual: Some(commit(6)) },
    );
}

#[test]
fn retention_drops_failing_test_names_with_the_output_and_keeps_the_counts() {
    let mut state = repo_with_jobs(2);
    apply_ok(&mut state, set_limits(|limits| limits.retained_outputs = 1));
    let failing = TestSummary { passed: 1, failed: 2, skipped: 3, failing: labels(&["a", "b"]) };
    for job in [1, 2] {
        apply_ok(&mut state, assign(job, RUNNER, 1));
        let mut failed = outcome(Verdict::Failed, "FAILED");
        failed.summary = Some(failing.clone());
        apply_ok(&mut state, finish_with(job, 1, failed));
    }
    let summary = |job| state.job(JobId(job)).and_then(|j| j.result.clone()?.summary);
    assert_eq!(summary(1), Some(TestSummary { failing: Vec::new(), ..failing.clone() }));
    assert_eq!(summary(2), Some(failing));
    assert_eq!(output_of(&state, 1), Some((String::new(), true)));
}

#[test]
fn retention_never_touches_open_jobs() {
    let mut state = repo_with_jobs(4);
    apply_ok(
        &mut state,
        set_limits(|limits| {
            limits.retained_outputs = 0;
            limits.retained_jobs = 1;
        }),
    );
    apply_ok(&mut state, assign(1, RUNNER, 1));
    pass_with_output(&mut state, 2);
    pass_with_output(&mut state, 3);

    assert_eq!(state.job(JobId(1)).map(|job| job.status), Some(JobStatus::Running));
    assert!(state.job(JobId(2)).is_none());
    // With no outputs retained, even the newest final job loses its output at once.
    assert_eq!(output_of(&state, 3), Some((String::new(), true)));
    assert_eq!(state.job(JobId(4)).map(|job| job.status), Some(JobStatus::Queued));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 1, finished: 1 });
    assert_eq!(state.running_jobs().iter().map(|job| job.id).collect::<Vec<_>>(), [JobId(1)]);
}

#[test]
fn lowering_the_limits_applies_retention_at_once() {
    let mut state = repo_with_jobs(5);
    for job in 1..=4 {
        pass_with_output(&mut state, job);
    }
    apply_ok(
        &mut state,
        set_limits(|limits| {
            limits.retained_outputs = 1;
            limits.retained_jobs = 2;
        }),
    );

    assert!(state.job(JobId(1)).is_none() && state.job(JobId(2)).is_none());
    assert_eq!(output_of(&state, 3), Some((String::new(), true)));
    assert_eq!(output_of(&state, 4), Some(("out 4".to_owned(), false)));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 0, finished: 2 });

    // Raising them again brings nothing back, and later jobs are kept by the new limits.
    apply_ok(&mut state, set_limits(|_| {}));
    assert!(state.job(JobId(1)).is_none());
    assert_eq!(output_of(&state, 3), Some((String::new(), true)));
    pass_with_output(&mut state, 5);
    assert_eq!(output_of(&state, 4), Some(("out 4".to_owned(), false)));
    assert_eq!(output_of(&state, 5), Some(("out 5".to_owned(), false)));
}

#[test]
fn a_repository_removal_that_cancels_many_jobs_respects_retention() {
    let mut state = repo_with_jobs(4);
    apply_ok(
        &mut state,
        set_limits(|limits| {
            limits.retained_outputs = 1;
            limits.retained_jobs = 2;
        }),
    );
    apply_ok(&mut state, assign(2, RUNNER, 1));

    let reply = state.apply(&Command::RemoveRepo { repo: REPO, at: ENDED_AT });

    let cancelled = vec![JobId(1), JobId(2), JobId(3), JobId(4)];
    assert_eq!(reply, Reply::RepoRemoved { repo: REPO, cancelled });
    let kept: Vec<JobId> = state.jobs(&JobFilter::default()).iter().map(|job| job.id).collect();
    assert_eq!(kept, [JobId(4), JobId(3)]);
    assert!(state.running_on(RUNNER).is_empty());
    assert_eq!(state.queue_counts(), QueueCounts { queued: 0, running: 0, finished: 2 });
}
