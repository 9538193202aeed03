//! The body of every error answer, whatever the endpoint.

use serde::{Deserialize, Serialize};

/// `{"error": "..."}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}
