//! `GET /api/v1/repos` lists watched repositories; `POST /api/v1/repos` with
//! `{"url": "..."}` adds one (through the leader, from any node).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_consensus::{Command, Reply};
use serde::{Deserialize, Serialize};

use super::extract::ApiJson;
use super::ApiError;
use crate::clock;
use crate::node::NodeContext;

/// A watched repository.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepoDoc {
    pub id: String,
    pub url: String,
    /// Milliseconds since the Unix epoch.
    pub added_at: u64,
}

/// The body of `POST /api/v1/repos`.
#[derive(Serialize, Deserialize, Debug)]
pub struct AddRepo {
    pub url: String,
}

pub async fn list(State(context): State<Arc<NodeContext>>) -> Json<Vec<RepoDoc>> {
    let repos = context.state_machine.read(|state| {
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
    State(context): State<Arc<NodeContext>>,
    ApiJson(body): ApiJson<AddRepo>,
) -> Result<(StatusCode, Json<RepoDoc>), ApiError> {
    let url = body.url.trim().to_owned();
    if url.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "url must not be empty"));
    }
    let at = clock::now();
    match context.writer.write(Command::AddRepo { url: url.clone(), at }).await? {
        Reply::RepoAdded { repo } => {
            Ok((StatusCode::CREATED, Json(RepoDoc { id: repo.to_string(), url, added_at: at.0 })))
        }
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected reply {other:?}"),
        )),
    }
}
