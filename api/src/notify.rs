//! `POST /api/v1/notify`.

use serde::{Deserialize, Serialize};

/// The answer of `POST /api/v1/notify`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NotifyDoc {
    /// The name of the node whose observer was woken.
    pub observer: String,
}

/// The answer of `POST /api/v1/hooks/{forge}` to a delivery it accepted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HookDoc {
    pub result: HookResult,
    /// The watched repositories the delivery is for.
    pub repos: Vec<String>,
}

/// What became of a webhook delivery.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HookResult {
    /// A push: an observer round of the repositories was asked for (`202`).
    Accepted,
    /// A delivery id seen before: nothing done (`200`).
    Repeated,
    /// A tag, a branch the repository's filter leaves out, or another event (`202`).
    Ignored,
    /// A `ping` (`200`).
    Pong,
}

impl HookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HookResult::Accepted => "accepted",
            HookResult::Repeated => "repeated",
            HookResult::Ignored => "ignored",
            HookResult::Pong => "pong",
        }
    }
}
