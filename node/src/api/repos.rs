//! `GET /api/v1/repos` lists watched repositories with their settings and health;
//! `POST /api/v1/repos` with `{"url": "...", "settings": {...}}` adds one, `PATCH
//! /api/v1/repos/{id}` changes its settings and `DELETE /api/v1/repos/{id}` removes one
//! (all through the leader, from any node). Urls are stored in canonical form
//! ([`crate::repos::normalize_url`]); a relative path is refused, since each node would
//! resolve it against its own working directory. Settings name secrets; their values
//! never pass here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::{AddRepo, Forge, RemovedRepoDoc, RepoDoc, RepoPatch, RepoSettingsDoc};
use eventide_consensus::{Command, ForgeKind, Refusal, Reply, RepoId, RepoSettings};

use super::extract::{ApiJson, ApiPath};
use super::ApiError;
use super::ReplicaState;
use crate::clock;
use crate::repos::{find_watched, normalize_url};

pub async fn list(State(api): State<Arc<ReplicaState>>) -> Json<Vec<RepoDoc>> {
    let errors = api.observer_health.errors();
    let fetched = api.observer_health.fetched();
    let repos = api.state_machine.read(|state| {
        state
            .repos()
            .map(|repo| RepoDoc {
                id: repo.id.to_string(),
                url: repo.url.clone(),
                added_at: repo.added_at.0,
                settings: settings_doc(state.repo_settings(repo.id)),
                last_fetch_at: fetched.get(&repo.id).map(|at| at.0),
                error: errors.get(&repo.id).cloned(),
                forge_error: state.forge_refusal(repo.id).map(|refusal| refusal.answer.clone()),
                statuses_waiting: state.statuses_waiting(repo.id) as u64,
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
    let settings = settings_of(&body.settings)?;
    // The state refuses the same url; this also finds one stored in another form before
    // urls were normalised.
    if let Some(existing) = api.state_machine.read(|state| find_watched(state, &url)) {
        return Err(Refusal::DuplicateRepo { existing }.into());
    }
    let at = clock::now();
    // Without settings the command older nodes know, so that adding a repository keeps
    // working during a rolling upgrade.
    let command = if settings == RepoSettings::default() {
        Command::AddRepo { url: url.clone(), at }
    } else {
        Command::WatchRepo { url: url.clone(), settings: settings.clone(), at }
    };
    match api.writer.write(command).await? {
        Reply::RepoAdded { repo } => Ok((
            StatusCode::CREATED,
            Json(RepoDoc {
                id: repo.to_string(),
                url,
                added_at: at.0,
                settings: settings_doc(&settings),
                last_fetch_at: None,
                error: None,
                forge_error: None,
                statuses_waiting: 0,
            }),
        )),
        Reply::Refused(refusal) => Err(refusal.into()),
        other => Err(unexpected(&other)),
    }
}

/// Changes a repository's settings: the patch applies to the settings this replica has
/// (a concurrent change of the same repository may be overwritten: the last one wins).
pub async fn patch(
    State(api): State<Arc<ReplicaState>>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<RepoPatch>,
) -> Result<Json<RepoDoc>, ApiError> {
    let repo = RepoId(id);
    let current = api.state_machine.read(|state| {
        state.repo(repo).map(|found| (found.clone(), settings_doc(state.repo_settings(repo))))
    });
    let (found, current) = current.ok_or(Refusal::UnknownRepo { repo })?;
    let doc = body.apply(&current);
    let settings = settings_of(&doc)?;
    let command = Command::SetRepoSettings { repo, settings: settings.clone(), at: clock::now() };
    match api.writer.write(command).await? {
        Reply::RepoSettingsSet { .. } => {
            let (error, forge_error, waiting) = api.state_machine.read(|state| {
                (
                    api.observer_health.errors().get(&repo).cloned(),
                    state.forge_refusal(repo).map(|refusal| refusal.answer.clone()),
                    state.statuses_waiting(repo) as u64,
                )
            });
            Ok(Json(RepoDoc {
                id: repo.to_string(),
                url: found.url,
                added_at: found.added_at.0,
                settings: settings_doc(&settings),
                last_fetch_at: api.observer_health.fetched().get(&repo).map(|at| at.0),
                error,
                forge_error,
                statuses_waiting: waiting,
            }))
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

/// The settings as the API shows them.
pub fn settings_doc(settings: &RepoSettings) -> RepoSettingsDoc {
    let RepoSettings {
        forge,
        api_url,
        token,
        ssh_key,
        known_hosts,
        webhook_secret,
        ca_file,
        branches,
        poll_interval_ms,
        status_context,
    } = settings.clone();
    RepoSettingsDoc {
        forge: forge.map(|forge| match forge {
            ForgeKind::Github => Forge::Github,
            ForgeKind::Gitlab => Forge::Gitlab,
            ForgeKind::Gitea => Forge::Gitea,
        }),
        api_url,
        token,
        ssh_key,
        known_hosts,
        webhook_secret,
        ca_file,
        branches,
        poll_interval_ms,
        status_context,
    }
}

/// The settings a request names, checked as the state checks them (`400` with the
/// reason). An api url loses its trailing slash; empty texts mean "not set".
pub fn settings_of(doc: &RepoSettingsDoc) -> Result<RepoSettings, ApiError> {
    let text = |value: &Option<String>| {
        value.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned)
    };
    let settings = RepoSettings {
        forge: doc.forge.map(|forge| match forge {
            Forge::Github => ForgeKind::Github,
            Forge::Gitlab => ForgeKind::Gitlab,
            Forge::Gitea => ForgeKind::Gitea,
        }),
        api_url: text(&doc.api_url).map(|url| url.trim_end_matches('/').to_owned()),
        token: text(&doc.token),
        ssh_key: text(&doc.ssh_key),
        known_hosts: text(&doc.known_hosts),
        webhook_secret: text(&doc.webhook_secret),
        ca_file: text(&doc.ca_file),
        branches: doc
            .branches
            .iter()
            .map(|pattern| pattern.trim().to_owned())
            .filter(|pattern| !pattern.is_empty())
            .collect(),
        poll_interval_ms: doc.poll_interval_ms,
        status_context: text(&doc.status_context),
    };
    match settings.problem() {
        Some(problem) => Err(ApiError::new(StatusCode::BAD_REQUEST, problem)),
        None => Ok(settings),
    }
}

fn unexpected(reply: &Reply) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected reply {reply:?}"))
}
