//! `POST /api/v1/notify`.

use serde::{Deserialize, Serialize};

/// The answer of `POST /api/v1/notify`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NotifyDoc {
    /// The name of the node whose observer was woken.
    pub observer: String,
}
