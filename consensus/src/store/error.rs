//! The store's own error, and its translation into openraft's `StorageError`.
//!
//! Inside the store every failure is a [`StoreError`] that says what failed. At the
//! openraft boundary it becomes the cause of a `StorageIOError` whose subject and verb
//! (vote/logs/snapshot, read/write) the calling trait method chooses.

use std::path::PathBuf;

use openraft::{AnyError, StorageIOError};

use crate::codec::CodecError;
use crate::types::{NodeId, StorageError};

/// Why the store could not open or could not read or write what it keeps.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to open database at {path}")]
    OpenDatabase {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("failed to open tree {tree}")]
    OpenTree {
        tree: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("failed to {operation}")]
    Database {
        /// What was being done, such as "read the vote" or "flush the database".
        operation: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("failed to encode {value}")]
    Encode {
        value: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("failed to decode {value}")]
    Decode {
        value: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("the store was closed before its writes were flushed")]
    ClosedBeforeFlush,
    #[error("log key {key:?} is not a log index")]
    BadLogKey { key: Vec<u8> },
    #[error("log key {key} holds the entry for index {index}")]
    MisplacedEntry { key: u64, index: u64 },
    #[error("snapshot has meta but no data")]
    SnapshotWithoutData,
    #[error("snapshot data does not match its meta: {field} differs")]
    SnapshotMismatch { field: &'static str },
}

impl StoreError {
    pub(super) fn database(operation: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
        move |source| StoreError::Database { operation, source }
    }

    pub(super) fn encode(value: &'static str) -> impl FnOnce(CodecError) -> StoreError {
        move |source| StoreError::Encode { value, source }
    }

    pub(super) fn decode(value: &'static str) -> impl FnOnce(CodecError) -> StoreError {
        move |source| StoreError::Decode { value, source }
    }
}

/// Turns a store error into openraft's, with the subject and verb chosen by `wrap` (one
/// of `StorageIOError`'s constructors, such as `StorageIOError::write_logs`).
pub(super) fn storage_error(
    wrap: impl FnOnce(AnyError) -> StorageIOError<NodeId>,
) -> impl FnOnce(StoreError) -> StorageError {
    move |error| StorageError::from(wrap(AnyError::new(&error)))
}
