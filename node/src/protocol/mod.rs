//! The messages of the node's internal RPCs, shared by the roles that send and answer
//! them (and by the fuzz targets). The wire itself (signing, codec, statuses) is
//! `eventide_consensus::network::RpcClient` and its axum adapter.
//!
//! - `dispatch`: claims and lease renewals, runner to leader, and their timings.
//! - `context`: a job's fetch credentials and secrets, sealed, runner to leader, and
//!   the pure rules of what a job is given (shared with runners that read their own
//!   replica).
//! - `admit`: the gossip admission handshake and the checks of its answering side.
//! - `artifacts`: artifact files copied between nodes in checked chunks.
//!
//! ```text
//!  runner ── ClaimRequest / RenewRequest ──> dispatcher (leader)
//!  runner ── JobContextRequest ──> dispatcher (leader): answer ──> sealed values, notes
//!  node ── AdmitRequest ──> gossip peer: check_addressed ──> proof
//!  runner ── PutChunk ──> other node;  runner/API ── ReadRequest ──> holder
//! ```

pub mod admit;
pub mod artifacts;
pub mod context;
pub mod dispatch;
