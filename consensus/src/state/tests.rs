//! Table-style tests of the rules (`State::apply`) and the queries, one group per command.
//!
//! Each test builds a small state through commands only, applies one command and asserts
//! the exact [`Reply`] and the jobs, cursors and queues that result. A refusal is always
//! checked to leave the state equal to what it was.

mod batch_test;
mod capacity_test;
mod forge_test;
mod job_test;
mod limits_test;
mod pipeline_test;
mod query_test;
mod repo_test;
mod secret_test;

use super::{Limits, State};
use crate::command::{Command, Observe, ObservedCommit, Outcome, Refusal, Reply, Verdict};
use crate::types::{CommitId, JobId, NodeId, RepoId, Timestamp};

const URL: &str = "file:///srv/app.git";
const OTHER_URL: &str = "https://git.example.org/lib.git";
const MAIN: &str = "main";
const RUNNER: NodeId = NodeId(7);
const OTHER_RUNNER: NodeId = NodeId(8);
/// The repository [`repo_with_jobs`] adds.
const REPO: RepoId = RepoId(1);

/// When the fixtures observe, assign and end jobs; tests assert durations from these.
const OBSERVED_AT: Timestamp = Timestamp(1_000);
const ASSIGNED_AT: Timestamp = Timestamp(2_000);
const ENDED_AT: Timestamp = Timestamp(5_000);

/// A distinct, well-formed commit id per `n`: `n` as two hex digits, repeated.
fn commit(n: u8) -> CommitId {
    CommitId::try_new(&format!("{n:02x}").repeat(20)).expect("40 hex digits are a commit id")
}

fn commits(numbers: impl IntoIterator<Item = u8>) -> Vec<CommitId> {
    numbers.into_iter().map(commit).collect()
}

fn unlabelled(numbers: impl IntoIterator<Item = u8>) -> Vec<ObservedCommit> {
    numbers.into_iter().map(|n| ObservedCommit { commit: commit(n), labels: Vec::new() }).collect()
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn add_repo(url: &str) -> Command {
    Command::AddRepo { url: url.to_owned(), at: Timestamp(1) }
}

/// An observation of `branch` moving from `expected` to the last of `new` (or staying at
/// `expected` when `new` is empty), queueing one unlabelled job per commit.
fn observation(repo: RepoId, branch: &str, expected: Option<u8>, new: &[u8]) -> Observe {
    let head = new.last().copied().or(expected).expect("an observation needs a head");
    Observe {
        repo,
        branch: branch.to_owned(),
        expected_head: expected.map(commit),
        new_head: commit(head),
        commits: unlabelled(new.iter().copied()),
        skipped: Vec::new(),
        at: OBSERVED_AT,
    }
}

fn observe(repo: RepoId, branch: &str, expected: Option<u8>, new: &[u8]) -> Command {
    Command::Observe(observation(repo, branch, expected, new))
}

fn assign(job: u64, runner: NodeId, attempt: u32) -> Command {
    Command::Assign { job: JobId(job), runner, attempt, at: ASSIGNED_AT }
}

fn requeue(job: u64, attempt: u32) -> Command {
    Command::Requeue { job: JobId(job), attempt, reason: "runner died".to_owned(), at: ENDED_AT }
}

fn outcome(verdict: Verdict, output: &str) -> Outcome {
    Outcome {
        verdict,
        exit_code: Some(if verdict == Verdict::Passed { 0 } else { 1 }),
        duration_ms: 1_234,
        output_tail: output.to_owned(),
        summary: None,
        message: None,
    }
}

fn finish(job: u64, attempt: u32, verdict: Verdict) -> Command {
    finish_with(job, attempt, outcome(verdict, "ok\n"))
}

fn finish_with(job: u64, attempt: u32, outcome: Outcome) -> Command {
    Command::Finish { job: JobId(job), attempt, outcome, at: ENDED_AT }
}

fn cancel(job: u64) -> Command {
    Command::Cancel { job: JobId(job), reason: "by user".to_owned(), at: ENDED_AT }
}

fn set_limits(change: impl FnOnce(&mut Limits)) -> Command {
    let mut limits = Limits::default();
    change(&mut limits);
    Command::SetLimits { limits }
}

fn rerun(repo: RepoId, n: u8, job_labels: &[&str]) -> Command {
    Command::Rerun {
        repo,
        branch: MAIN.to_owned(),
        commit: commit(n),
        labels: labels(job_labels),
        at: Timestamp(9_000),
    }
}

/// Applies a command that must apply, and returns its reply.
fn apply_ok(state: &mut State, command: Command) -> Reply {
    let reply = state.apply(&command);
    assert!(reply.refusal().is_none(), "{command:?} was refused: {reply:?}");
    reply
}

/// Applies a command that must be refused with `expected`, and checks it changed nothing.
fn assert_refused(state: &mut State, command: Command, expected: Refusal) {
    let before = state.clone();
    let reply = state.apply(&command);
    assert_eq!(reply, Reply::Refused(expected), "reply to {command:?}");
    assert_eq!(*state, before, "the refused {command:?} changed the state");
}

fn invalid(reason: &str) -> Refusal {
    Refusal::Invalid { reason: reason.to_owned() }
}

/// One repository ([`REPO`] at [`URL`]) whose `main` branch was observed with
/// `commit(1)` … `commit(count)`, queued as jobs 1 … `count`.
fn repo_with_jobs(count: u8) -> State {
    let mut state = State::default();
    apply_ok(&mut state, add_repo(URL));
    let new: Vec<u8> = (1..=count).collect();
    if !new.is_empty() {
        apply_ok(&mut state, observe(REPO, MAIN, None, &new));
    }
    state
}

/// Runs job `job` on `RUNNER` at attempt 1 and ends it with `verdict`.
fn run_to_end(state: &mut State, job: u64, verdict: Verdict) {
    apply_ok(state, assign(job, RUNNER, 1));
    apply_ok(state, finish(job, 1, verdict));
}
