//! Builds: `GET /api/v1/builds` (filters: repo, branch, commit, state, before, limit),
//! `GET /api/v1/builds/{id}`, `POST /api/v1/builds/{id}/cancel`, and
//! `GET /api/v1/jobs/{id}/artifacts` (the list; the files are served by `artifacts`).
//! Reads are answered from this node's replica; writes go to the leader.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::{ArtifactDoc, BuildDoc, BuildJobDoc, BuildListQuery, BuildState, Trigger};
use eventide_consensus::command::{BuildPlan, PlannedJob};
use eventide_consensus::state::{Artifact, Build, BuildFilter, BuildStatus, Trigger as JobTrigger};
use eventide_consensus::{BuildId, Command, CommitId, JobId, Reply, RepoId, State as CiState};

use super::extract::{ApiPath, ApiQuery};
use super::jobs::{check_commit_filter, checked_limit, job_state, unexpected};
use super::{ApiError, ReplicaState};
use crate::clock;

/// How many builds a list holds when the request does not say.
const DEFAULT_LIMIT: usize = 20;

pub fn build_doc(state: &CiState, build: &Build) -> BuildDoc {
    let jobs = build
        .jobs
        .iter()
        .filter_map(|&id| Some((state.job(id)?, state.step_of(id)?)))
        .map(|(job, step)| {
            let result = job.result.as_ref();
            BuildJobDoc {
                id: job.id.0,
                name: step.name(),
                step: step.step.clone(),
                matrix: step.matrix.iter().cloned().collect(),
                needs: state.needs_of(job.id).iter().map(|id| id.0).collect(),
                state: job_state(job.status),
                attempt: job.attempt,
                runner: job.runner.map(|runner| runner.to_string()),
                started_at: job.started_at.map(|t| t.0),
                finished_at: result.map(|r| r.finished_at.0),
                duration_ms: result.map(|r| r.duration_ms),
                message: result.and_then(|r| r.message.clone()),
                artifacts: step.artifacts.iter().map(artifact_doc).collect(),
            }
        })
        .collect();
    BuildDoc {
        id: build.id.0,
        repo: state.repo(build.repo).map_or_else(String::new, |repo| repo.url.clone()),
        repo_id: build.repo.to_string(),
        branch: build.branch.clone(),
        commit: build.commit.to_string(),
        subject: build.subject.clone(),
        author: build.author.clone(),
        trigger: match build.trigger {
            JobTrigger::Push => Trigger::Push,
            JobTrigger::Rerun => Trigger::Rerun,
        },
        by: build.by.clone(),
        state: build_state(build.status),
        created_at: build.created_at.0,
        finished_at: build.finished_at.map(|t| t.0),
        duration_ms: build.finished_at.map(|end| end.millis_since(build.created_at)),
        cancelled: build.cancelled.clone(),
        jobs,
    }
}

pub fn artifact_doc(artifact: &Artifact) -> ArtifactDoc {
    ArtifactDoc {
        name: artifact.name.clone(),
        size: artifact.size,
        sha256: artifact.sha256.clone(),
        holders: artifact.holders.iter().map(|node| node.to_string()).collect(),
    }
}

pub fn build_state(status: BuildStatus) -> BuildState {
    match status {
        BuildStatus::Queued => BuildState::Queued,
        BuildStatus::Running => BuildState::Running,
        BuildStatus::Passed => BuildState::Passed,
        BuildStatus::Failed => BuildState::Failed,
        BuildStatus::Error => BuildState::Error,
        BuildStatus::Cancelled => BuildState::Cancelled,
    }
}

/// The plan of the newest build of `commit` whose jobs are all still kept, for a rerun:
/// the same steps, cells, needs, labels and groups.
pub fn plan_of_commit(state: &CiState, commit: &CommitId) -> Option<BuildPlan> {
    let filter = BuildFilter { commit: Some(commit.to_string()), ..BuildFilter::default() };
    let build = state.builds(&filter).into_iter().find(|build| {
        build.jobs.iter().all(|&id| state.job(id).is_some() && state.step_of(id).is_some())
    })?;
    let jobs = build
        .jobs
        .iter()
        .filter_map(|&id| Some((state.job(id)?, state.step_of(id)?)))
        .map(|(job, step)| PlannedJob {
            step: step.step.clone(),
            matrix: step.matrix.clone(),
            needs: step.needs.clone(),
            labels: job.labels.clone(),
            concurrency: step.concurrency.clone(),
        })
        .collect();
    Some(BuildPlan {
        commit: build.commit.clone(),
        subject: build.subject.clone(),
        author: build.author.clone(),
        jobs,
        cancel_superseded: false,
    })
}

pub async fn list(
    State(api): State<Arc<ReplicaState>>,
    ApiQuery(query): ApiQuery<BuildListQuery>,
) -> Result<Json<Vec<BuildDoc>>, ApiError> {
    let status = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(
            BuildState::try_parse(name)
                .and_then(|state| BuildStatus::try_parse(state.as_str()))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "unknown state {name:?}: expected queued, running, passed, failed, error or cancelled"
                        ),
                    )
                })?,
        ),
    };
    check_commit_filter(query.commit.as_deref())?;
    let limit = checked_limit(query.limit, DEFAULT_LIMIT)?;
    let filter = BuildFilter {
        repo: query.repo.map(RepoId),
        branch: query.branch.filter(|b| !b.is_empty()),
        commit: query.commit,
        status,
        before: query.before.map(BuildId),
        limit: Some(limit),
    };
    let builds = api.state_machine.read(|state| {
        state.builds(&filter).into_iter().map(|build| build_doc(state, build)).collect()
    });
    Ok(Json(builds))
}

pub async fn get(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<BuildDoc>, ApiError> {
    api.state_machine
        .read(|state| state.build(BuildId(id)).map(|build| build_doc(state, build)))
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown build {id}")))
}

pub async fn cancel(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<BuildDoc>, ApiError> {
    let build = BuildId(id);
    let command = Command::CancelBuild { build, reason: "by a user".into(), at: clock::now() };
    match api.writer.write(command).await? {
        Reply::BuildCancelled { .. } => {
            let mut applied = api.raft.changes();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let doc = api.state_machine.read(|state| {
                    state.build(build).filter(|b| b.status.is_final()).map(|b| build_doc(state, b))
                });
                if let Some(doc) = doc {
                    return Ok(Json(doc));
                }
                if !applied.changed_before(deadline).await {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("build {id} was cancelled but this node has not caught up yet"),
                    ));
                }
            }
        }
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn artifacts(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Vec<ArtifactDoc>>, ApiError> {
    api.state_machine
        .read(|state| {
            state.job(JobId(id))?;
            let step = state.step_of(JobId(id));
            Some(step.map_or_else(Vec::new, |s| s.artifacts.iter().map(artifact_doc).collect()))
        })
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown job {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_states_keep_the_names_of_the_replicated_statuses() {
        for status in BuildStatus::ALL {
            assert_eq!(build_state(status).as_str(), status.as_str());
        }
    }
}
