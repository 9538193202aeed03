//! The server side of Raft RPC: axum routes that decode a request, hand it to the local
//! Raft node and encode its answer.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{instrument, warn};

use super::batch::Proposer;
use super::{forward, APPEND_PATH, CODEC_CONTENT_TYPE, SNAPSHOT_PATH, VOTE_PATH, WRITE_PATH};
use crate::codec::{self, MESSAGE_LIMIT};
use crate::types::{AppendEntriesRequest, InstallSnapshotRequest, Raft, Vote, VoteRequest};

/// The routes a node mounts to take part in Raft and to accept forwarded writes. Bodies larger than the codec's message
/// limit are refused with 413 before they are read whole.
/// Forwarded writes are batched by a [`Proposer`] of their own (started here, so this
/// must run inside a tokio runtime).
pub fn raft_routes(raft: Raft) -> Router {
    let writes = Router::new()
        .route(WRITE_PATH, post(forward::write))
        .with_state(Proposer::new(raft.clone()));
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .with_state(raft)
        .merge(writes)
        .layer(DefaultBodyLimit::max(MESSAGE_LIMIT + 1))
}

#[instrument(level = "trace", skip_all)]
async fn append(State(raft): State<Raft>, body: Bytes) -> Response {
    serve(
        raft,
        APPEND_PATH,
        &body,
        Sender::Leader,
        |raft, request: AppendEntriesRequest| async move { raft.append_entries(request).await },
    )
    .await
}

#[instrument(level = "trace", skip_all)]
async fn vote(State(raft): State<Raft>, body: Bytes) -> Response {
    serve(raft, VOTE_PATH, &body, Sender::Candidate, |raft, request: VoteRequest| async move {
        raft.vote(request).await
    })
    .await
}

#[instrument(level = "trace", skip_all)]
async fn snapshot(State(raft): State<Raft>, body: Bytes) -> Response {
    serve(
        raft,
        SNAPSHOT_PATH,
        &body,
        Sender::Leader,
        |raft, request: InstallSnapshotRequest| async move { raft.install_snapshot(request).await },
    )
    .await
}

/// A Raft request, by the vote it carries.
trait Voted: DeserializeOwned {
    fn vote(&self) -> &Vote;
}

impl Voted for AppendEntriesRequest {
    fn vote(&self) -> &Vote {
        &self.vote
    }
}

impl Voted for VoteRequest {
    fn vote(&self) -> &Vote {
        &self.vote
    }
}

impl Voted for InstallSnapshotRequest {
    fn vote(&self) -> &Vote {
        &self.vote
    }
}

/// Decodes a request, refuses it if its vote is implausible, else answers with the
/// encoded reply of `call`.
async fn serve<Request: Voted, Reply: Serialize, Call: Future<Output = Reply>>(
    raft: Raft,
    path: &str,
    body: &[u8],
    sender: Sender,
    call: impl FnOnce(Raft, Request) -> Call,
) -> Response {
    let request = match decode_request::<Request>(path, body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Some(refusal) = implausible(&raft, path, request.vote(), sender) {
        return refusal;
    }
    encode_reply(&call(raft, request).await)
}

/// Who sends a Raft request: a leader (append, snapshot) or a candidate (vote).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    Leader,
    Candidate,
}

/// The refusal of a request whose vote no real peer could send, which openraft does not expect
/// (found by the `internal_rpc` fuzz target; both trip openraft's debug assertions and
/// panic its core in a dev build):
/// - a vote naming this very node: Raft never sends one over the network (a node votes
///   for itself and leads itself in process); a leader handed its own vote in an append
///   takes the follower's path while it leads;
/// - an uncommitted vote from a leader: a leader's vote is committed by definition.
fn implausible(raft: &Raft, path: &str, vote: &Vote, sender: Sender) -> Option<Response> {
    let me = raft.metrics().borrow().id;
    let problem = if vote.leader_id().voted_for() == Some(me) {
        "the vote names the receiving node"
    } else if sender == Sender::Leader && !vote.is_committed() {
        "a leader's vote must be committed"
    } else {
        return None;
    };
    warn!(path, vote = %vote, problem, "refused implausible raft rpc");
    Some((StatusCode::BAD_REQUEST, format!("malformed request: {problem}")).into_response())
}

/// Decodes a request body, or answers 400 and logs why.
#[allow(clippy::result_large_err)]
pub(super) fn decode_request<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Response> {
    codec::decode(body).map_err(|error| {
        warn!(path, error = %error, bytes = body.len(), "refused malformed raft rpc");
        (StatusCode::BAD_REQUEST, format!("malformed request: {error}")).into_response()
    })
}

pub(super) fn encode_reply<T: Serialize>(reply: &T) -> Response {
    match codec::encode(reply) {
        Ok(bytes) => ([(header::CONTENT_TYPE, CODEC_CONTENT_TYPE)], bytes).into_response(),
        Err(error) => {
            warn!(error = %error, "failed to encode raft reply");
            (StatusCode::INTERNAL_SERVER_ERROR, "failed to encode reply").into_response()
        }
    }
}
