//! Builds: a plan queued as jobs, waiting jobs queued or skipped as their needs end, the
//! build's status, cancelling and superseding builds, concurrency groups and artifacts.

use std::collections::BTreeSet;

use super::*;
use crate::command::{BuildPlan, ObserveBuilds, PlannedJob, MAX_JOBS_PER_BUILD};
use crate::state::{Artifact, BuildFilter, BuildStatus, JobStatus, Trigger, MAX_ARTIFACTS};
use crate::types::BuildId;

fn job(step: &str, needs: &[u16]) -> PlannedJob {
    PlannedJob {
        step: step.to_owned(),
        matrix: Vec::new(),
        needs: needs.to_vec(),
        labels: Vec::new(),
        concurrency: None,
    }
}

fn cell(step: &str, key: &str, value: &str, needs: &[u16]) -> PlannedJob {
    PlannedJob { matrix: vec![(key.to_owned(), value.to_owned())], ..job(step, needs) }
}

fn plan(n: u8, jobs: Vec<PlannedJob>) -> BuildPlan {
    BuildPlan {
        commit: commit(n),
        subject: format!("commit {n}"),
        author: "Ada <ada@example.org>".to_owned(),
        jobs,
        cancel_superseded: false,
    }
}

/// build → test (two cells) → deploy.
fn pipeline(n: u8) -> BuildPlan {
    plan(
        n,
        vec![
            job("build", &[]),
            cell("test", "python", "3.11", &[0]),
            cell("test", "python", "3.12", &[0]),
            job("deploy", &[1, 2]),
        ],
    )
}

fn observe_builds(expected: Option<u8>, builds: Vec<BuildPlan>) -> Command {
    let head = builds.last().map(|plan| plan.commit.clone()).or(expected.map(commit));
    Command::ObserveBuilds(ObserveBuilds {
        repo: REPO,
        branch: MAIN.to_owned(),
        expected_head: expected.map(commit),
        new_head: head.expect("a head"),
        builds,
        skipped: Vec::new(),
        by: None,
        at: OBSERVED_AT,
    })
}

fn with_repo() -> State {
    let mut state = State::default();
    apply_ok(&mut state, add_repo(URL));
    state
}

fn statuses(state: &State, jobs: &[u64]) -> Vec<JobStatus> {
    jobs.iter().map(|&id| state.job(JobId(id)).expect("job exists").status).collect()
}

fn build_status(state: &State, build: u64) -> BuildStatus {
    state.build(BuildId(build)).expect("build exists").status
}

fn no_labels() -> BTreeSet<String> {
    BTreeSet::new()
}

fn artifact(name: &str, byte: char) -> Artifact {
    Artifact {
        name: name.to_owned(),
        sha256: byte.to_string().repeat(64),
        size: 10,
        holders: vec![RUNNER, OTHER_RUNNER],
    }
}

#[test]
fn a_plan_is_queued_as_a_build_whose_first_steps_are_queued_and_the_rest_wait() {
    let mut state = with_repo();
    let reply = apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    let jobs: Vec<JobId> = (1..=4).map(JobId).collect();
    assert_eq!(reply, Reply::BuildsObserved { builds: vec![BuildId(1)], jobs: jobs.clone() });
    use JobStatus::{Queued, Waiting};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Queued, Waiting, Waiting, Waiting]);
    let build = state.build(BuildId(1)).expect("build 1");
    assert_eq!(build.jobs, jobs);
    assert_eq!((build.status, build.trigger), (BuildStatus::Queued, Trigger::Push));
    assert_eq!((build.subject.as_str(), build.commit.clone()), ("commit 1", commit(1)));
    let names: Vec<String> =
        jobs.iter().map(|&id| state.step_of(id).expect("a step").name()).collect();
    assert_eq!(names, ["build", "test (python=3.11)", "test (python=3.12)", "deploy"]);
    assert_eq!(state.needs_of(JobId(4)), [JobId(2), JobId(3)]);
    assert_eq!(state.cursor(REPO, MAIN).map(|c| c.head.clone()), Some(commit(1)));
    // Only the first step may be claimed; waiting jobs count against the queue limit.
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), Some(JobId(1)));
    assert_eq!(state.open_jobs(REPO), 4);
}

#[test]
fn a_passed_step_queues_the_jobs_that_need_only_it() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    run_to_end(&mut state, 1, Verdict::Passed);
    use JobStatus::{Passed, Queued, Running, Waiting};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Passed, Queued, Queued, Waiting]);
    assert_eq!(build_status(&state, 1), BuildStatus::Running);
    run_to_end(&mut state, 2, Verdict::Passed);
    assert_eq!(statuses(&state, &[4]), [Waiting], "deploy still waits for the other cell");
    apply_ok(&mut state, assign(3, RUNNER, 1));
    assert_eq!(statuses(&state, &[3, 4]), [Running, Waiting]);
    apply_ok(&mut state, finish(3, 1, Verdict::Passed));
    assert_eq!(statuses(&state, &[4]), [Queued]);
    run_to_end(&mut state, 4, Verdict::Passed);
    let build = state.build(BuildId(1)).expect("build 1");
    assert_eq!((build.status, build.finished_at), (BuildStatus::Passed, Some(ENDED_AT)));
}

#[test]
fn a_failed_step_skips_every_job_after_it_and_fails_the_build() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    run_to_end(&mut state, 1, Verdict::Failed);
    use JobStatus::{Failed, Skipped};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Failed, Skipped, Skipped, Skipped]);
    let message = |id| state.job(JobId(id)).and_then(|j| j.result.clone()).and_then(|r| r.message);
    assert_eq!(message(2).as_deref(), Some("skipped: build failed"));
    assert_eq!(message(4).as_deref(), Some("skipped: test (python=3.11) skipped"));
    assert_eq!(build_status(&state, 1), BuildStatus::Failed);
    assert_eq!(state.open_jobs(REPO), 0);
    assert_eq!(state.queue_counts().finished, 4);
}

#[test]
fn a_cell_that_fails_skips_its_dependants_while_the_other_cell_runs_on() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    run_to_end(&mut state, 1, Verdict::Passed);
    apply_ok(&mut state, assign(3, OTHER_RUNNER, 1));
    run_to_end(&mut state, 2, Verdict::Failed);
    use JobStatus::{Failed, Running, Skipped};
    assert_eq!(statuses(&state, &[2, 3, 4]), [Failed, Running, Skipped]);
    assert_eq!(build_status(&state, 1), BuildStatus::Running);
    apply_ok(&mut state, finish(3, 1, Verdict::Passed));
    assert_eq!(build_status(&state, 1), BuildStatus::Failed);
}

#[test]
fn a_lost_runner_after_the_last_attempt_errors_the_build() {
    let mut state = with_repo();
    apply_ok(&mut state, set_limits(|limits| limits.max_attempts = 1));
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    apply_ok(&mut state, requeue(1, 1));
    use JobStatus::{Error, Skipped};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Error, Skipped, Skipped, Skipped]);
    assert_eq!(build_status(&state, 1), BuildStatus::Error);
}

#[test]
fn cancelling_a_job_skips_its_dependants_and_cancels_the_build() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, cancel(1));
    use JobStatus::{Cancelled, Skipped};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Cancelled, Skipped, Skipped, Skipped]);
    assert_eq!(build_status(&state, 1), BuildStatus::Cancelled);
}

#[test]
fn cancel_build_ends_every_open_job_and_a_final_build_changes_nothing() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    run_to_end(&mut state, 1, Verdict::Passed);
    apply_ok(&mut state, assign(2, RUNNER, 1));
    let command =
        Command::CancelBuild { build: BuildId(1), reason: "by user".to_owned(), at: ENDED_AT };
    let reply = apply_ok(&mut state, command.clone());
    let ended = vec![JobId(2), JobId(3), JobId(4)];
    assert_eq!(reply, Reply::BuildCancelled { build: BuildId(1), jobs: ended });
    use JobStatus::{Cancelled, Passed};
    assert_eq!(statuses(&state, &[1, 2, 3, 4]), [Passed, Cancelled, Cancelled, Cancelled]);
    let build = state.build(BuildId(1)).expect("build 1");
    assert_eq!(
        (build.status, build.cancelled.as_deref()),
        (BuildStatus::Cancelled, Some("by user"))
    );
    let attempt = state.job(JobId(2)).and_then(|job| job.attempts.last().cloned());
    assert_eq!(attempt.and_then(|a| a.note).as_deref(), Some("cancelled: by user"));
    let before = state.clone();
    assert_eq!(state.apply(&command), Reply::BuildCancelled { build: BuildId(1), jobs: vec![] });
    assert_eq!(state, before);
    let unknown = Command::CancelBuild { build: BuildId(9), reason: String::new(), at: ENDED_AT };
    assert_refused(&mut state, unknown, Refusal::UnknownBuild { build: BuildId(9) });
}

#[test]
fn a_newer_commit_supersedes_the_open_builds_of_its_branch_when_asked() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    // Without the setting both builds stay.
    apply_ok(&mut state, observe_builds(Some(1), vec![pipeline(2)]));
    assert_eq!(build_status(&state, 1), BuildStatus::Running);
    let superseding = BuildPlan { cancel_superseded: true, ..pipeline(3) };
    let older = BuildPlan { cancel_superseded: true, ..pipeline(4) };
    let reply = apply_ok(&mut state, observe_builds(Some(2), vec![older, superseding]));
    let Reply::BuildsObserved { builds, .. } = reply else { panic!("{reply:?}") };
    assert_eq!(builds, [BuildId(3), BuildId(4)]);
    for old in 1..=3 {
        let build = state.build(BuildId(old)).expect("build");
        assert_eq!(build.status, BuildStatus::Cancelled, "build {old}");
        assert_eq!(build.cancelled.as_deref(), Some("superseded by 030303030303"));
    }
    assert_eq!(build_status(&state, 4), BuildStatus::Queued);
    assert_eq!(state.running_jobs().len(), 0, "job 1 was stopped");
}

#[test]
fn superseding_leaves_other_branches_and_repositories_alone() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    let mut other_branch = match observe_builds(None, vec![pipeline(2)]) {
        Command::ObserveBuilds(observe) => observe,
        _ => unreachable!(),
    };
    other_branch.branch = "dev".to_owned();
    other_branch.builds[0].cancel_superseded = true;
    apply_ok(&mut state, Command::ObserveBuilds(other_branch));
    assert_eq!(build_status(&state, 1), BuildStatus::Queued);
}

#[test]
fn a_plan_out_of_bounds_becomes_a_build_of_one_job_in_error() {
    let mut state = with_repo();
    let too_many = (0..=MAX_JOBS_PER_BUILD).map(|n| job(&format!("s{n}"), &[])).collect();
    let cases = [
        (plan(1, too_many), "65 jobs, at most 64"),
        (plan(2, vec![job("a", &[0])]), "job 0: needs job 0, which does not come before it"),
        (plan(3, vec![job("a", &[]), job("a", &[])]), "job 1: a is planned twice"),
        (plan(4, vec![]), "a build needs at least one job"),
    ];
    for (n, (bad, problem)) in cases.into_iter().enumerate() {
        let expected_head = (n > 0).then_some(n as u8);
        let reply = apply_ok(&mut state, observe_builds(expected_head, vec![bad]));
        let Reply::BuildsObserved { jobs, .. } = reply else { panic!("{reply:?}") };
        assert_eq!(jobs.len(), 1);
        let job = state.job(jobs[0]).expect("the job");
        assert_eq!(job.status, JobStatus::Error);
        let message = job.result.as_ref().and_then(|r| r.message.clone()).expect("a message");
        assert_eq!(message, format!("not run: its build plan is refused: {problem}"));
        assert_eq!(state.step_of(jobs[0]).map(|s| s.name()).as_deref(), Some("test"));
        assert_eq!(build_status(&state, n as u64 + 1), BuildStatus::Error);
    }
}

#[test]
fn an_observation_of_builds_is_refused_like_an_observation() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    assert_refused(
        &mut state,
        observe_builds(Some(9), vec![pipeline(2)]),
        Refusal::CursorMoved { expected: Some(commit(9)), actual: Some(commit(1)) },
    );
    let jobs = (0..=MAX_JOBS_PER_OBSERVE_FOR_TEST / 4).map(|n| pipeline(n as u8 + 10)).collect();
    let reason = format!(
        "{} jobs in one observation, at most {MAX_JOBS_PER_OBSERVE_FOR_TEST}",
        (MAX_JOBS_PER_OBSERVE_FOR_TEST / 4 + 1) * 4
    );
    assert_refused(&mut state, observe_builds(Some(1), jobs), invalid(&reason));
}

const MAX_JOBS_PER_OBSERVE_FOR_TEST: usize = crate::command::MAX_JOBS_PER_OBSERVE;

#[test]
fn a_rerun_is_a_new_build_with_its_trigger_and_who_asked() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    let rerun = Command::RerunBuild {
        repo: REPO,
        branch: MAIN.to_owned(),
        plan: pipeline(1),
        by: Some("api 10.0.0.7\n".to_owned()),
        at: Timestamp(9_000),
    };
    let reply = apply_ok(&mut state, rerun);
    let jobs = (5..=8).map(JobId).collect();
    assert_eq!(reply, Reply::BuildQueued { build: BuildId(2), jobs });
    let build = state.build(BuildId(2)).expect("build 2");
    assert_eq!((build.trigger, build.by.as_deref()), (Trigger::Rerun, Some("api 10.0.0.7")));
    let bad = Command::RerunBuild {
        repo: REPO,
        branch: MAIN.to_owned(),
        plan: plan(1, vec![]),
        by: None,
        at: Timestamp(9_000),
    };
    assert_refused(&mut state, bad, invalid("a build needs at least one job"));
}

#[test]
fn one_job_of_a_concurrency_group_runs_at_a_time() {
    let mut state = with_repo();
    let deploy =
        |n| plan(n, vec![PlannedJob { concurrency: Some("prod".into()), ..job("deploy", &[]) }]);
    apply_ok(&mut state, observe_builds(None, vec![deploy(1), deploy(2)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), None);
    assert_eq!(state.group_running("prod"), Some(JobId(1)));
    assert_refused(
        &mut state,
        assign(2, OTHER_RUNNER, 1),
        Refusal::GroupBusy { group: "prod".to_owned(), running: JobId(1) },
    );
    apply_ok(&mut state, finish(1, 1, Verdict::Passed));
    assert_eq!(state.next_claimable(&no_labels()).map(|job| job.id), Some(JobId(2)));
    apply_ok(&mut state, assign(2, OTHER_RUNNER, 1));
}

#[test]
fn artifacts_are_recorded_for_the_running_attempt_and_given_to_the_jobs_that_need_them() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    let add =
        |artifacts| Command::AddArtifacts { job: JobId(1), attempt: 1, artifacts, at: ENDED_AT };
    let reply = apply_ok(&mut state, add(vec![artifact("dist/a.whl", 'a'), artifact("b", 'b')]));
    assert_eq!(reply, Reply::ArtifactsAdded { job: JobId(1), count: 2 });
    // The same name again replaces it.
    apply_ok(&mut state, add(vec![artifact("b", 'c')]));
    apply_ok(&mut state, finish(1, 1, Verdict::Passed));
    let inputs: Vec<(JobId, String, String)> = state
        .inputs_of(JobId(2))
        .into_iter()
        .map(|(job, a)| (job, a.name.clone(), a.sha256[..1].to_owned()))
        .collect();
    let expected =
        [(JobId(1), "dist/a.whl".into(), "a".into()), (JobId(1), "b".into(), "c".into())];
    assert_eq!(inputs, expected);
    let through_the_tests: Vec<JobId> = state.inputs_of(JobId(4)).iter().map(|(j, _)| *j).collect();
    assert_eq!(through_the_tests, [JobId(1), JobId(1)], "deploy needs the build through the tests");
    assert!(state.inputs_of(JobId(1)).is_empty());
    assert_refused(
        &mut state,
        add(vec![artifact("c", 'c')]),
        Refusal::AlreadyFinal { job: JobId(1), status: JobStatus::Passed },
    );
}

#[test]
fn artifacts_with_bad_names_hashes_or_holders_are_refused() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    let add = |artifact| Command::AddArtifacts {
        job: JobId(1),
        attempt: 1,
        artifacts: vec![artifact],
        at: ENDED_AT,
    };
    let cases = [
        (
            artifact("../x", 'a'),
            "artifact name \"../x\" is not a relative path inside the workspace",
        ),
        (
            artifact("/etc/x", 'a'),
            "artifact name \"/etc/x\" is not a relative path inside the workspace",
        ),
        (
            artifact("a//b", 'a'),
            "artifact name \"a//b\" is not a relative path inside the workspace",
        ),
        (artifact("x", 'G'), "artifact \"x\": sha256 is not 64 lowercase hex digits"),
        (Artifact { holders: vec![], ..artifact("x", 'a') }, "artifact \"x\": 1 to 4 holders"),
        (
            Artifact { holders: vec![RUNNER, RUNNER], ..artifact("x", 'a') },
            "artifact \"x\": a holder is named twice",
        ),
    ];
    for (bad, reason) in cases {
        assert_refused(&mut state, add(bad), invalid(reason));
    }
    // A job of no build has no artifacts.
    let mut plain = repo_with_jobs(1);
    apply_ok(&mut plain, assign(1, RUNNER, 1));
    assert_refused(&mut plain, add(artifact("x", 'a')), invalid("job 1 belongs to no build"));
}

#[test]
fn a_requeued_job_forgets_its_artifacts() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, assign(1, RUNNER, 1));
    let artifacts = vec![artifact("a", 'a')];
    apply_ok(
        &mut state,
        Command::AddArtifacts { job: JobId(1), attempt: 1, artifacts, at: ENDED_AT },
    );
    apply_ok(&mut state, requeue(1, 1));
    assert!(state.step_of(JobId(1)).expect("step").artifacts.is_empty());
}

#[test]
fn the_artifacts_of_the_oldest_final_jobs_make_room_for_new_ones() {
    let mut state = with_repo();
    let per_job = crate::state::MAX_ARTIFACTS_PER_JOB;
    let jobs = MAX_ARTIFACTS / per_job + 1;
    let builds = (1..=jobs).map(|n| plan(n as u8, vec![job("build", &[])])).collect();
    apply_ok(&mut state, observe_builds(None, builds));
    for id in 1..=jobs as u64 {
        apply_ok(&mut state, assign(id, RUNNER, 1));
        let artifacts = (0..per_job).map(|n| artifact(&format!("a{n}"), 'a')).collect();
        let add = Command::AddArtifacts { job: JobId(id), attempt: 1, artifacts, at: ENDED_AT };
        apply_ok(&mut state, add);
        apply_ok(&mut state, finish(id, 1, Verdict::Passed));
    }
    let kept = |id: u64| state.step_of(JobId(id)).map_or(0, |step| step.artifacts.len());
    assert_eq!(kept(1), 0, "the oldest job's artifacts made room");
    assert_eq!(kept(2), per_job);
    assert_eq!(kept(jobs as u64), per_job);
    let total: usize = (1..=jobs as u64).map(kept).sum();
    assert!(total <= MAX_ARTIFACTS, "{total}");
}

#[test]
fn retention_forgets_a_build_with_its_last_job() {
    let mut state = with_repo();
    apply_ok(
        &mut state,
        set_limits(|limits| {
            limits.retained_jobs = 2;
            limits.retained_outputs = 2;
        }),
    );
    apply_ok(&mut state, observe_builds(None, vec![plan(1, vec![job("a", &[]), job("b", &[0])])]));
    run_to_end(&mut state, 1, Verdict::Passed);
    run_to_end(&mut state, 2, Verdict::Passed);
    apply_ok(&mut state, observe_builds(Some(1), vec![plan(2, vec![job("a", &[])])]));
    run_to_end(&mut state, 3, Verdict::Passed);
    // Job 1 is forgotten; its build stays for job 2, with the status it had.
    assert!(state.job(JobId(1)).is_none());
    assert_eq!(build_status(&state, 1), BuildStatus::Passed);
    apply_ok(&mut state, observe_builds(Some(2), vec![plan(3, vec![job("a", &[])])]));
    run_to_end(&mut state, 4, Verdict::Passed);
    assert!(state.build(BuildId(1)).is_none(), "both its jobs are forgotten");
    assert!(state.step_of(JobId(2)).is_none());
    let listed: Vec<BuildId> =
        state.builds(&BuildFilter::default()).iter().map(|build| build.id).collect();
    assert_eq!(listed, [BuildId(3), BuildId(2)]);
}

#[test]
fn builds_are_listed_newest_first_with_filters() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1), pipeline(2)]));
    run_to_end(&mut state, 1, Verdict::Failed);
    let ids = |filter: BuildFilter| -> Vec<u64> {
        state.builds(&filter).iter().map(|build| build.id.0).collect()
    };
    assert_eq!(ids(BuildFilter::default()), [2, 1]);
    assert_eq!(ids(BuildFilter { status: Some(BuildStatus::Failed), ..Default::default() }), [1]);
    assert_eq!(ids(BuildFilter { commit: Some("0202".into()), ..Default::default() }), [2]);
    assert_eq!(ids(BuildFilter { before: Some(BuildId(2)), ..Default::default() }), [1]);
    assert_eq!(ids(BuildFilter { limit: Some(1), ..Default::default() }), [2]);
    assert_eq!(
        ids(BuildFilter { branch: Some("dev".into()), ..Default::default() }),
        [] as [u64; 0]
    );
}

#[test]
fn removing_the_repository_cancels_its_builds() {
    let mut state = with_repo();
    apply_ok(&mut state, observe_builds(None, vec![pipeline(1)]));
    apply_ok(&mut state, Command::RemoveRepo { repo: REPO, at: ENDED_AT });
    assert_eq!(build_status(&state, 1), BuildStatus::Cancelled);
    assert_eq!(state.open_jobs(REPO), 0);
}

#[test]
fn the_build_status_follows_from_its_jobs() {
    use BuildStatus as B;
    use JobStatus as J;
    let cases: [(&[JobStatus], BuildStatus); 8] = [
        (&[J::Queued, J::Waiting], B::Queued),
        (&[J::Passed, J::Waiting], B::Running),
        (&[J::Running, J::Queued], B::Running),
        (&[J::Passed, J::Passed], B::Passed),
        (&[J::Failed, J::Skipped], B::Failed),
        (&[J::Error, J::TimedOut], B::Failed),
        (&[J::Error, J::Cancelled], B::Error),
        (&[J::Passed, J::Cancelled, J::Skipped], B::Cancelled),
    ];
    for (jobs, expected) in cases {
        assert_eq!(BuildStatus::of(jobs.iter().copied()), expected, "{jobs:?}");
    }
}
