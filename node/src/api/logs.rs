//! `GET /api/v1/jobs/{id}/log`: a job's output from any node. The runner's own file is
//! served when this node ran the job; otherwise the request is passed to the runner
//! (`?local=true` there); if the runner cannot be reached, the tail kept in the
//! replicated result is served. `?follow=true` streams until the attempt ends.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use eventide_api::LogQuery;
use eventide_consensus::auth::Secret;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{JobId, NodeId};

use super::auth::with_token;
use super::extract::{ApiPath, ApiQuery};
use super::ApiError;
use crate::gossip::Gossip;
use crate::joblog::{log_path, RunningJobs};
use crate::raft_view::RaftView;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most read from a log file per chunk.
const CHUNK: usize = 64 * 1024;

/// What the log route uses.
pub struct LogsState {
    /// This node: a job it ran is served from its own file.
    pub id: NodeId,
    /// Holds this node's job logs.
    pub data_dir: PathBuf,
    /// The token of requests passed to the runner.
    pub secret: Option<Secret>,
    /// Finds the runner's address.
    pub raft: RaftView,
    /// Finds a client runner's address, which the Raft membership does not hold.
    pub gossip: Arc<Gossip>,
    pub state_machine: StateMachineStore,
    /// The attempts this node's runner is writing the log of now.
    pub running: Arc<RunningJobs>,
}

pub async fn get(
    State(api): State<Arc<LogsState>>,
    ApiPath(id): ApiPath<u64>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let job = JobId(id);
    if query.local {
        // Asked by a server for the file of a job this node ran: the answer comes from
        // the file alone, since a client's replica does not know the job.
        if let Some(attempt) = query.attempt {
            let path = log_path(&api.data_dir, job, attempt);
            if path.exists() {
                return Ok(text(stream_file(
                    api.running.clone(),
                    path,
                    job,
                    attempt,
                    query.follow,
                )));
            }
        }
    }
    let found = api.state_machine.read(|state| {
        state.job(job).map(|j| {
            let result = j.result.as_ref();
            (
                j.attempt,
                j.runner,
                result.map(|r| r.output_tail.clone()).unwrap_or_default(),
                result.is_some_and(|r| r.output_pruned),
                result.and_then(|r| r.message.clone()),
            )
        })
    });
    let (current_attempt, runner, tail, pruned, message) =
        found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown job {id}")))?;
    let attempt = query.attempt.unwrap_or(current_attempt);
    let path = log_path(&api.data_dir, job, attempt);
    if query.follow && runner == Some(api.id) {
        // Assigned here but not started yet: the log file comes once the checkout is
        // done; a follower waits for it rather than get the empty tail of a running job.
        let me = api.id;
        let pending = || {
            api.state_machine.read(|state| {
                state.job(job).is_some_and(|j| {
                    j.attempt == attempt && j.runner == Some(me) && j.result.is_none()
                })
            })
        };
        while !path.exists() && pending() {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
    if path.exists() {
        return Ok(text(stream_file(api.running.clone(), path, job, attempt, query.follow)));
    }
    if query.local {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no log of job {id} on this node"),
        ));
    }
    if let Some(runner) = runner.filter(|r| *r != api.id) {
        if let Some(response) = proxy(&api, runner, id, attempt, query.follow).await {
            return Ok(response);
        }
    }
    let body = if pruned {
        "eventide: the output of this old job is no longer kept\n".to_owned()
    } else if tail.is_empty() {
        message.map(|m| format!("eventide: {m}\n")).unwrap_or_default()
    } else {
        tail
    };
    Ok(text(Body::from(body)))
}

fn text(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Streams a local log file; with `follow`, keeps reading until the attempt is over.
fn stream_file(
    running: Arc<RunningJobs>,
    path: PathBuf,
    job: JobId,
    attempt: u32,
    follow: bool,
) -> Body {
    let state = (0u64, false);
    let stream = futures_util::stream::unfold(state, move |(offset, done)| {
        let running = running.clone();
        let path = path.clone();
        async move {
            if done {
                return None;
            }
            loop {
                // Whether the attempt was over before reading: then one more read drains
                // everything it wrote.
                let over = !follow || !running.contains(job, attempt);
                let read = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || read_from(&path, offset)).await
                };
                let chunk = match read {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(error)) => return Some((Err(error), (offset, true))),
                    Err(join) => return Some((Err(std::io::Error::other(join)), (offset, true))),
                };
                if !chunk.is_empty() {
                    let next = offset + chunk.len() as u64;
                    return Some((Ok(Bytes::from(chunk)), (next, false)));
                }
                if over {
                    return None;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    });
    Body::from_stream(stream)
}

fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk = Vec::with_capacity(CHUNK);
    file.take(CHUNK as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

/// Passes the request to the node that ran the job, streaming its answer back.
async fn proxy(
    api: &LogsState,
    runner: NodeId,
    id: u64,
    attempt: u32,
    follow: bool,
) -> Option<Response> {
    let addr = match api.raft.node_addr(runner) {
        Some(addr) => addr,
        // A client's runner is no Raft member: gossip knows where it is.
        None => api.gossip.members().await.into_iter().find(|m| m.id == runner)?.addr.to_string(),
    };
    let url =
        format!("http://{addr}/api/v1/jobs/{id}/log?local=true&attempt={attempt}&follow={follow}");
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(1)).build().ok()?;
    let request = with_token(client.get(url), api.secret.as_ref());
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(text(super::proxy::streamed(response)))
}
