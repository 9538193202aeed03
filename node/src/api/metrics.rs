//! `GET /metrics`: this node's metrics in the Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::NodeId;

use super::ApiError;
use crate::gossip::Gossip;
use crate::metrics::{self, Metrics};
use crate::raft_view::RaftView;

/// What a scrape reads.
pub struct MetricsState {
    pub id: NodeId,
    pub runner_slots: u32,
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    pub gossip: Arc<Gossip>,
    pub metrics: Arc<Metrics>,
}

pub async fn get(State(api): State<Arc<MetricsState>>) -> Result<Response, ApiError> {
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
