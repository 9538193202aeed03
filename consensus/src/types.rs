//! Identities shared by every part of Eventide, and the openraft type configuration.
//!
//! All ids are newtypes so that a job id can never be passed where a node id is
//! expected. Node ids are random `u64`s chosen once per data directory; in JSON they are
//! written as strings because a `u64` does not fit a JavaScript number.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Command, Reply};

/// A node's identity: a random `u64` made on first start and kept in the data dir.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for NodeId {
    fn from(value: u64) -> Self {
        NodeId(value)
    }
}

/// A job's sequential id (1, 2, 3 …), assigned by the state machine.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A build's sequential id (1, 2, 3 …), assigned by the state machine: one per trigger
/// of a commit (a push or a rerun), holding one job per step and matrix cell.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BuildId(pub u64);

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A watched repository's sequential id, assigned by the state machine.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RepoId(pub u64);

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
///
/// Only [`CommitId::try_new`] builds one, so every `CommitId` in the state is well formed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// Validates and normalises (to lowercase) a full hex commit id.
    pub fn try_new(hex: &str) -> Result<Self, InvalidCommitId> {
        let well_formed =
            matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if well_formed {
            Ok(CommitId(hex.to_ascii_lowercase()))
        } else {
            Err(InvalidCommitId(hex.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CommitId {
    type Error = InvalidCommitId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        CommitId::try_new(&value)
    }
}

impl From<CommitId> for String {
    fn from(value: CommitId) -> Self {
        value.0
    }
}

/// The error for a string that is not a full hex commit id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a full hex commit id: {0:?}")]
pub struct InvalidCommitId(pub String);

/// Milliseconds since the Unix epoch, always chosen by the proposer of a command and
/// never read from a clock inside the state machine.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// What Raft membership records about a node: where to dial it and what to call it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The advertised `HOST:PORT` (HTTP for Raft RPC, UDP for gossip).
    pub addr: String,
    /// A human name, defaulting to the host name.
    pub name: String,
}

impl NodeInfo {
    pub fn new(addr: impl Into<String>, name: impl Into<String>) -> Self {
        NodeInfo { addr: addr.into(), name: name.into() }
    }
}

openraft::declare_raft_types!(
    /// Eventide's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::GatedTokio,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// The Raft handle of an Eventide node.
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeInfo>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, NodeInfo>;
pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;
pub type RpcError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, NodeInfo, RaftError<E>>;
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
pub type InstallSnapshotError = openraft::error::InstallSnapshotError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_validated_and_lowercased() {
        let upper = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
        let commit = CommitId::try_new(upper).expect("40 hex digits are a commit id");
        assert_eq!(commit.as_str(), upper.to_ascii_lowercase());
        assert_eq!(commit.short(), "abcdef01");
        assert!(CommitId::try_new(&"a".repeat(64)).is_ok());
        for bad in ["", "abc", &"g".repeat(40), &"a".repeat(41), &"a".repeat(39)] {
            assert!(CommitId::try_new(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn timestamps_never_go_negative() {
        assert_eq!(Timestamp(10).millis_since(Timestamp(4)), 6);
        assert_eq!(Timestamp(4).millis_since(Timestamp(10)), 0);
    }
}
