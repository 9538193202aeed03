//! `GET /metrics`: this node's metrics in the Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::ApiState;
use crate::metrics;

pub async fn get(State(api): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let snapshot =
        metrics::snapshot(&api.state_machine, &api.raft, &api.gossip, api.id, api.runner_slots)
            .await;
    let text = api.metrics.render(&snapshot).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to encode metrics: {error}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
