//! The on-disk layout: every tree name and every key, defined once.
//!
//! ```text
//! tree "log"       [index: u64 big-endian]  -> codec(Entry)
//! tree "meta"      "vote"                   -> codec(Vote)
//!                  "last_purged"            -> codec(LogId)
//!                  "committed"              -> codec(Option<LogId>)
//! tree "snapshot"  "meta"                   -> codec(SnapshotMeta)
//!                  "data"                   -> codec(snapshot payload), see `snapshot.rs`
//! ```
//!
//! Big-endian indexes sort in sled's byte order exactly as the numbers do, so a range of
//! keys is a range of log indexes.

/// The Raft log entries.
pub(super) const LOG_TREE: &str = "log";
/// The vote and the log pointers that are not entries.
pub(super) const META_TREE: &str = "meta";
/// The current snapshot: its meta and its payload, written together in one batch.
pub(super) const SNAPSHOT_TREE: &str = "snapshot";

pub(super) const VOTE: &[u8] = b"vote";
pub(super) const LAST_PURGED: &[u8] = b"last_purged";
pub(super) const COMMITTED: &[u8] = b"committed";

pub(super) const SNAPSHOT_META: &[u8] = b"meta";
pub(super) const SNAPSHOT_DATA: &[u8] = b"data";

/// The key of the entry at `index` in the log tree.
pub(super) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index a log tree key stands for, or `None` for a key of the wrong length.
pub(super) fn log_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_like_their_indexes() {
        let indexes = [0, 1, 255, 256, 65_535, 1 << 40, u64::MAX];
        for pair in indexes.windows(2) {
            assert!(log_key(pair[0]) < log_key(pair[1]));
        }
        for index in indexes {
            assert_eq!(log_index(&log_key(index)), Some(index));
        }
        assert_eq!(log_index(b"short"), None);
    }
}
