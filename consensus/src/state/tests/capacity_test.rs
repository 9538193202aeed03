//! What bounds the state: the queue per repository, the repositories and the branches
//! with a cursor. Each refusal is deterministic and changes nothing; a refused
//! observation leaves its cursor, so that its commits are offered again.

use super::*;
use crate::state::{JobStatus, MAX_COMMITS_PER_OBSERVE};

/// One repository with `queue` as its queue limit and `open` jobs queued on `main`.
fn repo_with_queue(queue: u32, open: u8) -> State {
    let mut state = State::default();
    apply_ok(&mut state, set_limits(|limits| limits.max_queue_per_repo = queue));
    apply_ok(&mut state, add_repo(URL));
    if open > 0 {
        apply_ok(&mut state, observe(REPO, MAIN, None, &(1..=open).collect::<Vec<_>>()));
    }
    state
}

fn queue_full(limit: u32) -> Refusal {
    Refusal::QueueFull { repo: REPO, limit }
}

#[test]
fn a_rerun_is_refused_while_the_repository_has_its_limit_of_open_jobs() {
    let mut state = repo_with_queue(3, 3);
    assert_eq!(state.open_jobs(REPO), 3);
    assert_refused(&mut state, rerun(REPO, 1, &[]), queue_full(3));

    // Running jobs count too; a final one frees a place.
    apply_ok(&mut state, assign(1, RUNNER, 1));
    assert_refused(&mut state, rerun(REPO, 1, &[]), queue_full(3));
    apply_ok(&mut state, finish(1, 1, Verdict::Passed));
    assert_eq!(state.open_jobs(REPO), 2);
    assert_eq!(state.apply(&rerun(REPO, 1, &[])), Reply::RerunQueued { job: JobId(4) });
    assert_refused(&mut state, rerun(REPO, 1, &[]), queue_full(3));
}

#[test]
fn an_observation_is_refused_while_the_queue_is_full_and_its_cursor_stays() {
    let mut state = repo_with_queue(2, 2);
    assert_refused(&mut state, observe(REPO, MAIN, Some(2), &[3, 4]), queue_full(2));
    assert_eq!(state.cursor(REPO, MAIN).map(|c| c.head.clone()), Some(commit(2)));
    // A new branch waits the same way.
    assert_refused(&mut state, observe(REPO, "dev", None, &[5]), queue_full(2));

    // An observation that queues nothing (a branch moved back) still moves its cursor.
    apply_ok(&mut state, observe(REPO, MAIN, Some(2), &[]));

    // Once a job ends the same commits are queued, all of them: one observation is never
    // split, so the queue may pass its limit by what the last one brought.
    apply_ok(&mut state, cancel(1));
    let reply = state.apply(&observe(REPO, MAIN, Some(2), &[3, 4]));
    assert_eq!(reply, Reply::Observed { jobs: vec![JobId(3), JobId(4)] });
    assert_eq!(state.open_jobs(REPO), 3);
    assert_eq!(state.cursor(REPO, MAIN).map(|c| c.head.clone()), Some(commit(4)));
}

#[test]
fn the_queue_of_one_repository_does_not_hold_up_another() {
    let mut state = repo_with_queue(2, 2);
    apply_ok(&mut state, add_repo(OTHER_URL));
    let other = RepoId(2);
    assert_refused(&mut state, rerun(REPO, 1, &[]), queue_full(2));
    apply_ok(&mut state, observe(other, MAIN, None, &[7]));
    assert_eq!(state.apply(&rerun(other, 7, &[])), Reply::RerunQueued { job: JobId(4) });
    assert_eq!((state.open_jobs(REPO), state.open_jobs(other)), (2, 2));
}

#[test]
fn open_jobs_follow_every_way_a_job_ends_or_goes() {
    let mut state = repo_with_queue(10, 5);
    apply_ok(&mut state, assign(1, RUNNER, 1));
    apply_ok(&mut state, requeue(1, 1));
    assert_eq!(state.open_jobs(REPO), 5, "a requeued job is still open");
    apply_ok(&mut state, assign(2, RUNNER, 1));
    apply_ok(&mut state, finish(2, 1, Verdict::Failed));
    apply_ok(&mut state, cancel(3));
    assert_eq!(state.open_jobs(REPO), 3);
    apply_ok(&mut state, Command::RemoveRepo { repo: REPO, at: ENDED_AT });
    assert_eq!(state.open_jobs(REPO), 0);
    // The counts are derived data: a state decoded from its encoding has the same.
    let decoded: State =
        crate::codec::decode_stored(&crate::codec::encode(&state).expect("encodes"))
            .expect("decodes");
    assert_eq!(decoded, state);
}

/// The most a repository's queue can hold: its limit less one, plus one observation.
#[test]
fn one_observation_passes_the_limit_by_at_most_its_own_commits() {
    let mut state = repo_with_queue(2, 1);
    let mut observe = observation(REPO, MAIN, Some(1), &[2]);
    observe.commits = (0..MAX_COMMITS_PER_OBSERVE)
        .map(|n| ObservedCommit { commit: commit((n % 250) as u8), labels: Vec::new() })
        .collect();
    apply_ok(&mut state, Command::Observe(observe));
    assert_eq!(state.open_jobs(REPO) as usize, 2 - 1 + MAX_COMMITS_PER_OBSERVE);
    assert_refused(&mut state, rerun(REPO, 1, &[]), queue_full(2));
}

#[test]
fn repositories_beyond_the_limit_are_refused() {
    let mut state = State::default();
    apply_ok(&mut state, set_limits(|limits| limits.max_repos = 1));
    apply_ok(&mut state, add_repo(URL));
    let refusal =
        Refusal::LimitReached { what: "no more repositories can be watched".to_owned(), limit: 1 };
    assert_refused(&mut state, add_repo(OTHER_URL), refusal);
    apply_ok(&mut state, Command::RemoveRepo { repo: REPO, at: ENDED_AT });
    assert_eq!(state.apply(&add_repo(OTHER_URL)), Reply::RepoAdded { repo: RepoId(2) });
}

#[test]
fn branches_beyond_the_limit_are_refused_and_known_ones_still_move() {
    let mut state = State::default();
    apply_ok(&mut state, set_limits(|limits| limits.max_branches_per_repo = 2));
    apply_ok(&mut state, add_repo(URL));
    apply_ok(&mut state, observe(REPO, MAIN, None, &[1]));
    apply_ok(&mut state, observe(REPO, "dev", None, &[2]));
    let refusal = Refusal::LimitReached {
        what: "no more branches of repository 1 can be observed".to_owned(),
        limit: 2,
    };
    assert_refused(&mut state, observe(REPO, "feature", None, &[3]), refusal);
    apply_ok(&mut state, observe(REPO, MAIN, Some(1), &[4]));
    assert_eq!(state.job(JobId(3)).map(|job| job.status), Some(JobStatus::Queued));
}

#[test]
fn refusals_for_capacity_say_what_to_do() {
    assert_eq!(
        queue_full(500).to_string(),
        "repository 1 already has 500 jobs queued or running, the most it may have; try again once some have finished"
    );
}
