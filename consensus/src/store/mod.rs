//! openraft storage on sled: the Raft log, the vote and the state machine's snapshots in
//! one sled database per node. This is the only code that touches sled.
//!
//! - `open`: opens the database and returns the two halves openraft needs.
//! - `keys`: the tree names and key layout, defined once.
//! - `log`: [`LogStore`], openraft's `RaftLogStorage` (log, vote, committed pointer).
//! - `group_commit`: the flusher that makes the log store's writes durable, one flush for
//!   every write waiting.
//! - `committed`: the committed index as written and as on disk, so that the state
//!   machine never shows an entry whose committed index a crash could lose.
//! - `state_machine`: [`StateMachineStore`], openraft's `RaftStateMachine` over the
//!   in-memory [`State`](crate::state::State), and the read API the node uses.
//! - `snapshot`: the current snapshot in sled and the format of its data.
//! - `error`: [`StoreError`] and its translation into openraft's `StorageError`.
//!
//! ```text
//!  openraft ── append / vote / truncate / purge ──> LogStore ──> trees log, meta ─┐
//!     │                                           (flush before acknowledging)   │
//!     └── apply / snapshot ──> StateMachineStore ──> tree snapshot ──────────────┴─> one sled Db
//!          (committed id made durable first) │ State in memory  (flush before current)
//!                                └─> read(|state| ..) for the rest of the node
//! ```
//!
//! Every stored value goes through [`codec`](crate::codec) and starts with its format
//! version.

mod committed;
mod error;
mod group_commit;
mod keys;
mod log;
mod open;
mod snapshot;
mod state_machine;

pub use self::error::StoreError;
pub use self::log::LogStore;
pub use self::open::{open, CACHE_CAPACITY_BYTES};
pub use self::snapshot::check_snapshot;
pub use self::state_machine::StateMachineStore;
