//! `GET /api/v1/jobs/{id}/artifacts/{name}`: an artifact's file from any node. A server
//! looks it up in its replica and streams this node's copy, fetching (and checking) one
//! from a holder first if it has none; a client passes the request to a server.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::JobId;

use super::extract::ApiPath;
use super::ApiError;
use crate::artifacts::Artifacts;

/// What the route reads.
pub struct ArtifactFiles {
    pub state_machine: StateMachineStore,
    pub artifacts: Arc<Artifacts>,
}

/// Bytes read from the file per piece of the answer.
const PIECE: usize = 256 * 1024;

pub async fn get(
    State(files): State<Arc<ArtifactFiles>>,
    ApiPath((id, name)): ApiPath<(u64, String)>,
) -> Result<Response, ApiError> {
    let found = files.state_machine.read(|state| {
        state.job(JobId(id))?;
        let step = state.step_of(JobId(id));
        Some(step.and_then(|step| step.artifacts.iter().find(|a| a.name == name).cloned()))
    });
    let artifact = match found {
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown job {id}"))),
        Some(None) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("job {id} has no artifact {name:?}"),
            ))
        }
        Some(Some(artifact)) => artifact,
    };
    let path = files.artifacts.ensure_local(&artifact).await.map_err(|error| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("artifact {name:?}: {error}"))
    })?;
    let file_name = name.rsplit('/').next().unwrap_or("artifact").replace('"', "");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, artifact.size.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        stream_file(path),
    )
        .into_response())
}

/// The file at `path`, piece by piece, read on the blocking pool.
fn stream_file(path: PathBuf) -> Body {
    let stream = futures_util::stream::unfold(Some(0u64), move |offset| {
        let path = path.clone();
        async move {
            let offset = offset?;
            let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut file = std::fs::File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                let mut piece = Vec::with_capacity(PIECE);
                file.take(PIECE as u64).read_to_end(&mut piece)?;
                Ok(piece)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|read| read);
            match read {
                Ok(piece) if piece.is_empty() => None,
                Ok(piece) => {
                    let next = offset + piece.len() as u64;
                    Some((Ok(Bytes::from(piece)), Some(next)))
                }
                Err(error) => Some((Err(error), None)),
            }
        }
    });
    Body::from_stream(stream)
}
