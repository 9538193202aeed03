//! Properties of builds over random interleavings of observations, reruns, `Assign`,
//! `Finish`, `Requeue`, `Cancel` and `CancelBuild`.
//!
//! Each observation queues builds of a random plan (random dependencies, matrix cells and
//! concurrency groups, some superseding); the other commands are bound to a job or build
//! that exists, so most of them apply. After every command: a job is queued or running
//! only when every job it needs passed, it is skipped only when one of them ended
//! otherwise, a waiting job still has a need that is not final, at most one job of a
//! concurrency group runs, a final job never changes again, and every build's stored
//! status is what its jobs give. At the end every open job is run to its end: then every
//! build is final, exactly once, and the state survives an encode and decode unchanged.

use std::collections::BTreeMap;

use eventide_consensus::codec;
use eventide_consensus::command::{BuildPlan, ObserveBuilds, PlannedJob};
use eventide_consensus::state::{BuildFilter, BuildStatus};
use eventide_consensus::testing::commit_for_test;
use eventide_consensus::{
    BuildId, Command, JobFilter, JobId, JobStatus, NodeId, Outcome, RepoId, State, Timestamp,
    Verdict,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const BRANCHES: [&str; 2] = ["main", "dev"];
const GROUPS: [&str; 2] = ["deploy", "db"];

/// A job of a random plan: its dependencies as a bit mask over the jobs before it.
#[derive(Clone, Debug)]
struct JobShape {
    needs_mask: u8,
    cell: Option<u8>,
    group: Option<usize>,
}

#[derive(Clone, Debug)]
enum Step {
    Observe { branch: usize, builds: Vec<Vec<JobShape>>, supersede: bool },
    Rerun { shape: Vec<JobShape> },
    Assign { pick: usize, runner: u64 },
    Finish { pick: usize, verdict: u8 },
    Requeue { pick: usize },
    Cancel { pick: usize },
    CancelBuild { pick: usize },
}

fn job_shape() -> impl Strategy<Value = JobShape> {
    (any::<u8>(), proptest::option::of(0u8..3), proptest::option::weighted(0.2, 0..GROUPS.len()))
        .prop_map(|(needs_mask, cell, group)| JobShape { needs_mask, cell, group })
}

fn plan_shape() -> impl Strategy<Value = Vec<JobShape>> {
    proptest::collection::vec(job_shape(), 1..6)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..BRANCHES.len(), proptest::collection::vec(plan_shape(), 1..3), proptest::bool::weighted(0.3))
            .prop_map(|(branch, builds, supersede)| Step::Observe { branch, builds, supersede }),
        1 => plan_shape().prop_map(|shape| Step::Rerun { shape }),
        6 => (any::<usize>(), 1..4u64).prop_map(|(pick, runner)| Step::Assign { pick, runner }),
        5 => (any::<usize>(), 0..4u8).prop_map(|(pick, verdict)| Step::Finish { pick, verdict }),
        1 => any::<usize>().prop_map(|pick| Step::Requeue { pick }),
        1 => any::<usize>().prop_map(|pick| Step::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Step::CancelBuild { pick }),
    ]
}

/// The plan `shape` describes for `commit`: job `i` needs the jobs before it whose bit is
/// set, and is a matrix cell when it has one (its step named after its index).
fn plan(commit: u64, shape: &[JobShape], supersede: bool) -> BuildPlan {
    let jobs = shape
        .iter()
        .enumerate()
        .map(|(index, job)| PlannedJob {
            step: format!("s{index}"),
            matrix: job.cell.map(|cell| vec![("n".into(), cell.to_string())]).unwrap_or_default(),
            needs: (0..index as u16).filter(|&n| n < 8 && job.needs_mask & (1 << n) != 0).collect(),
            labels: Vec::new(),
            concurrency: job.group.map(|group| GROUPS[group].to_owned()),
        })
        .collect();
    BuildPlan {
        commit: commit_for_test(commit),
        subject: format!("commit {commit}"),
        author: "A <a@example.org>".into(),
        jobs,
        cancel_superseded: supersede,
    }
}

fn jobs_in(state: &State, status: JobStatus) -> Vec<JobId> {
    let filter = JobFilter { status: Some(status), ..JobFilter::default() };
    let mut ids: Vec<JobId> = state.jobs(&filter).iter().map(|job| job.id).collect();
    ids.sort();
    ids
}

fn pick<T: Copy>(items: &[T], n: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[n % items.len()])
}

/// Binds a step to `state`; `None` when there is nothing to bind it to.
fn bind(state: &State, step: &Step, next_commit: &mut u64, at: Timestamp) -> Option<Command> {
    let repo = RepoId(1);
    Some(match step {
        Step::Observe { branch, builds, supersede } => {
            let branch = BRANCHES[*branch];
            let plans: Vec<BuildPlan> = builds
                .iter()
                .map(|shape| {
                    *next_commit += 1;
                    plan(*next_commit, shape, *supersede)
                })
                .collect();
            Command::ObserveBuilds(ObserveBuilds {
                repo,
                branch: branch.to_owned(),
                expected_head: state.cursor(repo, branch).map(|cursor| cursor.head.clone()),
                new_head: plans.last()?.commit.clone(),
                builds: plans,
                skipped: Vec::new(),
                by: None,
                at,
            })
        }
        Step::Rerun { shape } => Command::RerunBuild {
            repo,
            branch: "main".into(),
            plan: plan(1, shape, false),
            by: None,
            at,
        },
        Step::Assign { pick: n, runner } => {
            let job = pick(&jobs_in(state, JobStatus::Queued), *n)?;
            Command::Assign { job, runner: NodeId(*runner), attempt: state.job(job)?.attempt, at }
        }
        Step::Finish { pick: n, verdict } => {
            let job = pick(&jobs_in(state, JobStatus::Running), *n)?;
            let verdict = [Verdict::Passed, Verdict::Passed, Verdict::Failed, Verdict::Error]
                [*verdict as usize];
            Command::Finish { job, attempt: state.job(job)?.attempt, outcome: outcome(verdict), at }
        }
        Step::Requeue { pick: n } => {
            let job = pick(&jobs_in(state, JobStatus::Running), *n)?;
            let attempt = state.job(job)?.attempt;
            Command::Requeue { job, attempt, reason: "lost".into(), at }
        }
        Step::Cancel { pick: n } => {
            let mut open = jobs_in(state, JobStatus::Waiting);
            open.extend(jobs_in(state, JobStatus::Queued));
            open.extend(jobs_in(state, JobStatus::Running));
            Command::Cancel { job: pick(&open, *n)?, reason: "user".into(), at }
        }
        Step::CancelBuild { pick: n } => {
            let builds: Vec<BuildId> =
                state.builds(&BuildFilter::default()).iter().map(|build| build.id).collect();
            Command::CancelBuild { build: pick(&builds, *n)?, reason: "user".into(), at }
        }
    })
}

fn outcome(verdict: Verdict) -> Outcome {
    Outcome {
        verdict,
        exit_code: Some(0),
        duration_ms: 5,
        output_tail: String::new(),
        summary: None,
        message: None,
    }
}

/// Every invariant of the module doc that holds after each command.
fn check(state: &State, finals: &mut BTreeMap<JobId, JobStatus>) -> Result<(), TestCaseError> {
    let mut running_groups = BTreeMap::new();
    for build in state.builds(&BuildFilter::default()) {
        let statuses: Vec<JobStatus> =
            build.jobs.iter().filter_map(|id| state.job(*id)).map(|job| job.status).collect();
        prop_assert_eq!(build.status, BuildStatus::of(statuses), "build {}", build.id);
        for &id in &build.jobs {
            let Some(job) = state.job(id) else { continue };
            let needs: Vec<JobStatus> = state
                .needs_of(id)
                .iter()
                .map(|need| state.job(*need).map_or(JobStatus::Passed, |job| job.status))
                .collect();
            let all_passed = needs.iter().all(|status| *status == JobStatus::Passed);
            match job.status {
                JobStatus::Queued | JobStatus::Running => {
                    prop_assert!(all_passed, "job {id} started with needs {needs:?}")
                }
                JobStatus::Waiting => prop_assert!(
                    needs.iter().any(|status| !status.is_final()),
                    "job {id} waits for nothing: {needs:?}"
                ),
                JobStatus::Skipped => prop_assert!(
                    needs.iter().any(|s| s.is_final() && *s != JobStatus::Passed),
                    "job {id} skipped with needs {needs:?}"
                ),
                _ => {}
            }
            if job.status == JobStatus::Running {
                if let Some(group) = state.step_of(id).and_then(|step| step.concurrency.clone()) {
                    let other = running_groups.insert(group.clone(), id);
                    prop_assert!(other.is_none(), "group {group} runs {other:?} and {id}");
                }
            }
            if job.status.is_final() {
                let first = *finals.entry(id).or_insert(job.status);
                prop_assert_eq!(first, job.status, "job {} changed after it was final", id);
            } else {
                prop_assert!(!finals.contains_key(&id), "job {id} was final and is open again");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_build_ends_once_and_its_jobs_follow_their_needs(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut state = State::default();
        state.apply(&Command::AddRepo { url: "file:///srv/a.git".into(), at: Timestamp(1) });
        let mut finals = BTreeMap::new();
        let mut next_commit = 1;
        for (n, step) in steps.iter().enumerate() {
            let at = Timestamp(10 + n as u64);
            if let Some(command) = bind(&state, step, &mut next_commit, at) {
                let mut replica = state.clone();
                let reply = state.apply(&command);
                prop_assert_eq!(replica.apply(&command), reply, "apply is deterministic");
                prop_assert_eq!(&replica, &state);
                check(&state, &mut finals)?;
            }
        }
        // Drain: run every open job to a pass until nothing is open.
        let mut at = 1_000_000;
        loop {
            at += 1;
            let queued = jobs_in(&state, JobStatus::Queued);
            let running = jobs_in(&state, JobStatus::Running);
            if let Some(&job) = running.first() {
                let attempt = state.job(job).map_or(1, |job| job.attempt);
                let outcome = outcome(Verdict::Passed);
                state.apply(&Command::Finish { job, attempt, outcome, at: Timestamp(at) });
            } else if let Some(&job) = queued.first() {
                let attempt = state.job(job).map_or(1, |job| job.attempt);
                let reply = state.apply(&Command::Assign { job, runner: NodeId(1), attempt, at: Timestamp(at) });
                prop_assert!(reply.refusal().is_none(), "{:?}", reply);
            } else {
                break;
            }
            check(&state, &mut finals)?;
        }
        prop_assert!(jobs_in(&state, JobStatus::Waiting).is_empty(), "a job waits for nothing");
        for build in state.builds(&BuildFilter::default()) {
            prop_assert!(build.status.is_final(), "build {} is {:?}", build.id, build.status);
            prop_assert!(build.finished_at.is_some());
        }
        let bytes = codec::encode(&state).expect("encodes");
        let decoded: State = codec::decode_stored(&bytes).expect("decodes");
        prop_assert_eq!(decoded, state);
    }
}
