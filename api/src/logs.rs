//! `GET /api/v1/jobs/{id}/log`.

use serde::Deserialize;

/// Query parameters of `GET /api/v1/jobs/{id}/log`.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Stream output until the attempt ends.
    #[serde(default)]
    pub follow: bool,
    /// Serve only this node's file (used between nodes).
    #[serde(default)]
    pub local: bool,
    /// The attempt whose output to show; the current one when absent.
    pub attempt: Option<u32>,
}
