//! `GET /api/v1/status`: the cluster as the answering node sees it (also the
//! `status --json` document).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::nodes::{NodeRef, NodeStatus};

/// The whole `status` document.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusDoc {
    /// The node that answered.
    pub node: NodeRef,
    /// The server whose replica the answer comes from: `node` itself on a server, the
    /// server it asked on a client. Absent from the answers of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<NodeRef>,
    /// The leader this node follows, or null (no quorum, election, not formed yet).
    pub leader: Option<NodeRef>,
    pub term: u64,
    pub auth: Auth,
    /// Why the node is not part of a cluster yet, if it is not.
    pub waiting: Option<String>,
    /// Voters in the current Raft membership.
    pub voters: usize,
    /// The last log index this node applied.
    pub applied_index: u64,
    pub nodes: Vec<NodeStatus>,
    pub queue: QueueStatus,
    /// Watched repositories; `error` is the observer's latest problem with one (only
    /// the leader's observer runs, so only the leader reports errors).
    pub repos: Vec<RepoStatus>,
}

/// Whether a cluster secret authenticates internal traffic: `on` or `off`.
#[derive(Serialize, Deserialize, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    On,
    Off,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::On => "on",
            Auth::Off => "off",
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Job counts by phase.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStatus {
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
}

/// A watched repository in `status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepoStatus {
    pub id: String,
    pub url: String,
    pub error: Option<String>,
    /// The forge it is watched with (newer: absent reads as `null`).
    #[serde(default)]
    pub forge: Option<crate::Forge>,
    /// The forge's last refusal of a commit status (newer: absent reads as `null`).
    #[serde(default)]
    pub forge_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_on_or_off() {
        for (auth, name) in [(Auth::On, "on"), (Auth::Off, "off")] {
            let text = serde_json::to_string(&auth).expect("serialisable");
            assert_eq!(text, format!("\"{name}\""));
            assert_eq!(auth.to_string(), name);
            assert_eq!(serde_json::from_str::<Auth>(&text).expect("parses"), auth);
        }
    }
}
