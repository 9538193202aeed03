//! Eventide's replicated core: everything that Raft replicates, and nothing else.
//!
//! - `types`: ids, node info and the openraft type configuration.
//! - `command`: the log entries (commands) and the state machine's replies.
//! - `state`: the CI state machine, pure and deterministic, with its queries.
//! - `auth`: the cluster secret; signing and checking internal RPC (HMAC-SHA256), and
//!   sealing the secret store's values (XChaCha20-Poly1305).
//! - `codec`: the only place that turns values into bytes (versioned, size-limited).
//! - `store`: sled-backed openraft log storage, state machine and snapshots.
//! - `network`: internal RPC over HTTP (`RpcClient`, the `Codec` adapter), and Raft's
//!   client (`RaftNetworkFactory`) and server routes on it.
//! - `testing` (feature `testsuite`): in-process Raft nodes for tests and benchmarks.
//! - `timing`: heartbeat and election timeouts, turned into an openraft `Config`.
//!
//! ```text
//!  proposer ── Command ──> Raft (openraft) ── append ──> store::LogStore (sled, fsync)
//!                              │   ▲                                     │
//!                network::client   network::server <── other nodes       │ committed
//!                              ▼                                         ▼
//!                       other nodes              store::StateMachine ── State::apply ─> Reply
//!                                                       │
//!                                                  snapshots (codec) <─> sled
//! ```

pub mod auth;
pub mod codec;
pub mod command;
pub mod network;
pub mod runtime;
pub mod state;
pub mod store;
#[cfg(feature = "testsuite")]
pub mod testing;
pub mod timing;
pub mod types;

pub use command::{
    Command, Observe, ObservedCommit, Outcome, Refusal, Reply, TestSummary, Verdict,
};
pub use state::{ForgeKind, Job, JobFilter, JobStatus, Limits, QueueCounts, RepoSettings, State};
pub use timing::RaftTiming;
pub use types::{BuildId, CommitId, JobId, NodeId, NodeInfo, RepoId, Timestamp, TypeConfig};
