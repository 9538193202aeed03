//! The committed log index: as last written, and as known to be on disk.
//!
//! openraft saves the committed log id (`save_committed`) before it hands the entries up
//! to it to the state machine, and after a restart it re-applies the log up to the saved
//! id before anything reads the state. The log store writes that id without flushing (a
//! flush there would hold up the Raft core on every commit); the state machine makes it
//! durable instead, before an entry becomes visible to readers, and only when no earlier
//! flush already covered it. So a node never shows a state newer than the one it
//! restarts with: the applied index it serves is at most its durable committed index.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::LogId;

/// Shared by the log store (which writes the committed id) and the state machine store
/// (which waits for it to be durable). Indexes are stored plus one, so that 0 means none.
#[derive(Debug, Default)]
pub(super) struct CommittedIndex {
    written: AtomicU64,
    durable: AtomicU64,
}

fn encode(log_id: Option<&LogId>) -> u64 {
    log_id.map_or(0, |log_id| log_id.index.saturating_add(1))
}

impl CommittedIndex {
    /// Records the id found on disk when the store was opened: written and durable.
    pub(super) fn found_on_disk(&self, committed: Option<&LogId>) {
        self.written(committed);
        self.flushed(encode(committed));
    }

    /// Records that `committed` has been written to sled (not necessarily flushed).
    pub(super) fn written(&self, committed: Option<&LogId>) {
        self.written.fetch_max(encode(committed), Ordering::Release);
    }

    /// What a flush starting now makes durable: read it before flushing.
    pub(super) fn covered_by_next_flush(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records that a flush made everything up to `covered` (from
    /// [`CommittedIndex::covered_by_next_flush`]) durable.
    pub(super) fn flushed(&self, covered: u64) {
        self.durable.fetch_max(covered, Ordering::Release);
    }

    /// True if the durable committed index covers the entry at `index`.
    pub(super) fn is_durable(&self, index: u64) -> bool {
        self.durable.load(Ordering::Acquire) > index
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::types::NodeId;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, NodeId(1)), index)
    }

    #[test]
    fn an_index_is_durable_only_once_a_flush_covered_its_committed_id() {
        let committed = CommittedIndex::default();
        committed.found_on_disk(Some(&log_id(4)));
        assert!(committed.is_durable(4));
        assert!(!committed.is_durable(5));

        committed.written(Some(&log_id(7)));
        assert!(!committed.is_durable(5), "written is not durable");
        let covered = committed.covered_by_next_flush();
        committed.written(Some(&log_id(9)));
        committed.flushed(covered);
        assert!(committed.is_durable(7));
        assert!(!committed.is_durable(8), "written after the flush started");

        // An older flush finishing late never moves the durable index back.
        committed.flushed(encode(Some(&log_id(2))));
        assert!(committed.is_durable(7));
        assert!(!CommittedIndex::default().is_durable(0));
    }
}
