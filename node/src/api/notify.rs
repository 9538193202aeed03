//! `POST /api/v1/notify`: start an observer round now (a git hook calls this). Any node
//! accepts it; a follower passes it to the leader, where the observer runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use eventide_api::NotifyDoc;
use eventide_consensus::auth::Secret;

use super::auth::with_token;
use super::ApiError;
use crate::health::ObserverWake;
use crate::raft_view::RaftView;

/// What `notify` uses.
pub struct NotifyState {
    /// This node's name, the answer when its own observer is woken.
    pub name: String,
    /// The token of a request passed to the leader.
    pub secret: Option<Secret>,
    pub raft: RaftView,
    /// Wakes this node's observer.
    pub wake_observer: Arc<ObserverWake>,
}

pub async fn notify(
    State(api): State<Arc<NotifyState>>,
) -> Result<(StatusCode, Json<NotifyDoc>), ApiError> {
    if api.raft.is_leader() {
        api.wake_observer.all();
        return Ok((StatusCode::ACCEPTED, Json(NotifyDoc { observer: api.name.clone() })));
    }
    let Some(addr) = api.raft.leader_addr() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader: the cluster is electing one or has lost its quorum",
        ));
    };
    let request = reqwest::Client::new().post(format!("http://{addr}/api/v1/notify"));
    let forwarded = with_token(request, api.secret.as_ref())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("failed to reach the leader at {addr}: {e}"),
            )
        })?;
    if !forwarded.status().is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the leader at {addr} answered {}", forwarded.status()),
        ));
    }
    let doc = forwarded.json::<NotifyDoc>().await.map_err(|e| {
        ApiError::new(StatusCode::BAD_GATEWAY, format!("bad answer from the leader: {e}"))
    })?;
    Ok((StatusCode::ACCEPTED, Json(doc)))
}
