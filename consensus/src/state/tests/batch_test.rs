//! `Batch`: several commands in one entry, each applied as if it were its own entry.

use super::*;
use crate::codec;
use crate::state::JobStatus;

#[test]
fn a_batch_applies_each_command_in_order_with_its_own_reply() {
    let mut state = repo_with_jobs(2);
    let batch = Command::Batch(vec![
        assign(1, RUNNER, 1),
        // Job 1 is running by now: a second Assign is refused, the rest goes on.
        assign(1, OTHER_RUNNER, 1),
        finish(1, 1, Verdict::Passed),
        cancel(2),
    ]);
    let reply = state.apply(&batch);
    assert_eq!(
        reply,
        Reply::Batch(vec![
            Reply::Assigned { job: JobId(1), attempt: 1 },
            Reply::Refused(Refusal::NotQueued { job: JobId(1), status: JobStatus::Running }),
            Reply::Finished { job: JobId(1), status: JobStatus::Passed },
            Reply::Cancelled { job: JobId(2) },
        ])
    );

    let mut single = repo_with_jobs(2);
    let Command::Batch(commands) = batch else { unreachable!("built as a batch") };
    for command in &commands {
        single.apply(command);
    }
    assert_eq!(state, single, "a batch ends where the same entries one by one end");
}

#[test]
fn a_nested_batch_alone_is_refused_and_changes_nothing() {
    let mut state = repo_with_jobs(1);
    let nested = Command::Batch(vec![assign(1, RUNNER, 1)]);
    let reply = state.apply(&Command::Batch(vec![nested, cancel(1)]));
    assert_eq!(
        reply,
        Reply::Batch(vec![
            Reply::Refused(invalid("a batch cannot contain a batch")),
            Reply::Cancelled { job: JobId(1) },
        ])
    );
    assert_eq!(state.job(JobId(1)).map(|job| job.attempt), Some(1));
}

#[test]
fn an_empty_batch_changes_nothing() {
    let mut state = repo_with_jobs(1);
    let before = state.clone();
    assert_eq!(state.apply(&Command::Batch(Vec::new())), Reply::Batch(Vec::new()));
    assert_eq!(state, before);
}

/// Proposers size batches with `approximate_size`; it must never underestimate.
#[test]
fn approximate_size_is_at_least_the_encoded_size() {
    let long_output = "test_example (tests.AppTest) ... ok\n".repeat(2_000);
    let mut observed = observation(REPO, "release/2026-11", Some(1), &[2, 3, 4, 5, 6]);
    observed.skipped = commits([7, 8]);
    observed.commits[0].labels = labels(&["linux", "gpu"]);
    let commands = vec![
        add_repo(URL),
        Command::RemoveRepo { repo: REPO, at: ENDED_AT },
        Command::Observe(observed),
        assign(1, RUNNER, 1),
        requeue(1, 1),
        finish_with(1, 1, outcome(Verdict::Failed, &long_output)),
        rerun(REPO, 3, &["linux"]),
        cancel(1),
        set_limits(|_| {}),
    ];
    let batch = Command::Batch(commands.clone());
    for command in commands.iter().chain([&batch]) {
        let encoded = codec::encode(command).expect("a command encodes").len();
        assert!(
            command.approximate_size() >= encoded,
            "{} estimated below its {encoded} encoded bytes: {command:?}",
            command.approximate_size()
        );
    }
}
