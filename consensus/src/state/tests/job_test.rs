//! A job's life: `Assign`, `Requeue`, `Finish`, `Cancel` and `Rerun`, and the fencing by
//! attempt that gives every job exactly one final result.

use std::collections::BTreeSet;

use super::*;
use crate::command::TestSummary;
use crate::state::{
    Attempt, JobFilter, JobResult, JobStatus, QueueCounts, Trigger, MAX_FAILING_NAMES,
    MAX_MESSAGE_BYTES, MAX_REASON_BYTES, MAX_TEST_NAME_BYTES,
};

fn status(state: &State, job: u64) -> Option<JobStatus> {
    state.job(JobId(job)).map(|job| job.status)
}

fn result(state: &State, job: u64) -> JobResult {
    state.job(JobId(job)).and_then(|job| job.result.clone()).expect("the job is final")
}

fn no_labels() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn assign_starts_a_queued_job_on_the_runner() {
    let mut state = repo_with_jobs(2);
    assert_eq!(state.apply(&assign(1, RUNNER, 1)), Reply::Assigned { job: JobId(1), attempt: 1 });

    let job = state.job(JobId(1)).expect("job 1 exists");
    assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    assert_eq!((job.runner, job.started_at), (Some(RUNNER), Some(ASSIGNED_AT)));
    let started =
        Attempt { attempt: 1, runner: RUNNER, started_at: ASSIGNED_AT, ended_at: None, note: None };
    assert_eq!(job.attempts, [started]);
    assert!(job.result.is_none());

    let on_runner: Vec<JobId> = state.running_on(RUNNER).iter().map(|job| job.id).collect();
    assert_eq!(on_runner, [JobId(1)]);
    assert!(state.running_on(OTHER_RUNNER).is_empty());
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), Some(JobId(2)));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 1, finished: 0 });
}

#[test]
fn assign_is_refused_unless_the_job_is_queued_at_that_attempt() {
    // Job 1 running, job 2 queued, job 3 passed.
    let mut fixture = repo_with_jobs(3);
    run_to_end(&mut fixture, 3, Verdict::Passed);
    apply_ok(&mut fixture, assign(1, RUNNER, 1));
    let cases = [
        (assign(9, RUNNER, 1), Refusal::UnknownJob { job: JobId(9) }),
        (
            assign(1, OTHER_RUNNER, 1),
            Refusal::NotQueued { job: JobId(1), status: JobStatus::Running },
        ),
        (assign(2, RUNNER, 2), Refusal::StaleAttempt { job: JobId(2), current: 1, got: 2 }),
        (assign(2, RUNNER, 0), Refusal::StaleAttempt { job: JobId(2), current: 1, got: 0 }),
        (assign(3, RUNNER, 1), Refusal::AlreadyFinal { job: JobId(3), status: JobStatus::Passed }),
    ];
    for (command, refusal) in cases {
        assert_refused(&mut fixture.clone(), command, refusal);
    }
}

#[test]
fn requeue_puts_a_running_job_back_with_the_next_attempt() {
    let mut state = repo_with_jobs(2);
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(state.apply(&requeue(1, 1)), Reply::Requeued { job: JobId(1), attempt: 2 });

    let job = state.job(JobId(1)).expect("job 1 exists");
    assert_eq!((job.status, job.attempt), (JobStatus::Queued, 2));
    assert_eq!((job.runner, job.started_at, job.result.as_ref()), (None, None, None));
    assert_eq!(job.attempts.len(), 1);
    assert_eq!(job.attempts[0].ended_at, Some(ENDED_AT));
    assert_eq!(job.attempts[0].note.as_deref(), Some("requeued: runner died"));
    assert!(state.running_on(RUNNER).is_empty());
    // Still the oldest queued job, so it is claimed first again.
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), Some(JobId(1)));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 2, running: 0, finished: 0 });

    // Only the new attempt can be assigned.
    assert_refused(
        &mut state,
        assign(1, RUNNER, 1),
        Refusal::StaleAttempt { job: JobId(1), current: 2, got: 1 },
    );
    assert_eq!(
        state.apply(&assign(1, OTHER_RUNNER, 2)),
        Reply::Assigned { job: JobId(1), attempt: 2 }
    );
    let job = state.job(JobId(1)).expect("job 1 exists");
    let runners: Vec<(u32, NodeId)> = job.attempts.iter().map(|a| (a.attempt, a.runner)).collect();
    assert_eq!(runners, [(1, RUNNER), (2, OTHER_RUNNER)]);
    assert_eq!(state.running_on(OTHER_RUNNER).len(), 1);
}

#[test]
fn requeue_is_refused_unless_the_job_is_running_at_that_attempt() {
    // Job 1 running at attempt 2, job 2 queued, job 3 failed.
    let mut fixture = repo_with_jobs(3);
    run_to_end(&mut fixture, 3, Verdict::Failed);
    apply_ok(&mut fixture, assign(1, RUNNER, 1));
    apply_ok(&mut fixture, requeue(1, 1));
    apply_ok(&mut fixture, assign(1, RUNNER, 2));
    let cases = [
        (requeue(9, 1), Refusal::UnknownJob { job: JobId(9) }),
        (requeue(1, 1), Refusal::StaleAttempt { job: JobId(1), current: 2, got: 1 }),
        (requeue(1, 3), Refusal::StaleAttempt { job: JobId(1), current: 2, got: 3 }),
        (requeue(2, 1), Refusal::NotRunning { job: JobId(2), status: JobStatus::Queued }),
        (requeue(3, 1), Refusal::AlreadyFinal { job: JobId(3), status: JobStatus::Failed }),
    ];
    for (command, refusal) in cases {
        assert_refused(&mut fixture.clone(), command, refusal);
    }
}

#[test]
fn requeue_of_the_last_attempt_gives_up_with_an_error() {
    let mut state = repo_with_jobs(1);
    for attempt in 1..=2 {
        apply_ok(&mut state, assign(1, RUNNER, attempt));
        apply_ok(&mut state, requeue(1, attempt));
    }
    apply_ok(&mut state, assign(1, OTHER_RUNNER, 3));

    assert_eq!(state.apply(&requeue(1, 3)), Reply::GaveUp { job: JobId(1), attempts: 3 });

    let job = state.job(JobId(1)).expect("job 1 exists");
    assert_eq!((job.status, job.attempt), (JobStatus::Error, 3));
    assert_eq!(job.attempts.len(), 3);
    assert!(job.attempts.iter().all(|attempt| attempt.ended_at == Some(ENDED_AT)));
    assert_eq!(job.attempts[2].note.as_deref(), Some("requeued: runner died"));
    let expected = JobResult {
        exit_code: None,
        duration_ms: 3_000,
        output_tail: String::new(),
        output_pruned: false,
        summary: None,
        message: Some("runner lost on attempt 3 of 3: runner died".to_owned()),
        finished_at: ENDED_AT,
    };
    assert_eq!(job.result, Some(expected));
    assert!(state.running_on(OTHER_RUNNER).is_empty());
    assert_eq!(state.queue_counts(), QueueCounts { queued: 0, running: 0, finished: 1 });
    assert_refused(
        &mut state,
        requeue(1, 3),
        Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::Error },
    );
}

#[test]
fn requeue_gives_up_at_once_when_max_attempts_is_one() {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, set_limits(|limits| limits.max_attempts = 1));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(state.apply(&requeue(1, 1)), Reply::GaveUp { job: JobId(1), attempts: 1 });
    assert_eq!(
        result(&state, 1).message.as_deref(),
        Some("runner lost on attempt 1 of 1: runner died")
    );
}

#[test]
fn finish_maps_each_verdict_to_its_final_status_and_keeps_the_result() {
    let cases = [
        (Verdict::Passed, JobStatus::Passed),
        (Verdict::Failed, JobStatus::Failed),
        (Verdict::TimedOut, JobStatus::TimedOut),
        (Verdict::Error, JobStatus::Error),
    ];
    for (verdict, expected_status) in cases {
        let mut state = repo_with_jobs(1);
        apply_ok(&mut state, assign(1, RUNNER, 1));
        let summary = TestSummary { passed: 3, failed: 1, skipped: 0, failing: labels(&["t::a"]) };
        let reported = Outcome {
            verdict,
            exit_code: Some(2),
            duration_ms: 2_500,
            output_tail: "test t::a ... FAILED\n".to_owned(),
            summary: Some(summary.clone()),
            message: Some("why".to_owned()),
        };

        let reply = state.apply(&finish_with(1, 1, reported));

        assert_eq!(reply, Reply::Finished { job: JobId(1), status: expected_status });
        let expected = JobResult {
            exit_code: Some(2),
            duration_ms: 2_500,
            output_tail: "test t::a ... FAILED\n".to_owned(),
            output_pruned: false,
            summary: Some(summary),
            message: Some("why".to_owned()),
            finished_at: ENDED_AT,
        };
        let job = state.job(JobId(1)).expect("job 1 exists");
        assert_eq!((job.status, job.result.clone()), (expected_status, Some(expected)));
        assert_eq!(
            (job.attempts[0].ended_at, job.attempts[0].note.clone()),
            (Some(ENDED_AT), None)
        );
        assert!(state.running_jobs().is_empty());
        assert_eq!(state.queue_counts(), QueueCounts { queued: 0, running: 0, finished: 1 });
    }
}

#[test]
fn finish_from_an_old_attempt_is_refused_and_the_current_one_wins() {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, assign(1, RUNNER, 1));
    apply_ok(&mut state, requeue(1, 1));
    apply_ok(&mut state, assign(1, OTHER_RUNNER, 2));

    // The first runner was only presumed dead; its late result must not count.
    assert_refused(
        &mut state,
        finish(1, 1, Verdict::Failed),
        Refusal::StaleAttempt { job: JobId(1), current: 2, got: 1 },
    );
    assert_eq!(
        state.apply(&finish(1, 2, Verdict::Passed)),
        Reply::Finished { job: JobId(1), status: JobStatus::Passed }
    );
    // And once final, neither attempt can change the result.
    for attempt in [1, 2] {
        assert_refused(
            &mut state,
            finish(1, attempt, Verdict::Failed),
            Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::Passed },
        );
    }
}

#[test]
fn finish_is_refused_for_unknown_and_queued_jobs() {
    let mut state = repo_with_jobs(1);
    assert_refused(
        &mut state,
        finish(9, 1, Verdict::Passed),
        Refusal::UnknownJob { job: JobId(9) },
    );
    assert_refused(
        &mut state,
        finish(1, 1, Verdict::Passed),
        Refusal::NotRunning { job: JobId(1), status: JobStatus::Queued },
    );
}

#[test]
fn finish_keeps_the_output_tail_within_the_limit_on_a_char_boundary() {
    let euros = format!("a{}", "€".repeat(400)); // 1 + 1200 bytes
    let crabs = "🦀".repeat(300); // 1200 bytes, a boundary every 4
    let exact = "é".repeat(512); // exactly 1024 bytes
    let mixed = format!("{}{}", "x".repeat(1000), "é€🦀".repeat(10)); // 1090 bytes
    let cases = [
        (euros.as_str(), "€".repeat(341)),
        (crabs.as_str(), "🦀".repeat(256)),
        (exact.as_str(), exact.clone()),
        (mixed.as_str(), format!("{}{}", "x".repeat(934), "é€🦀".repeat(10))),
        ("short", "short".to_owned()),
    ];
    for (output, expected_tail) in cases {
        let mut state = repo_with_jobs(1);
        apply_ok(&mut state, set_limits(|limits| limits.output_tail_bytes = 1024));
        apply_ok(&mut state, assign(1, RUNNER, 1));
        apply_ok(&mut state, finish_with(1, 1, outcome(Verdict::Failed, output)));

        let tail = result(&state, 1).output_tail;
        assert!(tail.len() <= 1024, "{} bytes kept", tail.len());
        assert!(output.ends_with(&tail));
        assert_eq!(tail, expected_tail);
    }
}

#[test]
fn finish_keeps_64_kib_of_output_by_default() {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, assign(1, RUNNER, 1));
    let output = format!("{}z", "é".repeat(40 * 1024));
    apply_ok(&mut state, finish_with(1, 1, outcome(Verdict::Passed, &output)));
    // 80 KiB + 1 of output; 64 KiB back from the end falls inside an "é".
    let tail = result(&state, 1).output_tail;
    assert_eq!(tail.len(), 64 * 1024 - 1);
    assert!(output.ends_with(&tail));
}

#[test]
fn cancel_ends_a_queued_job() {
    let mut state = repo_with_jobs(2);
    assert_eq!(state.apply(&cancel(1)), Reply::Cancelled { job: JobId(1) });

    let job = state.job(JobId(1)).expect("job 1 exists");
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.attempts.is_empty());
    let expected = JobResult {
        exit_code: None,
        duration_ms: 0,
        output_tail: String::new(),
        output_pruned: false,
        summary: None,
        message: Some("cancelled: by user".to_owned()),
        finished_at: ENDED_AT,
    };
    assert_eq!(job.result, Some(expected));
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), Some(JobId(2)));
    assert_eq!(state.queue_counts(), QueueCounts { queued: 1, running: 0, finished: 1 });
    assert_refused(
        &mut state,
        assign(1, RUNNER, 1),
        Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::Cancelled },
    );
}

#[test]
fn cancel_ends_a_running_job_and_fences_out_its_runner() {
    let mut state = repo_with_jobs(1);
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(state.apply(&cancel(1)), Reply::Cancelled { job: JobId(1) });

    let job = state.job(JobId(1)).expect("job 1 exists");
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.attempts[0].ended_at, Some(ENDED_AT));
    assert_eq!(job.attempts[0].note.as_deref(), Some("cancelled: by user"));
    assert_eq!(result(&state, 1).duration_ms, 3_000);
    assert!(state.running_on(RUNNER).is_empty());
    assert!(state.running_jobs().is_empty());

    // The runner had not heard of the cancel yet; its result is refused.
    let final_refusal = Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::Cancelled };
    assert_refused(&mut state, finish(1, 1, Verdict::Passed), final_refusal.clone());
    assert_refused(&mut state, requeue(1, 1), final_refusal);
}

#[test]
fn cancel_is_refused_for_unknown_and_final_jobs() {
    let mut state = repo_with_jobs(2);
    run_to_end(&mut state, 1, Verdict::TimedOut);
    apply_ok(&mut state, cancel(2));
    let cases = [
        (cancel(9), Refusal::UnknownJob { job: JobId(9) }),
        (cancel(1), Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::TimedOut }),
        (cancel(2), Refusal::AlreadyFinal { job: JobId(2), status: JobStatus::Cancelled }),
    ];
    for (command, refusal) in cases {
        assert_refused(&mut state, command, refusal);
    }
}

#[test]
fn rerun_queues_a_new_job_for_the_commit() {
    let mut state = repo_with_jobs(2);
    run_to_end(&mut state, 1, Verdict::Failed);

    assert_eq!(
        state.apply(&rerun(REPO, 1, &["linux", "gpu", "gpu"])),
        Reply::RerunQueued { job: JobId(3) }
    );

    let job = state.job(JobId(3)).expect("the rerun job exists");
    assert_eq!((job.trigger, job.status, job.attempt), (Trigger::Rerun, JobStatus::Queued, 1));
    assert_eq!((job.repo, job.branch.as_str(), &job.commit), (REPO, MAIN, &commit(1)));
    assert_eq!((job.labels.clone(), job.created_at), (labels(&["gpu", "linux"]), Timestamp(9_000)));
    // The first job keeps its result, and the cursor does not move.
    assert_eq!(status(&state, 1), Some(JobStatus::Failed));
    assert_eq!(state.cursor(REPO, MAIN).map(|cursor| cursor.head.clone()), Some(commit(2)));
    let by_commit = JobFilter { commit: Some(commit(1).to_string()), ..JobFilter::default() };
    let ids: Vec<JobId> = state.jobs(&by_commit).iter().map(|job| job.id).collect();
    assert_eq!(ids, [JobId(3), JobId(1)]);
}

#[test]
fn rerun_is_refused_for_an_unknown_repository_or_invalid_input() {
    let mut state = repo_with_jobs(1);
    let empty_branch = Command::Rerun {
        repo: REPO,
        branch: String::new(),
        commit: commit(1),
        labels: Vec::new(),
        at: Timestamp(9_000),
    };
    let cases = [
        (rerun(RepoId(4), 1, &[]), Refusal::UnknownRepo { repo: RepoId(4) }),
        (empty_branch, invalid("empty branch")),
        (rerun(REPO, 1, &["linux", "bad\nlabel"]), invalid("label contains control characters")),
    ];
    for (command, refusal) in cases {
        assert_refused(&mut state, command, refusal);
    }
}

#[test]
fn messages_reasons_and_failing_names_are_capped() {
    let mut state = repo_with_jobs(2);
    let runner = NodeId(7);
    apply_ok(&mut state, assign(1, runner, 1));
    let mut long = outcome(Verdict::Error, "");
    long.message = Some("é".repeat(MAX_MESSAGE_BYTES));
    long.summary = Some(TestSummary {
        passed: 0,
        failed: 500,
        skipped: 0,
        failing: (0..500).map(|i| format!("test_{i}_{}", "n".repeat(3 * i))).collect(),
    });
    apply_ok(&mut state, finish_with(1, 1, long));
    let kept = result(&state, 1);
    let message = kept.message.expect("message kept");
    assert!(message.len() <= MAX_MESSAGE_BYTES && message.len() > MAX_MESSAGE_BYTES - 2);
    let summary = kept.summary.expect("summary kept");
    assert_eq!(summary.failing.len(), MAX_FAILING_NAMES);
    assert!(summary.failing.iter().all(|name| name.len() <= MAX_TEST_NAME_BYTES));
    assert_eq!(summary.failing[1], "test_1_nnn", "short names are kept whole");
    assert_eq!(summary.failing[99].len(), MAX_TEST_NAME_BYTES, "long names are cut");
    assert_eq!(summary.failed, 500, "counts are kept whole");

    apply_ok(&mut state, assign(2, runner, 1));
    let reason = "x".repeat(10 * MAX_REASON_BYTES);
    let command = Command::Requeue { job: JobId(2), attempt: 1, reason, at: Timestamp(9) };
    apply_ok(&mut state, command);
    let job = state.job(JobId(2)).expect("job");
    let note = job.attempts[0].note.as_deref().expect("note");
    assert_eq!(note.len(), "requeued: ".len() + MAX_REASON_BYTES);
}
