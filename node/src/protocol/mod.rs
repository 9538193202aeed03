//! The messages of the node's internal RPCs, shared by the roles that send and answer
//! them (and by the fuzz targets). The wire itself (signing, codec, statuses) is
//! `eventide_consensus::network::RpcClient` and its axum adapter.
//!
//! - `dispatch`: claims and lease renewals, runner to leader, and their timings.
//! - `admit`: the gossip admission handshake and the checks of its answering side.
//!
//! ```text
//!  runner ── ClaimRequest / RenewRequest ──> dispatcher (leader)
//!  node ── AdmitRequest ──> gossip peer: check_addressed ──> proof
//! ```

pub mod admit;
pub mod dispatch;
