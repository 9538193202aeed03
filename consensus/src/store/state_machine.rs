//! The state machine store: the CI [`State`] in memory, made durable by snapshots.
//!
//! Applying an entry writes nothing to disk. After a restart the state is the last
//! snapshot's, and openraft re-applies the committed entries after it (the log store keeps
//! the committed log id for that), before `Raft::new` returns. So `applied_state()` right
//! after [`open`](super::open) is the snapshot's last log id and membership, not the last
//! entry applied before the restart.
//!
//! Reads never go back in time across a crash: before a batch of entries is applied (and
//! so before anyone can read its effect), the committed log id that covers it is made
//! durable, by a flush unless an earlier one already covered it (see
//! [`CommittedIndex`]). A restarted node therefore re-applies at least every entry it
//! had shown.
//!
//! Locking: one `std::sync::RwLock` guards the state and the applied pointers together.
//! It is never held across an `.await`. `apply` holds the write lock for one batch of
//! entries; building a snapshot encodes the state under the read lock, which is the
//! consistent copy the snapshot needs.

use std::io::Cursor;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use tracing::{debug, instrument, trace};

use super::committed::CommittedIndex;
use super::error::{storage_error, StoreError};
use super::group_commit::GroupCommit;
use super::snapshot::{Payload, Replace, SnapshotStore};
use crate::command::Reply;
use crate::state::State;
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// The state machine store. Clones share the same state; a clone is also the snapshot
/// builder.
#[derive(Clone)]
pub struct StateMachineStore {
    applied: Arc<RwLock<Applied>>,
    snapshots: SnapshotStore,
    /// Flushes the database (the log store's flusher, shared).
    group_commit: GroupCommit,
    /// The committed index the log store writes; made durable before entries apply.
    committed: Arc<CommittedIndex>,
}

/// Everything the applied entries have produced, kept together under one lock.
#[derive(Default)]
struct Applied {
    state: State,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

impl From<Payload<State>> for Applied {
    fn from(payload: Payload<State>) -> Self {
        Applied {
            state: payload.state,
            last_applied: payload.last_applied,
            last_membership: payload.last_membership,
        }
    }
}

impl StateMachineStore {
    /// Starts from the current snapshot in `snapshots`, or from the empty state.
    /// `group_commit` and `committed` are the log store's.
    pub(super) fn load(
        snapshots: SnapshotStore,
        group_commit: GroupCommit,
        committed: Arc<CommittedIndex>,
    ) -> Result<StateMachineStore, StoreError> {
        let applied = match snapshots.load()? {
            Some((meta, data)) => Applied::from(Payload::decode_for(&meta, &data)?),
            None => Applied::default(),
        };
        Ok(StateMachineStore {
            applied: Arc::new(RwLock::new(applied)),
            snapshots,
            group_commit,
            committed,
        })
    }

    /// Returns once the committed log id covering the entry at `index` is on disk.
    /// openraft saves that id before it applies the entry, so one flush is enough, and
    /// none is needed when an earlier flush already covered it (entries re-applied at
    /// start, or a batch whose id an append's flush wrote). An entry applied with no
    /// committed id saved for it (storage tests do that) is flushed each time.
    async fn make_committed_durable(&self, index: u64) -> Result<(), StoreError> {
        if self.committed.is_durable(index) {
            return Ok(());
        }
        let covered = self.committed.covered_by_next_flush();
        let started = Instant::now();
        self.group_commit.flush().await?;
        self.committed.flushed(covered);
        trace!(
            log_index = index,
            elapsed_us = started.elapsed().as_micros() as u64,
            "committed id flushed"
        );
        Ok(())
    }

    /// Runs `f` on the current state. Keep `f` short: entries are not applied meanwhile.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.read_applied().state)
    }

    /// The log id of the last entry applied (or of the snapshot the state came from).
    pub fn last_applied(&self) -> Option<LogId> {
        self.read_applied().last_applied
    }

    // A panic while the lock is held can only come from a bug in the state machine, and
    // openraft stops the node when its state machine task dies; the data behind a poisoned
    // lock is still the best there is for readers.
    fn read_applied(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_applied(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    #[instrument(level = "debug", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, data) = {
            let applied = self.read_applied();
            let data = Payload {
                last_applied: applied.last_applied,
                last_membership: applied.last_membership.clone(),
                state: &applied.state,
            }
            .encode()
            .map_err(storage_error(|cause| StorageIOError::write_snapshot(None, cause)))?;
            let snapshot_id = self
                .snapshots
                .new_id(applied.last_applied.as_ref())
                .map_err(storage_error(|cause| StorageIOError::write_snapshot(None, cause)))?;
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.last_membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        let signature = meta.signature();
        self.snapshots.save(&meta, &data, Replace::IfNotOlder).await.map_err(storage_error(
            |cause| StorageIOError::write_snapshot(Some(signature), cause),
        ))?;
        debug!(
            snapshot_id = %meta.snapshot_id,
            log_index = meta.last_log_id.map(|log_id| log_id.index),
            bytes = data.len(),
            "snapshot built"
        );
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.read_applied();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.make_committed_durable(last.log_id.index)
                .await
                .map_err(storage_error(StorageIOError::write))?;
        }
        let mut replies = Vec::with_capacity(entries.len());
        let mut applied = self.write_applied();
        for entry in entries {
            trace!(log_index = entry.log_id.index, "apply");
            let reply = match entry.payload {
                EntryPayload::Blank => Reply::None,
                EntryPayload::Normal(command) => applied.state.apply(&command),
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Reply::None
                }
            };
            applied.last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    #[instrument(
        level = "debug",
        skip_all,
        fields(log_index = meta.last_log_id.map(|log_id| log_id.index))
    )]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let signature = meta.signature();
        let data = snapshot.into_inner();
        let payload = Payload::decode_for(meta, &data).map_err(storage_error(|cause| {
            StorageIOError::read_snapshot(Some(signature.clone()), cause)
        }))?;
        self.snapshots.save(meta, &data, Replace::Always).await.map_err(storage_error(
            |cause| StorageIOError::write_snapshot(Some(signature), cause),
        ))?;
        *self.write_applied() = Applied::from(payload);
        debug!(snapshot_id = %meta.snapshot_id, bytes = data.len(), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self
            .snapshots
            .load()
            .map_err(storage_error(|cause| StorageIOError::read_snapshot(None, cause)))?;
        Ok(current.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
