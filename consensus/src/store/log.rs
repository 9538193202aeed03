//! The Raft log, the vote and the committed pointer, in sled.
//!
//! Durability: every write that openraft treats as durable is followed by a flush of the
//! whole database (sled's background flush alone loses writes on a crash). Appended
//! entries are flushed before `LogFlushed` is called, and a vote before `save_vote`
//! returns. Every method finishes its writes before it returns, and openraft calls them
//! one at a time, so writes take effect in the order they were issued.
//!
//! No holes: an append is one atomic batch of consecutive entries after the last one; a
//! truncation is one atomic batch removing a suffix; a purge first makes the new
//! `last_purged` durable and only then removes the entries it covers, so after a crash
//! the log may still hold purged entries (they are ignored and swept on open) but never
//! lacks one that is not purged.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, instrument};

use super::error::{storage_error, StoreError};
use super::keys;
use crate::codec;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The log store: cheap to clone (two sled trees), and every clone sees the same data, so
/// a clone serves as the log reader of each replication task.
#[derive(Clone)]
pub struct LogStore {
    /// Entries keyed by [`keys::log_key`].
    log: sled::Tree,
    /// The vote, the last purged log id and the committed log id.
    meta: sled::Tree,
}

impl LogStore {
    /// Wraps the trees of an open database and sweeps entries left behind by a purge that a
    /// crash interrupted.
    pub(super) fn new(log: sled::Tree, meta: sled::Tree) -> Result<LogStore, StoreError> {
        let store = LogStore { log, meta };
        if let Some(purged) =
            store.read_meta::<LogId>(keys::LAST_PURGED, "the last purged log id")?
        {
            store.remove_through(purged.index)?;
        }
        Ok(store)
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
    /// cache).
    async fn flush(&self) -> Result<(), StoreError> {
        self.log.flush_async().await.map_err(StoreError::database("flush the database"))?;
        Ok(())
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

    /// Not flushed: losing the newest committed id on a crash only means that fewer
    /// entries are re-applied on restart; the leader tells the node again.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(keys::COMMITTED, &committed, "the committed log id")
            .map_err(storage_error(StorageIOError::write))
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
        self.flush().await.map_err(storage_error(StorageIOError::write_logs))?;
        debug!(first_index = first, log_index = last, "entries appended and flushed");
        callback.log_io_completed(Ok(()));
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
        let removed =
            self.remove_through(log_id.index).map_err(storage_error(StorageIOError::write_logs))?;
        debug!(removed, "log purged");
        Ok(())
    }
}
