//! `GET|POST /api/v1/repos` and `DELETE /api/v1/repos/{id}`.

use serde::{Deserialize, Serialize};

/// A watched repository.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepoDoc {
    pub id: String,
    pub url: String,
    /// Milliseconds since the Unix epoch.
    pub added_at: u64,
}

/// The body of `POST /api/v1/repos`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AddRepo {
    pub url: String,
}

/// The answer of `DELETE /api/v1/repos/{id}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RemovedRepoDoc {
    pub id: String,
    pub url: String,
    /// The jobs of the repository that were queued or running, now cancelled.
    pub cancelled: Vec<u64>,
}
