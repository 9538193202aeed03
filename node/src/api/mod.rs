//! HTTP: the public JSON API under `/api/v1/`, and the internal Raft RPC under
//! `/internal/`. Handlers are thin: decode, call, map errors (in [`ApiError`]). Each
//! group of routes has its own state, holding only the handles its handlers use; the
//! router cuts them out of the [`ApiHandles`] the node hands over.
//!
//! - `auth`: the API token guard of the public routes.
//! - `proxy`: on a client, every route that reads the replica asks a server instead.
//! - `status`: `GET /api/v1/status`, the cluster as this node sees it.
//! - `repos`: `GET|POST /api/v1/repos` and `PATCH|DELETE /api/v1/repos/{id}`, watched
//!   repositories and their settings.
//! - `jobs`: jobs and results, cancel and rerun.
//! - `builds`: builds with their jobs, cancelling one, a job's artifacts.
//! - `secrets`: `GET /api/v1/secrets`, `PUT|DELETE /api/v1/secrets/{name}`, the secret
//!   store (names and times out, values only in).
//! - `logs`: a job's output from any node, live while it runs.
//! - `artifacts`: an artifact's file from any node.
//! - `notify`: an immediate observer round.
//! - `hooks`: the forges' webhooks, authenticated by each repository's webhook secret.
//! - `metrics`: `GET /metrics`, Prometheus text.
//! - `extract`: path, query and body extractors whose rejections are JSON errors.
//! - `dashboard`: the web page at `/` and its embedded files under `/ui/`.

pub mod artifacts;
pub mod auth;
pub mod builds;
pub mod dashboard;
mod extract;
pub mod hooks;
pub mod jobs;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod repos;
pub mod secrets;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use eventide_consensus::auth::{require_signature, InternalAuth, Sealer, Secret};
use eventide_consensus::network::{raft_routes, WriteError, Writer};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::types::Raft;
use eventide_consensus::{NodeId, Refusal};
use tokio::sync::watch;
use tracing::{debug, warn};

/// The body of every error answer, re-exported for the server's own refusals.
pub use eventide_api::ErrorBody;

use self::auth::ApiAuth;
use crate::forge::{DeliveryIds, MAX_HOOK_BYTES};
use crate::gossip::Gossip;
use crate::health::Phase;
use crate::health::{ObserverHealth, ObserverWake};
use crate::joblog::RunningJobs;
use crate::metrics::Metrics;
use crate::raft_view::RaftView;

/// The largest public request body accepted.
const PUBLIC_BODY_LIMIT: usize = 1024 * 1024;

/// Everything the handlers use, as the node hands it over; [`router`] gives each group
/// of routes only its part.
pub struct ApiHandles {
    /// This node, as `status` names it.
    pub id: NodeId,
    pub name: String,
    pub advertise: SocketAddr,
    /// The cluster secret: the token of forwarded requests, and `auth` in `status`.
    pub secret: Option<Secret>,
    /// Reads of the public API need the token too.
    pub private_api: bool,
    /// Holds this node's job logs.
    pub data_dir: PathBuf,
    /// This node's runner slots, for `/metrics`.
    pub runner_slots: u32,
    pub raft: RaftView,
    /// This node's replica, which every read answers from.
    pub state_machine: StateMachineStore,
    pub writer: Writer,
    pub gossip: Arc<Gossip>,
    /// Why this node is not in a cluster yet (from the cluster task).
    pub phase: watch::Receiver<Phase>,
    /// Wakes the observer for an immediate round (`notify`).
    pub wake_observer: Arc<ObserverWake>,
    /// The observer's latest error per repository, for `status`.
    pub observer_health: Arc<ObserverHealth>,
    pub metrics: Arc<Metrics>,
    /// The attempts this node's runner is running, whose logs are still being written.
    pub running: Arc<RunningJobs>,
    /// Artifact files: this node's own, and fetched from holders to be served.
    pub artifacts: Arc<crate::artifacts::Artifacts>,
}

/// The state of the routes that read the replica and write through the leader (`jobs`,
/// `repos`).
pub struct ReplicaState {
    /// Tells a write's answer when this replica has applied it.
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    pub writer: Writer,
    /// The observer's fetch times and errors (the leader's), for `repo list`.
    pub observer_health: Arc<ObserverHealth>,
}

/// The public API, the Raft routes of `raft` and `internal` (the dispatcher's and
/// gossip's RPC).
pub fn router(handles: ApiHandles, raft: Raft, internal: Router) -> anyhow::Result<Router> {
    let ApiHandles {
        id,
        name,
        advertise,
        secret,
        private_api,
        data_dir,
        runner_slots,
        raft: view,
        state_machine,
        writer,
        gossip,
        phase,
        wake_observer,
        observer_health,
        metrics,
        running,
        artifacts,
    } = handles;
    let proxy = Arc::new(proxy::Proxy::new(
        id,
        phase.clone(),
        view.clone(),
        gossip.clone(),
        PUBLIC_BODY_LIMIT.max(MAX_HOOK_BYTES),
    )?);
    let forward = middleware::from_fn_with_state(proxy.clone(), proxy::serve_or_forward);
    let status_state = status::StatusState {
        proxy: proxy.clone(),
        id,
        name: name.clone(),
        advertise,
        auth: secret.is_some(),
        raft: view.clone(),
        state_machine: state_machine.clone(),
        gossip: gossip.clone(),
        phase,
        observer_health: observer_health.clone(),
    };
    let secrets_state = secrets::SecretsState {
        sealer: secret.as_ref().map(Sealer::new),
        state_machine: state_machine.clone(),
        writer: writer.clone(),
    };
    let replica = ReplicaState {
        raft: view.clone(),
        state_machine: state_machine.clone(),
        writer,
        observer_health,
    };
    let logs_state = logs::LogsState {
        id,
        data_dir,
        secret: secret.clone(),
        raft: view.clone(),
        gossip: gossip.clone(),
        state_machine: state_machine.clone(),
        running,
    };
    let hooks_state = hooks::HooksState {
        raft: view.clone(),
        state_machine: state_machine.clone(),
        secret: secret.clone(),
        wake_observer: wake_observer.clone(),
        metrics: metrics.clone(),
        seen: Mutex::new(DeliveryIds::default()),
    };
    let notify_state =
        notify::NotifyState { name, secret: secret.clone(), raft: view.clone(), wake_observer };
    let metrics_state = metrics::MetricsState {
        id,
        runner_slots,
        raft: view,
        state_machine: state_machine.clone(),
        gossip,
        metrics,
    };
    // Every route that reads the replica or writes is a server's to answer: a client
    // passes it on (`proxy`). `status` does so itself; `/metrics` is this node's own.
    let served = Router::new()
        .route("/api/v1/repos", get(repos::list).post(repos::add))
        .route("/api/v1/repos/{id}", delete(repos::remove).patch(repos::patch))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/rerun", post(jobs::rerun))
        .route("/api/v1/builds", get(builds::list))
        .route("/api/v1/builds/{id}", get(builds::get))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/jobs/{id}/artifacts", get(builds::artifacts))
        .with_state(Arc::new(replica))
        .merge(
            Router::new()
                .route("/api/v1/secrets", get(secrets::list))
                .route("/api/v1/secrets/{name}", put(secrets::set).delete(secrets::remove))
                .with_state(Arc::new(secrets_state)),
        )
        .merge(
            Router::new()
                .route("/api/v1/jobs/{id}/log", get(logs::get))
                .with_state(Arc::new(logs_state)),
        )
        .merge(
            Router::new()
                .route("/api/v1/jobs/{id}/artifacts/{*name}", get(artifacts::get))
                .with_state(Arc::new(artifacts::ArtifactFiles { state_machine, artifacts })),
        )
        .merge(
            Router::new()
                .route("/api/v1/notify", post(notify::notify))
                .with_state(Arc::new(notify_state)),
        )
        .route_layer(forward.clone());
    let public = Router::new()
        .route("/api/v1/status", get(status::get_status))
        .with_state(Arc::new(status_state))
        .merge(served)
        .merge(
            Router::new().route("/metrics", get(metrics::get)).with_state(Arc::new(metrics_state)),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Arc::new(ApiAuth { secret: secret.clone(), private: private_api }),
            auth::require_token,
        ));
    // Every internal route is signed with the cluster secret (when there is one).
    let internal = raft_routes(raft)
        .merge(internal)
        .layer(middleware::from_fn_with_state(InternalAuth::new(secret), require_signature));
    // Webhooks carry their own authentication (each repository's webhook secret), not
    // the API token: forges cannot send one.
    let hooks = Router::new()
        .route("/api/v1/hooks/{forge}", post(hooks::deliver))
        .with_state(Arc::new(hooks_state))
        .route_layer(forward)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_HOOK_BYTES));
    // The dashboard's files hold no data (the page asks for a token when the API wants
    // one), so they are served to everyone.
    let dashboard = Router::new()
        .route("/", get(dashboard::index))
        .route("/ui/{file}", get(dashboard::file))
        .method_not_allowed_fallback(method_not_allowed);
    Ok(hooks
        .merge(public)
        .merge(dashboard)
        .merge(internal)
        .layer(axum::middleware::from_fn(log_refused)))
}

/// Logs every request refused for its body (malformed, too large, wrong content type),
/// so that bad input always leaves a line; other refusals (404, 409) log at debug. The
/// internal decoders log their own 400s with the decode error, so those are not repeated.
async fn log_refused(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() {
        let body_refused = matches!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::UNPROCESSABLE_ENTITY
        ) || (status == StatusCode::BAD_REQUEST
            && !path.starts_with("/internal/"));
        if body_refused {
            warn!(%method, path, status = status.as_u16(), "refused malformed request");
        } else {
            debug!(%method, path, status = status.as_u16(), "refused request");
        }
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}

/// An error answer with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        let status = match error {
            WriteError::NoLeader
            | WriteError::NotLeader { .. }
            | WriteError::NotCommitted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            WriteError::LeaderUnreachable { .. } => StatusCode::BAD_GATEWAY,
            WriteError::Raft { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status = match refusal {
            Refusal::UnknownRepo { .. }
            | Refusal::UnknownJob { .. }
            | Refusal::UnknownSecret { .. } => StatusCode::NOT_FOUND,
            Refusal::Invalid { .. } => StatusCode::BAD_REQUEST,
            // The repository's queue empties as its jobs end: worth trying again later.
            Refusal::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::LimitReached { .. } => StatusCode::CONFLICT,
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, refusal.to_string())
    }
}
