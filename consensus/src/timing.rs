//! Raft timing: the few knobs that decide how fast a dead leader is replaced, turned
//! into a validated openraft `Config`.

use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// How often the leader heartbeats and how long followers wait before an election.
///
/// openraft gives every append-entries call (heartbeats included) `heartbeat` to finish,
/// so it must cover an HTTP round trip plus the follower's fsync. openraft 0.9 makes a
/// follower wait `election_max` (the leader lease) plus its own election timeout (drawn
/// once from `election_min..election_max`) after the last heartbeat before it stands,
/// and checks that on a tick every 1.5 × `heartbeat`. So a killed leader is replaced
/// after about `election_max` + the smallest survivor's timeout: with the defaults
/// (50 ms, 120–240 ms) in 0.3–0.5 s, while a leader must be silent for at least 360 ms
/// before anyone stands, which a busy 2-core machine does not fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    /// Take a snapshot (and allow log compaction) after this many applied entries.
    pub snapshot_every: u64,
    /// Time allowed for one snapshot chunk to be sent and stored.
    pub snapshot_chunk_timeout: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(120),
            election_max: Duration::from_millis(240),
            snapshot_every: 10_000,
            snapshot_chunk_timeout: Duration::from_secs(5),
        }
    }
}

/// A snapshot chunk is sent as one HTTP body, so it stays under the message limit.
const SNAPSHOT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

impl RaftTiming {
    /// The openraft configuration for these timings, validated.
    pub fn to_config(&self, cluster_name: &str) -> Result<Config, InvalidTiming> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: cluster_name.to_owned(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_min),
            election_timeout_max: millis(self.election_max),
            install_snapshot_timeout: millis(self.snapshot_chunk_timeout),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            max_in_snapshot_log_to_keep: 1_000,
            ..Config::default()
        };
        config.validate().map_err(|e| InvalidTiming { reason: e.to_string() })
    }
}

/// Timings openraft cannot work with (e.g. a heartbeat longer than the election timeout).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid raft timing: {reason}")]
pub struct InvalidTiming {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_is_a_valid_config() {
        let config = RaftTiming::default().to_config("test").expect("defaults are valid");
        assert_eq!(config.heartbeat_interval, 50);
        assert_eq!(config.election_timeout_min, 120);
        assert_eq!(config.election_timeout_max, 240);
        assert!(config.snapshot_max_chunk_size < crate::codec::MESSAGE_LIMIT as u64 / 2 + 1);
    }

    #[test]
    fn a_heartbeat_longer_than_the_election_timeout_is_refused() {
        let timing = RaftTiming { heartbeat: Duration::from_millis(200), ..RaftTiming::default() };
        assert!(timing.to_config("test").is_err());
    }
}
