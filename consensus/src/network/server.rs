//! The server side of Raft RPC: axum routes that decode a request, hand it to the local
//! Raft node and encode its answer.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use tracing::{debug, instrument, warn};

use super::batch::{Proposer, COMMIT_TIMEOUT};
use super::plausible::{self, Problem, SnapshotReceived};
use super::rpc::{Codec, CodecReply, RpcService};
use super::{forward, APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH, WRITE_PATH};
use crate::codec::MESSAGE_LIMIT;
use crate::store::{self, StoreError};
use crate::types::{AppendEntriesRequest, InstallSnapshotRequest, NodeId, Raft, VoteRequest};

/// The routes a node mounts to take part in Raft and to accept forwarded writes. Bodies
/// larger than the codec's message limit are refused with 413 before they are read
/// whole; bodies that do not decode, or that decode into a request no correct peer
/// sends (see [`plausible`]), with 400.
/// Forwarded writes are batched by a [`Proposer`] of their own (started here, so this
/// must run inside a tokio runtime).
pub fn raft_routes(raft: Raft) -> Router {
    let writes = Router::new()
        .route(WRITE_PATH, post(forward::write))
        .with_state(Proposer::new(raft.clone(), COMMIT_TIMEOUT));
    let snapshots = Router::new()
        .route(SNAPSHOT_PATH, post(snapshot))
        .with_state(Snapshots { raft: raft.clone(), received: Arc::default() });
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .with_state(raft)
        .merge(writes)
        .merge(snapshots)
        .layer(Extension(RpcService("raft")))
        .layer(DefaultBodyLimit::max(MESSAGE_LIMIT + 1))
}

#[instrument(level = "trace", skip_all)]
async fn append(State(raft): State<Raft>, Codec(request): Codec<AppendEntriesRequest>) -> Response {
    if let Err(problem) = plausible::append_request(me(&raft), &request) {
        return implausible(APPEND_PATH, &request.vote, problem);
    }
    CodecReply(raft.append_entries(request).await).into_response()
}

#[instrument(level = "trace", skip_all)]
async fn vote(State(raft): State<Raft>, Codec(request): Codec<VoteRequest>) -> Response {
    if let Err(problem) = plausible::vote_request(me(&raft), &request) {
        return implausible(VOTE_PATH, &request.vote, problem);
    }
    CodecReply(raft.vote(request).await).into_response()
}

/// The snapshot route's state: what this node has been sent of the snapshot streamed
/// to it (a copy of openraft's stream, see [`SnapshotReceived`]), besides the Raft node.
/// The lock is held from the check of a chunk until openraft has taken it, so that
/// concurrent chunks cannot all pass the check against the same record and the copy
/// sees chunks in the order openraft does (openraft takes them one at a time anyway, as
/// leaders send them).
#[derive(Clone)]
struct Snapshots {
    raft: Raft,
    received: Arc<tokio::sync::Mutex<SnapshotReceived>>,
}

/// One chunk of a snapshot. The snapshot a final chunk completes is decoded here first,
/// as the store would install it, and refused with 400 if it does not decode: openraft
/// takes the store's failure to install as fatal.
#[instrument(level = "trace", skip_all)]
async fn snapshot(
    State(snapshots): State<Snapshots>,
    Codec(request): Codec<InstallSnapshotRequest>,
) -> Response {
    if let Err(problem) = plausible::snapshot_request(me(&snapshots.raft), &request) {
        return implausible(SNAPSHOT_PATH, &request.vote, problem);
    }
    // In a task of its own, so that a leader giving up on the answer (its chunk timeout
    // closes the connection, which drops this handler) cannot leave the copy of the
    // stream written without openraft's answer settling it.
    match tokio::spawn(take_chunk(snapshots, request)).await {
        Ok(response) => response,
        Err(error) => {
            warn!(error = %error, "snapshot chunk task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "snapshot chunk task failed").into_response()
        }
    }
}

/// Checks a plausible chunk against the stream, and hands it to openraft.
async fn take_chunk(snapshots: Snapshots, request: InstallSnapshotRequest) -> Response {
    let mut received = snapshots.received.lock().await;
    if let Err(problem) = received.check(&request) {
        return implausible(SNAPSHOT_PATH, &request.vote, problem);
    }
    let written = received.write(&request);
    if let Some(data) = received.assembled(&written) {
        if let Err(error) = store::check_snapshot(&request.meta, data) {
            debug!(error = %error, bytes = data.len(), "snapshot refused by the store's check");
            received.undo(written);
            let problem = match error {
                StoreError::SnapshotMismatch { .. } => "the snapshot does not match its meta",
                _ => "the snapshot does not decode",
            };
            return implausible(SNAPSHOT_PATH, &request.vote, problem);
        }
    }
    let vote = request.vote;
    let result = snapshots.raft.install_snapshot(request).await;
    // openraft takes a chunk exactly when its vote is at least the node's, which it
    // answers with.
    received.settle(written, matches!(&result, Ok(answer) if vote >= answer.vote));
    drop(received);
    CodecReply(result).into_response()
}

/// This node's id.
fn me(raft: &Raft) -> NodeId {
    raft.metrics().borrow().id
}

/// The refusal of a request no correct peer sends (see [`plausible`]); several were
/// found by the `internal_rpc` fuzz target, tripping openraft's debug assertions.
fn implausible(path: &str, vote: &crate::types::Vote, problem: Problem) -> Response {
    warn!(path, vote = %vote, problem, "refused implausible raft rpc");
    (StatusCode::BAD_REQUEST, format!("malformed request: {problem}")).into_response()
}
