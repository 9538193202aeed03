//! Opening the database: one sled database per node, with one tree per concern.

use std::path::Path;

use super::error::StoreError;
use super::group_commit::GroupCommit;
use super::keys;
use super::log::LogStore;
use super::snapshot::SnapshotStore;
use super::state_machine::StateMachineStore;

/// sled's page cache. Several nodes may share a host (tests, demos), and sled's default
/// of 1 GiB would make each of them hold far more memory than its data needs.
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// Opens (or creates) the store in `dir` and returns its two halves for `Raft::new`.
///
/// The state machine starts from the current snapshot, if there is one. A directory can be
/// open only once at a time, even within one process; it is released when every clone of
/// both halves has been dropped (dropping also flushes).
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let database = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        // Every write that must survive a crash is flushed by the store itself (the group
        // commit, the vote, the snapshot); sled's own flusher would only wake every
        // 500 ms and fsync an unchanged file on every node that has nothing to write.
        .flush_every_ms(None)
        .open()
        .map_err(|source| StoreError::OpenDatabase { path: dir.to_path_buf(), source })?;
    let open_tree = |tree: &'static str| {
        database.open_tree(tree).map_err(|source| StoreError::OpenTree { tree, source })
    };
    let log_tree = open_tree(keys::LOG_TREE)?;
    let group_commit = GroupCommit::new(log_tree.clone());
    let log_store = LogStore::new(log_tree, open_tree(keys::META_TREE)?, group_commit.clone())?;
    let snapshots = SnapshotStore::new(open_tree(keys::SNAPSHOT_TREE)?, database.clone());
    let state_machine =
        StateMachineStore::load(snapshots, group_commit, log_store.committed_index())?;
    tracing::debug!(path = %dir.display(), recovered = database.was_recovered(), "store opened");
    Ok((log_store, state_machine))
}
