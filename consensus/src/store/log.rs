//! The Raft log, the vote and the committed pointer, in sled.
//!
//! Durability: every write that openraft treats as durable is made durable by a flush of
//! the whole database (sled's background flush alone loses writes on a crash), through the
//! group commit of [`group_commit`](super::group_commit). `append` writes its entries, so
//! they are readable when it returns, and queues its `LogFlushed` callback; the flusher
//! completes it after a flush that covers those entries, one flush for every append
//! waiting. A vote, a truncation and a purge pointer are flushed before the method returns.
//! Every method makes its writes in sled before it returns, and callbacks and flushes
//! complete in the order they were queued, so writes take effect, and are reported, in
//! the order they were issued.
//!
//! No holes: an append is one atomic batch of consecutive entries after the last one; a
//! truncation is one atomic batch removing a suffix; a purge first makes the new
//! `last_purged` durable and only then removes the entries it covers, so after a crash
//! the log may still hold purged entries (they are ignored and swept on open) but never
//! lacks one that is not purged.
//!
//! A purge removes its entries in the background, a few at a time (openraft allows a purge
//! to finish later, and never reads purged entries). openraft purges after each snapshot,
//! thousands of entries at once: removed in one batch, which holds sled's write lock for
//! the whole process, they took 40-330 ms under load, during which the node's Raft core
//! waited, and the other nodes took the silence for a dead leader.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, instrument, warn};

use super::committed::CommittedIndex;
use super::error::{storage_error, StoreError};
use super::group_commit::GroupCommit;
use super::keys;
use crate::codec;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The log store: cheap to clone (two sled trees and a handle on the flusher), and every
/// clone sees the same data, so a clone serves as the log reader of each replication task.
#[derive(Clone)]
pub struct LogStore {
    /// Entries keyed by [`keys::log_key`]. Shared, so that a background sweep can hold it
    /// weakly and stop once the store is dropped.
    log: Arc<sled::Tree>,
    /// The vote, the last purged log id and the committed log id.
    meta: sled::Tree,
    /// Makes writes durable, one flush for all that wait.
    group_commit: GroupCommit,
    /// The committed index written and on disk, shared with the state machine store.
    committed: Arc<CommittedIndex>,
}

impl LogStore {
    /// Wraps the trees of an open database and sweeps entries left behind by a purge that a
    /// crash interrupted. `group_commit` flushes this database.
    pub(super) fn new(
        log: sled::Tree,
        meta: sled::Tree,
        group_commit: GroupCommit,
    ) -> Result<LogStore, StoreError> {
        let committed = Arc::new(CommittedIndex::default());
        let store = LogStore { log: Arc::new(log), meta, group_commit, committed };
        let on_disk =
            store.read_meta::<Option<LogId>>(keys::COMMITTED, "the committed log id")?.flatten();
        store.committed.found_on_disk(on_disk.as_ref());
        if let Some(purged) =
            store.read_meta::<LogId>(keys::LAST_PURGED, "the last purged log id")?
        {
            store.remove_through(purged.index)?;
        }
        Ok(store)
    }

    /// The committed index this store writes, for the state machine store.
    pub(super) fn committed_index(&self) -> Arc<CommittedIndex> {
        self.committed.clone()
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        name: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.meta.get(key).map_err(StoreError::database("read a log pointer"))?
        else {
            return Ok(None);
        };
        codec::decode_stored(&bytes).map(Some).map_err(StoreError::decode(name))
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        name: &'static str,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(value).map_err(StoreError::encode(name))?;
        self.meta.insert(key, bytes).map_err(StoreError::database("write a log pointer"))?;
        Ok(())
    }

    /// Writes and fsyncs everything written so far, in every tree (they share one page
    /// cache), after completing the callbacks of earlier appends.
    async fn flush(&self) -> Result<(), StoreError> {
        self.group_commit.flush().await
    }

    fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<Entry, StoreError> {
        let index =
            keys::log_index(key).ok_or_else(|| StoreError::BadLogKey { key: key.to_vec() })?;
        let entry: Entry =
            codec::decode_stored(bytes).map_err(StoreError::decode("a log entry"))?;
        if entry.log_id.index != index {
            return Err(StoreError::MisplacedEntry { key: index, index: entry.log_id.index });
        }
        Ok(entry)
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StoreError> {
        let key_bound = |bound: Bound<&u64>| bound.map(|index| keys::log_key(*index));
        let range = (key_bound(range.start_bound()), key_bound(range.end_bound()));
        let mut entries = Vec::new();
        for item in self.log.range(range) {
            let (key, bytes) = item.map_err(StoreError::database("read log entries"))?;
            entries.push(Self::decode_entry(&key, &bytes)?);
        }
        Ok(entries)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StoreError> {
        let Some((key, bytes)) =
            self.log.last().map_err(StoreError::database("read the last entry"))?
        else {
            return Ok(None);
        };
        Ok(Some(Self::decode_entry(&key, &bytes)?.log_id))
    }

    /// Removes, in one batch, every entry with an index in `range`.
    fn remove_range(&self, range: (Bound<u64>, Bound<u64>)) -> Result<usize, StoreError> {
        let key_bound = |bound: Bound<u64>| bound.map(keys::log_key);
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for item in self.log.range((key_bound(range.0), key_bound(range.1))).keys() {
            batch.remove(item.map_err(StoreError::database("list log entries to remove"))?);
            removed += 1;
        }
        self.log.apply_batch(batch).map_err(StoreError::database("remove log entries"))?;
        Ok(removed)
    }

    fn remove_through(&self, index: u64) -> Result<usize, StoreError> {
        self.remove_range((Bound::Unbounded, Bound::Included(index)))
    }

    /// Removes the entries up to `index` in a blocking thread, [`SWEEP_CHUNK`] at a time,
    /// each removal on its own so that no lock is held across many. Entries left behind
    /// (the store was dropped or the sweep failed) are swept on the next open.
    fn sweep_through(&self, index: u64) {
        let log = Arc::downgrade(&self.log);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || sweep(&log, index))),
            Err(_) => sweep(&log, index),
        }
    }
}

/// How many purged entries a sweep removes before it checks that the store is still open.
const SWEEP_CHUNK: usize = 256;

fn sweep(log: &Weak<sled::Tree>, index: u64) {
    let mut removed = 0;
    loop {
        // Holding the tree only for one chunk lets a dropped store release the database.
        let Some(log) = log.upgrade() else {
            debug!(removed, "store dropped; the rest of the purged entries are swept on open");
            return;
        };
        match sweep_chunk(&log, index) {
            Ok(count) => {
                removed += count;
                if count < SWEEP_CHUNK {
                    break;
                }
            }
            Err(error) => {
                warn!(%error, removed, "failed to remove purged entries; they are swept on open");
                return;
            }
        }
    }
    debug!(removed, log_index = index, "purged entries removed");
}

fn sweep_chunk(log: &sled::Tree, index: u64) -> Result<usize, StoreError> {
    let keys = log
        .range(..=keys::log_key(index))
        .keys()
        .take(SWEEP_CHUNK)
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::database("list purged entries"))?;
    for key in &keys {
        log.remove(key).map_err(StoreError::database("remove a purged entry"))?;
    }
    Ok(keys.len())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(range).map_err(storage_error(StorageIOError::read_logs))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self
            .read_meta::<LogId>(keys::LAST_PURGED, "the last purged log id")
            .map_err(storage_error(StorageIOError::read_logs))?;
        let last_in_log =
            self.last_entry_log_id().map_err(storage_error(StorageIOError::read_logs))?;
        // After a purge beyond the last entry (or of everything) the log is empty and the
        // last log id is the purged one.
        let last_log_id = std::cmp::max(last_in_log, last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[instrument(level = "debug", skip_all, fields(term = vote.leader_id().term))]
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(keys::VOTE, vote, "the vote")
            .map_err(storage_error(StorageIOError::write_vote))?;
        self.flush().await.map_err(storage_error(StorageIOError::write_vote))?;
        debug!(%vote, "vote saved");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(keys::VOTE, "the vote").map_err(storage_error(StorageIOError::read_vote))
    }

    /// Not flushed here, which would hold up the Raft core on every commit: the state
    /// machine store flushes it before the entries it covers become visible to readers
    /// (see [`CommittedIndex`]), so that after a crash the node re-applies at least every
    /// entry whose effect it has shown.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(keys::COMMITTED, &committed, "the committed log id")
            .map_err(storage_error(StorageIOError::write))?;
        self.committed.written(committed.as_ref());
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let stored = self
            .read_meta::<Option<LogId>>(keys::COMMITTED, "the committed log id")
            .map_err(storage_error(StorageIOError::read))?;
        Ok(stored.flatten())
    }

    #[instrument(level = "debug", skip_all)]
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut first = None;
        let mut last = None;
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(StoreError::encode("a log entry")).map_err(
                storage_error(|cause| StorageIOError::write_log_entry(entry.log_id, cause)),
            )?;
            batch.insert(&keys::log_key(entry.log_id.index), bytes);
            first.get_or_insert(entry.log_id.index);
            last = Some(entry.log_id.index);
        }
        self.log
            .apply_batch(batch)
            .map_err(StoreError::database("append log entries"))
            .map_err(storage_error(StorageIOError::write_logs))?;
        // Written, so readable now; durable, and reported so, after the flusher's next
        // flush.
        self.group_commit.complete_when_flushed(callback).await;
        debug!(first_index = first, log_index = last, "entries appended, flush queued");
        Ok(())
    }

    #[instrument(level = "debug", skip_all, fields(log_index = log_id.index))]
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let removed = self
            .remove_range((Bound::Included(log_id.index), Bound::Unbounded))
            .map_err(storage_error(StorageIOError::write_logs))?;
        self.flush().await.map_err(storage_error(StorageIOError::write_logs))?;
        debug!(removed, "log truncated");
        Ok(())
    }

    #[instrument(level = "debug", skip_all, fields(log_index = log_id.index))]
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The pointer first, durably: a crash between the two steps then leaves purged
        // entries behind (harmless) rather than a hole before the first kept entry.
        self.write_meta(keys::LAST_PURGED, &log_id, "the last purged log id")
            .map_err(storage_error(StorageIOError::write_logs))?;
        self.flush().await.map_err(storage_error(StorageIOError::write_logs))?;
        self.sweep_through(log_id.index);
        debug!("log purged; entries are removed in the background");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::store;
    use crate::types::NodeId;

    fn blank(index: u64) -> Entry {
        let log_id = LogId::new(CommittedLeaderId::new(1, NodeId(1)), index);
        Entry { log_id, payload: EntryPayload::Blank }
    }

    /// Opens `dir`, waiting a little if the database is still locked: after the last
    /// handle is dropped, sled's own IO threads may hold it for a few milliseconds more.
    async fn reopen(dir: &std::path::Path) -> (LogStore, store::StateMachineStore) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match store::open(dir) {
                Ok(halves) => return halves,
                Err(error) if std::time::Instant::now() > deadline => {
                    panic!("the database is still locked: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// The flusher and the purge sweep run in the background, yet dropping the store
    /// releases the database: the same runtime can open it again, and finds the log as
    /// it was left, whether or not the sweep had finished.
    #[tokio::test]
    async fn dropping_the_store_releases_the_database() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let last = 3 * SWEEP_CHUNK as u64;
        let purged = blank(last - 10).log_id;
        {
            let (mut log_store, _state_machine) = store::open(dir.path()).expect("open");
            log_store.blocking_append((1..=last).map(blank)).await.expect("append");
            log_store.save_vote(&Vote::new(1, NodeId(1))).await.expect("save vote");
            log_store.purge(purged).await.expect("purge");
        }
        let (mut log_store, _state_machine) = reopen(dir.path()).await;
        let state = log_store.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id, Some(blank(last).log_id));
        let kept = log_store.try_get_log_entries(0..=last).await.expect("entries");
        assert_eq!(kept, (purged.index + 1..=last).map(blank).collect::<Vec<_>>());
        assert_eq!(log_store.read_vote().await.expect("vote"), Some(Vote::new(1, NodeId(1))));
    }

    /// Appends from several tasks at once share flushes; every one of them completes and
    /// every entry is there afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_all_complete() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let (log_store, _state_machine) = store::open(dir.path()).expect("open");
        let mut appends = tokio::task::JoinSet::new();
        for index in 1..=200 {
            let mut log_store = log_store.clone();
            appends.spawn(async move { log_store.blocking_append([blank(index)]).await });
        }
        while let Some(done) = appends.join_next().await {
            done.expect("append task").expect("append");
        }
        let mut reader = log_store.clone();
        let entries = reader.try_get_log_entries(1..=200).await.expect("entries");
        assert_eq!(entries, (1..=200).map(blank).collect::<Vec<_>>());
    }
}
