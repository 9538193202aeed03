//! Jobs and results: `GET /api/v1/jobs` (filters: repo, branch, commit, state, before,
//! limit), `GET /api/v1/jobs/{id}`, `POST /api/v1/jobs/{id}/cancel`,
//! `POST /api/v1/rerun` and `POST /api/v1/notify`. Reads are answered from this node's
//! replica; writes go to the leader.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::{
    AttemptDoc, JobDetailDoc, JobDoc, JobState, ListQuery, RerunRequest, SummaryDoc, Trigger,
    MAX_LIMIT,
};
use eventide_consensus::state::{Attempt, Trigger as JobTrigger};
use eventide_consensus::{
    Command, Job, JobFilter, JobId, JobStatus, Refusal, Reply, RepoId, State as CiState,
};
use tracing::warn;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ApiError;
use super::ReplicaState;
use crate::clock;

/// How long the answer to a write waits for this node's replica to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How many jobs a list holds when the request does not say ([`MAX_LIMIT`] at most).
const DEFAULT_LIMIT: usize = 50;

pub fn job_doc(state: &CiState, job: &Job) -> JobDoc {
    let result = job.result.as_ref();
    JobDoc {
        id: job.id.0,
        repo: state.repo(job.repo).map_or_else(String::new, |r| r.url.clone()),
        repo_id: job.repo.to_string(),
        branch: job.branch.clone(),
        commit: job.commit.to_string(),
        trigger: match job.trigger {
            JobTrigger::Push => Trigger::Push,
            JobTrigger::Rerun => Trigger::Rerun,
        },
        labels: job.labels.clone(),
        state: job_state(job.status),
        attempt: job.attempt,
        runner: job.runner.map(|r| r.to_string()),
        exit_code: result.and_then(|r| r.exit_code),
        duration_ms: result.map(|r| r.duration_ms),
        created_at: job.created_at.0,
        started_at: job.started_at.map(|t| t.0),
        finished_at: result.map(|r| r.finished_at.0),
        message: result.and_then(|r| r.message.clone()),
        summary: result.and_then(|r| r.summary.as_ref()).map(|s| SummaryDoc {
            passed: s.passed,
            failed: s.failed,
            skipped: s.skipped,
            failing: s.failing.clone(),
        }),
        build: state.step_of(job.id).map(|step| step.build.0),
        name: state.step_of(job.id).map(|step| step.name()),
    }
}

/// A job's state as the API names it.
pub fn job_state(status: JobStatus) -> JobState {
    match status {
        JobStatus::Queued => JobState::Queued,
        JobStatus::Running => JobState::Running,
        JobStatus::Passed => JobState::Passed,
        JobStatus::Failed => JobState::Failed,
        JobStatus::TimedOut => JobState::TimedOut,
        JobStatus::Error => JobState::Error,
        JobStatus::Cancelled => JobState::Cancelled,
        JobStatus::Waiting => JobState::Waiting,
        JobStatus::Skipped => JobState::Skipped,
    }
}

fn attempt_doc(attempt: &Attempt) -> AttemptDoc {
    AttemptDoc {
        attempt: attempt.attempt,
        runner: attempt.runner.to_string(),
        started_at: attempt.started_at.0,
        ended_at: attempt.ended_at.map(|t| t.0),
        note: attempt.note.clone(),
    }
}

pub async fn list(
    State(api): State<Arc<ReplicaState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<JobDoc>>, ApiError> {
    let status = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(JobStatus::try_parse(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown state {name:?}: expected waiting, queued, running, passed, failed, timed_out, error, cancelled or skipped"
                ),
            )
        })?),
    };
    check_commit_filter(query.commit.as_deref())?;
    let limit = checked_limit(query.limit, DEFAULT_LIMIT)?;
    let filter = JobFilter {
        repo: query.repo.map(RepoId),
        branch: query.branch.filter(|b| !b.is_empty()),
        commit: query.commit,
        status,
        before: query.before.map(JobId),
        limit: Some(limit),
    };
    let jobs = api
        .state_machine
        .read(|state| state.jobs(&filter).into_iter().map(|job| job_doc(state, job)).collect());
    Ok(Json(jobs))
}

/// Refuses a `commit` filter that is not 1 to 64 hex digits.
pub(super) fn check_commit_filter(commit: Option<&str>) -> Result<(), ApiError> {
    match commit {
        Some(commit)
            if commit.is_empty()
                || commit.len() > 64
                || !commit.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "commit must be 1 to 64 hex digits"))
        }
        _ => Ok(()),
    }
}

/// A list's `limit`, `default` when not given, refused outside 1 to [`MAX_LIMIT`].
pub(super) fn checked_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

pub async fn get(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<JobDetailDoc>, ApiError> {
    api.state_machine
        .read(|state| {
            let job = state.job(JobId(id))?;
            let result = job.result.as_ref();
            Some(JobDetailDoc {
                job: job_doc(state, job),
                attempts: job.attempts.iter().map(attempt_doc).collect(),
                output_tail: result.map(|r| r.output_tail.clone()).unwrap_or_default(),
                output_pruned: result.is_some_and(|r| r.output_pruned),
            })
        })
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown job {id}")))
}

pub async fn cancel(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<JobDoc>, ApiError> {
    let command =
        Command::Cancel { job: JobId(id), reason: "cancelled by a user".into(), at: clock::now() };
    match api.writer.write(command).await? {
        Reply::Cancelled { job } => {
            Ok(Json(applied_job(&api, job, |j| j.status.is_final()).await?))
        }
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn rerun(
    State(api): State<Arc<ReplicaState>>,
    ApiJson(request): ApiJson<RerunRequest>,
) -> Result<(StatusCode, Json<JobDoc>), ApiError> {
    let prefix = request.commit.trim().to_ascii_lowercase();
    if prefix.len() < 4 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "commit must be 4 to 64 hex digits"));
    }
    let command = api.state_machine.read(|state| {
        let filter = JobFilter { commit: Some(prefix.clone()), ..JobFilter::default() };
        let jobs = state.jobs(&filter);
        let newest = jobs.first().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no job has tested a commit {prefix}…"))
        })?;
        if jobs.iter().any(|j| j.commit != newest.commit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("commit {prefix}… is ambiguous"),
            ));
        }
        let branch = request.branch.clone().unwrap_or_else(|| newest.branch.clone());
        let by = request.by.as_deref().map(|by| format!("rerun by {by}"));
        Ok(match super::builds::plan_of_commit(state, &newest.commit) {
            Some(plan) => {
                Command::RerunBuild { repo: newest.repo, branch, plan, by, at: clock::now() }
            }
            None => Command::Rerun {
                repo: newest.repo,
                branch,
                commit: newest.commit.clone(),
                labels: newest.labels.clone(),
                at: clock::now(),
            },
        })
    })?;
    match api.writer.write(command).await? {
        Reply::RerunQueued { job } => {
            Ok((StatusCode::CREATED, Json(applied_job(&api, job, |_| true).await?)))
        }
        Reply::BuildQueued { jobs, .. } => {
            let first = jobs.first().copied().ok_or_else(|| unexpected(Reply::None))?;
            Ok((StatusCode::CREATED, Json(applied_job(&api, first, |_| true).await?)))
        }
        Reply::Refused(refusal @ Refusal::QueueFull { .. }) => {
            warn!(commit = %prefix, error = %refusal, "rerun refused");
            Err(refusal.into())
        }
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(other)),
    }
}

/// The job as this node's replica shows it once `ready` holds, i.e. once the replica has
/// applied the write this request made (a follower applies it shortly after the leader
/// answered). A replica that lags further answers 503 naming the leader.
pub(super) async fn applied_job(
    api: &ReplicaState,
    job: JobId,
    ready: impl Fn(&Job) -> bool,
) -> Result<JobDoc, ApiError> {
    // Subscribed before the first read, so that no apply in between goes unnoticed.
    let mut applied = api.raft.changes();
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        let doc = api
            .state_machine
            .read(|state| state.job(job).filter(|j| ready(j)).map(|j| job_doc(state, j)));
        if let Some(doc) = doc {
            return Ok(doc);
        }
        if !applied.changed_before(deadline).await {
            let leader = api.raft.leader_addr().unwrap_or_else(|| "unknown".to_owned());
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("job {job} was written but this node has not caught up yet; ask the leader at {leader}"),
            ));
        }
    }
}

pub(super) fn unexpected(reply: Reply) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected reply {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_keep_the_names_of_the_replicated_statuses() {
        for status in JobStatus::ALL {
            assert_eq!(job_state(status).as_str(), status.as_str());
        }
    }
}
