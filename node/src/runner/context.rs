//! Where a job's fetch credentials and secrets come from. A runner on a Raft member
//! (leader, voter or learner) reads them from its own replica; a runner whose replica is
//! empty (a node that is not a member) asks the leader for them, sealed
//! ([`JOB_CONTEXT_PATH`]). Both decide with the same rules
//! ([`protocol::context`](eventide_node::protocol::context)) and open the values the
//! same way ([`secrets::open`], [`open_credentials`]).
//!
//! ```text
//!  member:  own replica ── credentials_for / grants_for ──┐
//!  other:   leader ── JobContextRequest ── (5 s, retried) ─┴─> sealed ── open ──> job
//!           no answer in time ──> no credentials, every secret withheld, and why
//! ```

use std::future::Future;
use std::time::Duration;

use eventide_node::protocol::context::{
    assigned_job, refused_all, repo_credentials, Credentials, JobContext, JobContextRequest,
    JobContextResponse, JOB_CONTEXT_PATH,
};
use eventide_node::protocol::dispatch::Assignment;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::secrets::{self, JobSecrets};
use super::Runner;
use crate::git::RemoteAuth;
use crate::remote::open_credentials;

/// How long a job that asks for secrets waits for this node's replica to show its
/// assignment (the leader answered the claim once it committed it; a follower applies it
/// a moment later). Past it, the job runs without its secrets and its log says why.
const REPLICA_WAIT: Duration = Duration::from_secs(2);
/// How long a runner that is not a Raft member keeps asking the leader (a leader that
/// changes, a call that fails). Past it, the job runs without what it asked for.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// The pause between two questions to the leader.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The fetch credentials of a job's repository.
pub struct FetchAuth {
    /// `None`: the repository's settings are not known; the job fetches without any.
    pub auth: Option<anyhow::Result<RemoteAuth>>,
    /// Why they are not known, when that is not simply an unknown repository: what a
    /// failed fetch's error adds.
    pub unknown_because: Option<String>,
}

/// The credentials as this replica, or the leader's, has the repository's settings; a
/// repository it does not know (yet) fetches without any.
pub async fn fetch_auth(runner: &Runner, assignment: &Assignment) -> FetchAuth {
    let secret = runner.secret.as_ref();
    let open = |credentials: Option<Credentials>| {
        credentials.map(|credentials| open_credentials(&credentials, secret))
    };
    if is_member(runner) {
        let credentials =
            runner.state_machine.read(|state| repo_credentials(state, &assignment.repo_url));
        return FetchAuth { auth: open(credentials), unknown_because: None };
    }
    match ask_leader(runner, assignment, Vec::new()).await {
        Ok(context) => FetchAuth { auth: open(context.credentials), unknown_because: None },
        Err(reason) => {
            let (job, attempt) = (assignment.job, assignment.attempt);
            warn!(job_id = %job, attempt, error = %reason, "no fetch credentials from the leader; fetching without any");
            let because = format!("the leader could not be asked for its credentials: {reason}");
            FetchAuth { auth: None, unknown_because: Some(because) }
        }
    }
}

/// The secrets the job asks for: on a Raft member once this node's replica shows its
/// assignment (for at most [`REPLICA_WAIT`]), elsewhere as the leader gives them (for at
/// most [`LEADER_WAIT`]).
pub async fn secrets_for(runner: &Runner, assignment: &Assignment, names: &[String]) -> JobSecrets {
    if names.is_empty() {
        return JobSecrets::default();
    }
    let secret = runner.secret.as_ref();
    if is_member(runner) {
        return replica_secrets(runner, assignment, names).await;
    }
    let grants = match ask_leader(runner, assignment, names.to_vec()).await {
        Ok(context) => context.secrets,
        Err(reason) => {
            warn!(job_id = %assignment.job, attempt = assignment.attempt, error = %reason, "the leader did not give the job's secrets; they are withheld");
            refused_all(names, &format!("withheld: the leader could not be asked for it: {reason}"))
        }
    };
    secrets::open(&grants, secret)
}

/// Whether this node holds a replica of its own (a Raft member of any kind).
fn is_member(runner: &Runner) -> bool {
    runner.is_server()
}

async fn replica_secrets(runner: &Runner, assignment: &Assignment, names: &[String]) -> JobSecrets {
    let secret = runner.secret.as_ref();
    // Subscribed before the first read, so that no apply in between goes unnoticed.
    let mut changes = runner.raft.changes();
    let deadline = Instant::now() + REPLICA_WAIT;
    loop {
        let given = runner.state_machine.read(|state| {
            let job = assigned_job(state, assignment.job, assignment.attempt)?;
            Some(secrets::for_job(state, Some(job), names, secret))
        });
        if let Some(given) = given {
            return given;
        }
        if !changes.changed_before(deadline).await {
            warn!(job_id = %assignment.job, "replica has not applied the job's assignment; its secrets are withheld");
            return runner.state_machine.read(|state| secrets::for_job(state, None, names, secret));
        }
    }
}

/// The leader's context for the job, asking again (a new leader, a failed call) until
/// [`LEADER_WAIT`] has passed; the error says why the last question went unanswered.
async fn ask_leader(
    runner: &Runner,
    assignment: &Assignment,
    names: Vec<String>,
) -> Result<JobContext, String> {
    let request = JobContextRequest {
        job: assignment.job,
        attempt: assignment.attempt,
        repo_url: assignment.repo_url.clone(),
        secrets: names,
    };
    let request = &request;
    let deadline = Instant::now() + LEADER_WAIT;
    retry_until(deadline, RETRY_DELAY, || async move {
        let leader = tokio::time::timeout_at(deadline, runner.leader_addr()).await;
        let Ok(Some(leader)) = leader else { return Err("no leader is known".to_owned()) };
        let left = deadline.saturating_duration_since(Instant::now());
        match runner.rpc.call(&leader, JOB_CONTEXT_PATH, request, left).await {
            Ok(JobContextResponse::Context(context)) => Ok(*context),
            Ok(JobContextResponse::NotLeader) => {
                debug!(peer = %leader, job_id = %request.job, "job context asked of a node that no longer leads");
                Err(format!("{leader} no longer leads"))
            }
            Err(error) => {
                debug!(peer = %leader, job_id = %request.job, error = %error, "job context call failed");
                Err(format!("the call to {leader} failed: {error}"))
            }
        }
    })
    .await
}

/// Calls `ask` until it answers or `deadline` passes, pausing `delay` between two calls;
/// past the deadline, the last call's error.
async fn retry_until<T, F, Fut>(deadline: Instant, delay: Duration, mut ask: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    loop {
        let why = match ask().await {
            Ok(answer) => return Ok(answer),
            Err(why) => why,
        };
        let next = Instant::now() + delay;
        if next >= deadline {
            return Err(why);
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const DELAY: Duration = Duration::from_millis(5);

    #[tokio::test]
    async fn the_leader_is_asked_again_until_it_answers() {
        let calls = Cell::new(0);
        let answer = retry_until(Instant::now() + LEADER_WAIT, DELAY, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                match n {
                    1 => Err("no leader is known".to_owned()),
                    2 => Err("127.0.0.1:1 no longer leads".to_owned()),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(answer, Ok(3));
    }

    #[tokio::test]
    async fn past_the_deadline_the_last_reason_is_the_answer() {
        let start = Instant::now();
        let deadline = start + 8 * DELAY;
        let calls = Cell::new(0u32);
        let answer: Result<(), String> = retry_until(deadline, DELAY, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err(format!("call {n} failed")) }
        })
        .await;
        let made = calls.get();
        assert!((1..=8).contains(&made), "{made} calls");
        assert_eq!(answer, Err(format!("call {made} failed")));
        assert!(Instant::now() < deadline + DELAY, "it does not wait past the deadline");
    }
}
