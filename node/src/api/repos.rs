//! `GET /api/v1/repos` lists watched repositories; `POST /api/v1/repos` with
//! `{"url": "..."}` adds one and `DELETE /api/v1/repos/{id}` removes one (both through
//! the leader, from any node). Urls are stored in canonical form
//! ([`crate::repos::normalize_url`]); a relative path is refused, since each node would
//! resolve it against its own working directory.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::{AddRepo, RemovedRepoDoc, RepoDoc};
use eventide_consensus::{Command, Refusal, Reply, RepoId};

use super::extract::{ApiJson, ApiPath};
use super::ApiError;
use super::ReplicaState;
use crate::clock;
use crate::repos::{find_watched, normalize_url};

pub async fn list(State(api): State<Arc<ReplicaState>>) -> Json<Vec<RepoDoc>> {
    let repos = api.state_machine.read(|state| {
        state
            .repos()
            .map(|repo| RepoDoc {
                id: repo.id.to_string(),
                url: repo.url.clone(),
                added_at: repo.added_at.0,
            })
            .collect()
    });
    Json(repos)
}

pub async fn add(
    State(api): State<Arc<ReplicaState>>,
    ApiJson(body): ApiJson<AddRepo>,
) -> Result<(StatusCode, Json<RepoDoc>), ApiError> {
    if body.url.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "url must not be empty"));
    }
    let url = normalize_url(&body.url)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("{error:#}")))?;
    // The state refuses the same url; this also finds one stored in another form before
    // urls were normalised.
    if let Some(existing) = api.state_machine.read(|state| find_watched(state, &url)) {
        return Err(Refusal::DuplicateRepo { existing }.into());
    }
    let at = clock::now();
    match api.writer.write(Command::AddRepo { url: url.clone(), at }).await? {
        Reply::RepoAdded { repo } => {
            Ok((StatusCode::CREATED, Json(RepoDoc { id: repo.to_string(), url, added_at: at.0 })))
        }
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(&other)),
    }
}

pub async fn remove(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<RemovedRepoDoc>, ApiError> {
    let repo = RepoId(id);
    let url = api.state_machine.read(|state| state.repo(repo).map(|found| found.url.clone()));
    match api.writer.write(Command::RemoveRepo { repo, at: clock::now() }).await? {
        Reply::RepoRemoved { repo, cancelled } => Ok(Json(RemovedRepoDoc {
            id: repo.to_string(),
            url: url.unwrap_or_default(),
            cancelled: cancelled.iter().map(|job| job.0).collect(),
        })),
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Reply) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected reply {reply:?}"))
}
