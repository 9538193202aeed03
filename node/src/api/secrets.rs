//! `PUT /api/v1/secrets/{name}` with `{"value": "...", "branches": [...]}` sets a secret
//! (for the jobs of those branches only, if any are given), `GET /api/v1/secrets` lists
//! names, times and branches (never values) and `DELETE
//! /api/v1/secrets/{name}` removes one; writes go through the leader, from any node.
//!
//! This node seals the value before proposing it, so the Raft log, the snapshots and
//! every replica hold only the sealed bytes; the clear value lives in this request and is
//! wiped when it is dropped. All three need the API token whatever `--private-api` says
//! (see `auth`), and a cluster without a secret has no key to seal with: they answer 409.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::{RemovedSecretDoc, SecretDoc, SetSecret};
use eventide_consensus::auth::{Sealer, Zeroizing};
use eventide_consensus::network::Writer;
use eventide_consensus::state::{
    branch_patterns_problem, secret_name_problem, MAX_SECRET_VALUE_BYTES,
};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, Reply};

use super::extract::{ApiJson, ApiPath};
use super::ApiError;
use crate::clock;

/// The answer of every secret route on a cluster without a secret.
pub const NEEDS_CLUSTER_SECRET: &str =
    "the secret store needs a cluster secret: start every node with --secret-file";

/// The answer to a body that is not a value, whatever was wrong with it.
const BAD_BODY: &str = "bad body: expected {\"value\": \"...\", \"branches\": [...]} as application/json, at most 1 MiB";

/// The state of the secret routes.
pub struct SecretsState {
    /// `None` without a cluster secret.
    pub sealer: Option<Sealer>,
    pub state_machine: StateMachineStore,
    pub writer: Writer,
}

impl SecretsState {
    fn sealer(&self) -> Result<&Sealer, ApiError> {
        self.sealer
            .as_ref()
            .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, NEEDS_CLUSTER_SECRET))
    }
}

pub async fn list(State(api): State<Arc<SecretsState>>) -> Result<Json<Vec<SecretDoc>>, ApiError> {
    api.sealer()?;
    let secrets = api.state_machine.read(|state| {
        state
            .secrets()
            .into_iter()
            .map(|info| SecretDoc {
                name: info.name,
                created_at: info.created_at.0,
                updated_at: info.updated_at.0,
                branches: info.branches,
            })
            .collect()
    });
    Ok(Json(secrets))
}

pub async fn set(
    State(api): State<Arc<SecretsState>>,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<SetSecret>, ApiError>,
) -> Result<Json<SecretDoc>, ApiError> {
    let sealer = api.sealer()?;
    // A JSON error can quote what it failed on, which may be the value: say only what
    // was expected.
    let ApiJson(body) =
        body.map_err(|refused| ApiError::new(refused.status, BAD_BODY.to_owned()))?;
    let value = Zeroizing::new(body.value);
    check_name(&name)?;
    let branches: Vec<String> = body
        .branches
        .iter()
        .map(|pattern| pattern.trim().to_owned())
        .filter(|pattern| !pattern.is_empty())
        .collect();
    if let Some(problem) = branch_patterns_problem(&branches) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("branches: {problem}")));
    }
    if value.len() > MAX_SECRET_VALUE_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "a secret value has at most {MAX_SECRET_VALUE_BYTES} bytes, not {}",
                value.len()
            ),
        ));
    }
    let sealed = sealer
        .seal(&name, value.as_bytes())
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    drop(value);
    let at = clock::now();
    // Plain `SetSecret` when there is no restriction, which every version decodes.
    let command = if branches.is_empty() {
        Command::SetSecret { name, sealed, at }
    } else {
        Command::SetRestrictedSecret { name, sealed, branches: branches.clone(), at }
    };
    match api.writer.write(command).await? {
        Reply::SecretSet { name, created_at, updated_at } => Ok(Json(SecretDoc {
            name,
            created_at: created_at.0,
            updated_at: updated_at.0,
            branches,
        })),
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(&other)),
    }
}

pub async fn remove(
    State(api): State<Arc<SecretsState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RemovedSecretDoc>, ApiError> {
    api.sealer()?;
    check_name(&name)?;
    match api.writer.write(Command::RemoveSecret { name, at: clock::now() }).await? {
        Reply::SecretRemoved { name } => Ok(Json(RemovedSecretDoc { name })),
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(&other)),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match secret_name_problem(name) {
        Some(reason) => Err(ApiError::new(StatusCode::BAD_REQUEST, reason)),
        None => Ok(()),
    }
}

/// Never shows a value: no reply of the secret commands holds one.
fn unexpected(reply: &Reply) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected reply {reply:?}"))
}
