//! `POST /api/v1/hooks/{github,gitlab,gitea}`: forges' webhook deliveries, on every node.
//!
//! A delivery is authenticated by the repository's webhook secret, not the API token:
//! the payload names its repository, which must be watched with that forge (`404`
//! otherwise), and the signature (GitHub, Gitea) or token (GitLab) must match the
//! repository's `webhook_secret` (`401` otherwise). A push then only asks for an
//! observer round of that repository, on the leader: the fetch stays the truth, so a
//! delivery, a redelivery and a poll never queue a commit twice. Delivery ids seen
//! before are answered without a round. `ping` answers `200`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use eventide_api::{HookDoc, HookResult};
use eventide_consensus::auth::Secret;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{ForgeKind, RepoId};
use tracing::{debug, info, warn};

use super::auth::with_token;
use super::extract::ApiPath;
use super::ApiError;
use crate::forge::hooks::{parse, verify};
use crate::forge::{Delivery, DeliveryIds, HookEvent};
use crate::health::ObserverWake;
use crate::metrics::Metrics;
use crate::raft_view::RaftView;
use crate::secrets::Secrets;

/// What the hook endpoints use.
pub struct HooksState {
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    /// Opens the webhook secrets, and signs the request that asks the leader for a round.
    pub secret: Option<Secret>,
    pub wake_observer: Arc<ObserverWake>,
    pub metrics: Arc<Metrics>,
    /// Delivery ids this node has accepted.
    pub seen: Mutex<DeliveryIds>,
}

pub async fn deliver(
    State(api): State<Arc<HooksState>>,
    ApiPath(forge): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<HookDoc>), ApiError> {
    let result = handle(&api, &forge, &headers, &body).await;
    api.metrics.webhook_delivered(match &result {
        Ok((_, doc)) if doc.result == HookResult::Pong => "ignored",
        Ok((_, doc)) => doc.result.as_str(),
        Err(_) => "refused",
    });
    if let Err(error) = &result {
        info!(forge, status = error.status.as_u16(), error = %error.message, "webhook delivery refused");
    }
    result
}

async fn handle(
    api: &HooksState,
    forge: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Json<HookDoc>), ApiError> {
    let forge: ForgeKind = match forge {
        "github" => ForgeKind::Github,
        "gitlab" => ForgeKind::Gitlab,
        "gitea" => ForgeKind::Gitea,
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    let delivery = parse(forge, headers, body).map_err(hook_error)?;
    let repos = watched_by(api, &delivery);
    if repos.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no repository watched with forge {forge} is {}",
                delivery.repository_urls.first().map_or("named in this delivery", String::as_str)
            ),
        ));
    }
    let repos = authenticated(api, forge, headers, body, &repos)?;
    let ids: Vec<String> = repos.iter().map(ToString::to_string).collect();
    let doc = |result| HookDoc { result, repos: ids.clone() };
    if let Some(id) = &delivery.delivery_id {
        let first =
            api.seen.lock().unwrap_or_else(PoisonError::into_inner).first_sighting(forge, id);
        if !first {
            debug!(forge = %forge, delivery = %id, "webhook delivery seen before");
            return Ok((StatusCode::OK, Json(doc(HookResult::Repeated))));
        }
    }
    let branch = match &delivery.event {
        HookEvent::Ping => return Ok((StatusCode::OK, Json(doc(HookResult::Pong)))),
        HookEvent::Other(_) | HookEvent::Push { branch: None, .. } => {
            return Ok((StatusCode::ACCEPTED, Json(doc(HookResult::Ignored))));
        }
        HookEvent::Push { branch: Some(branch), .. } => branch.clone(),
    };
    let wanted: Vec<RepoId> = api.state_machine.read(|state| {
        repos
            .iter()
            .copied()
            .filter(|repo| state.repo_settings(*repo).watches_branch(&branch))
            .collect()
    });
    if wanted.is_empty() {
        return Ok((StatusCode::ACCEPTED, Json(doc(HookResult::Ignored))));
    }
    for repo in &wanted {
        wake_leader(api, *repo).await?;
    }
    info!(forge = %forge, branch = %branch, repos = ?ids, "webhook push: observer round asked for");
    Ok((StatusCode::ACCEPTED, Json(doc(HookResult::Accepted))))
}

/// The watched repositories with forge `delivery.forge` that the delivery names.
fn watched_by(api: &HooksState, delivery: &Delivery) -> Vec<RepoId> {
    let named: BTreeSet<(String, String)> =
        delivery.repository_urls.iter().filter_map(|url| identity(url)).collect();
    api.state_machine.read(|state| {
        state
            .repos()
            .filter(|repo| state.repo_settings(repo.id).forge == Some(delivery.forge))
            .filter(|repo| identity(&repo.url).is_some_and(|id| named.contains(&id)))
            .map(|repo| repo.id)
            .collect()
    })
}

/// Those of `repos` whose webhook secret signed this delivery; `401` if none did.
fn authenticated(
    api: &HooksState,
    forge: ForgeKind,
    headers: &HeaderMap,
    body: &[u8],
    repos: &[RepoId],
) -> Result<Vec<RepoId>, ApiError> {
    let Some(cluster) = api.secret.as_ref() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "webhooks need the secret store, which needs a cluster secret: start every node with --secret-file",
        ));
    };
    let mut first_error = None;
    let signed: Vec<RepoId> = api.state_machine.read(|state| {
        repos
            .iter()
            .copied()
            .filter(|repo| {
                let settings = state.repo_settings(*repo);
                let Some(name) = settings.webhook_secret.as_deref() else {
                    first_error.get_or_insert_with(|| {
                        format!("repository {repo} has no webhook secret: `eventide-node repo set {repo} --webhook-secret SECRET`")
                    });
                    return false;
                };
                let Some(value) = Secrets::reveal(state, cluster, name) else {
                    first_error.get_or_insert_with(|| {
                        format!("the webhook secret {name} of repository {repo} is not stored: `eventide-node secret set {name}`")
                    });
                    return false;
                };
                match verify(forge, headers, body, value.as_slice()) {
                    Ok(()) => true,
                    Err(error) => {
                        first_error.get_or_insert_with(|| error.to_string());
                        false
                    }
                }
            })
            .collect()
    });
    if signed.is_empty() {
        let message =
            first_error.unwrap_or_else(|| "webhook delivery not authenticated".to_owned());
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, message));
    }
    Ok(signed)
}

/// Asks the leader's observer for a round of `repo`: this node's own, or the leader's
/// through `POST /api/v1/notify?repo=ID`.
async fn wake_leader(api: &HooksState, repo: RepoId) -> Result<(), ApiError> {
    if api.raft.is_leader() {
        api.wake_observer.repo(repo);
        return Ok(());
    }
    let Some(addr) = api.raft.leader_addr() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader: the cluster is electing one or has lost its quorum; polling will find the push",
        ));
    };
    let request =
        reqwest::Client::new().post(format!("http://{addr}/api/v1/notify?repo={}", repo.0));
    let answer = with_token(request, api.secret.as_ref())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| {
            warn!(leader = %addr, error = %e, "failed to pass a webhook to the leader");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("failed to reach the leader at {addr}: {e}"),
            )
        })?;
    if !answer.status().is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the leader at {addr} answered {}", answer.status()),
        ));
    }
    Ok(())
}

fn hook_error(error: crate::forge::HookError) -> ApiError {
    ApiError::new(error.status(), error.to_string())
}

/// A repository url as (host, path) for comparing the forms one repository is reached
/// by: `https://host/owner/repo.git`, `ssh://git@host:22/owner/repo`,
/// `git@host:owner/repo.git` and the web page `https://host/owner/repo` are the same.
/// Hosts and paths compare without case (forges treat them so); ports are ignored.
fn identity(url: &str) -> Option<(String, String)> {
    let url = url.trim();
    let (host, path) = if url.contains("://") {
        let parsed = url::Url::parse(url).ok()?;
        (parsed.host_str()?.to_owned(), parsed.path().to_owned())
    } else {
        // scp-like: [user@]host:path
        let (authority, path) = url.split_once(':')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        (host.to_owned(), path.to_owned())
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), path.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::identity;

    #[test]
    fn one_repository_in_every_form_has_one_identity() {
        let forms = [
            "https://github.com/Acme/App.git",
            "https://github.com/acme/app",
            "http://GitHub.com:8080/acme/app/",
            "ssh://git@github.com:22/acme/app.git",
            "git@github.com:acme/app.git",
            "github.com:acme/app",
        ];
        let expected = Some(("github.com".to_owned(), "acme/app".to_owned()));
        for form in forms {
            assert_eq!(identity(form), expected, "{form}");
        }
        assert_ne!(identity("https://github.com/acme/app2"), expected);
        assert_ne!(identity("https://gitlab.com/acme/app"), expected);
        assert_eq!(
            identity("https://gitlab.example.com/group/sub/project.git"),
            Some(("gitlab.example.com".to_owned(), "group/sub/project".to_owned()))
        );
        for bad in ["", "/srv/git/app", "https://github.com/", "nohost"] {
            assert_eq!(identity(bad), None, "{bad}");
        }
    }
}
