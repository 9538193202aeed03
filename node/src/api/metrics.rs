//! `GET /metrics`: this node's metrics in the Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::metrics;
use crate::node::NodeContext;

pub async fn get(State(context): State<Arc<NodeContext>>) -> Result<Response, ApiError> {
    let snapshot = metrics::snapshot(&context).await;
    let text = metrics::global().render(&snapshot).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to encode metrics: {error}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
