//! The observer role (leader only): turns pushes to watched repositories into jobs.
//!
//! Each round of a repository fetches it into this node's bare mirror, compares the
//! branch heads with the replicated cursors, and proposes one `Observe` per moved branch.
//! The cursor is a compare-and-set in the replicated state, so a round that races another
//! leader, or is cut short by a failover, is refused or repeated, never applied twice:
//! the next round simply starts again from the replicated cursors. Each repository's
//! rounds run on their own, so one slow or dead upstream never delays another.
//!
//! - `plan`: the pure decision, [`plan_branches`](plan::plan_branches).
//! - `refusals`: the observations the state refused, not proposed again.
//! - `driver`: the rounds on the leader, one task per repository; [`Observer`] holds
//!   only the handles it uses (Raft view, replica, writer, wake-up, health).
//!
//! ```text
//!  poll interval / notify ──> start rounds (leader only)
//!     per repo, one task:  spawn_blocking { fetch mirror, heads, plan_branches, labels }
//!                            └──> Observe per branch (unless refused before)
//!                                   ──> Writer ──> Raft ──> cursor + jobs
//! ```

mod driver;
mod plan;
mod refusals;

pub use driver::{Observer, ObserverHandles, ObserverSettings};
