//! Wall-clock time for proposers: every time stamp in a command is read here, never
//! inside the state machine.

use std::time::{SystemTime, UNIX_EPOCH};

use eventide_consensus::Timestamp;

/// Milliseconds since the Unix epoch.
pub fn now() -> Timestamp {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}
