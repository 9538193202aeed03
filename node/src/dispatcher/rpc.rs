//! The dispatcher's internal RPC between runners and the leader: claim a job (long
//! poll) and renew leases. Bodies are codec-encoded; the paths live under `/internal/`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventide_consensus::auth::Signer;
use eventide_consensus::{codec, CommitId, JobId, NodeId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::warn;

pub const CLAIM_PATH: &str = "/internal/dispatch/claim";
pub const RENEW_PATH: &str = "/internal/dispatch/renew";

/// A runner with a free slot asks for work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub runner: NodeId,
    pub labels: Vec<String>,
    /// How long the leader may hold the request when nothing is queued.
    pub wait_ms: u64,
}

/// A job given to a runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub job: JobId,
    pub attempt: u32,
    pub repo_url: String,
    pub branch: String,
    pub commit: CommitId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimResponse {
    Job(Assignment),
    /// Nothing runnable arrived while the request was held.
    Nothing,
    /// Ask the leader instead.
    NotLeader,
}

/// A runner renews the leases of every job it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub runner: NodeId,
    pub jobs: Vec<(JobId, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenewResponse {
    /// Leases extended, except for these jobs, which the runner must stop (cancelled,
    /// requeued or given to another runner).
    Renewed {
        revoked: Vec<JobId>,
    },
    NotLeader,
}

/// Calls an internal RPC on `addr`, signed by `signer`. The binary's
/// `dispatcher::call` wraps this to count failures in its metrics.
pub async fn send<Req: Serialize, Resp: DeserializeOwned>(
    http: &reqwest::Client,
    signer: &Signer,
    addr: &str,
    path: &str,
    request: &Req,
    timeout: Duration,
) -> anyhow::Result<Resp> {
    let body = codec::encode(request)?;
    let request = signer.sign_post(http.post(format!("http://{addr}{path}")), path, &body);
    let response = request
        .header(reqwest::header::CONTENT_TYPE, eventide_consensus::network::CODEC_CONTENT_TYPE)
        .timeout(timeout)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("{addr}{path} answered {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(codec::decode(&bytes)?)
}

/// Decodes the body of a dispatcher RPC as the leader's handlers do, or gives the 400
/// answer for a malformed one (and logs why): bad input is refused, never a panic.
#[allow(clippy::result_large_err)]
pub fn decode_request<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Response> {
    codec::decode(body).map_err(|error| {
        warn!(path, error = %error, bytes = body.len(), "refused malformed dispatcher rpc");
        (StatusCode::BAD_REQUEST, format!("malformed request: {error}")).into_response()
    })
}
