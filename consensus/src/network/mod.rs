//! Internal RPC over HTTP. `rpc` owns the wire of every call between nodes (the client,
//! its typed errors and failure counts, and the axum adapter that decodes requests and
//! encodes replies); the rest is Raft's use of it: `client` is openraft's
//! `RaftNetworkFactory` (what a node uses to reach its peers), `server` is the axum
//! routes a node mounts to answer them,
//! `plausible` holds the pure checks that refuse what no correct peer sends (terms,
//! indexes, snapshot offsets), `forward` lets any node accept a write by forwarding it
//! to the leader, and `batch` proposes concurrent writes together as one entry (group
//! commit).
//!
//! Bodies are codec-encoded (versioned, size-limited bincode). A response body is the
//! encoded `Result<Response, RaftError>` of the call on the remote node, so a remote
//! Raft error travels back as a value; transport problems are HTTP statuses.
//!
//! ```text
//!  openraft (leader) ── HttpConnection::append_entries ── POST /internal/raft/append ──┐
//!                                                                                      ▼
//!  openraft (follower) <── raft.append_entries(req) <── server::append ── codec::decode
//! ```

mod batch;
mod client;
mod forward;
mod plausible;
mod rpc;
mod server;

pub use batch::{Proposer, MAX_BATCH_BYTES, MAX_BATCH_COMMANDS, MAX_IN_FLIGHT};
pub use client::{HttpConnection, HttpNetwork};
pub use forward::{LeaderHint, WriteError, Writer};
pub use plausible::{MAX_LOG_INDEX, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_ID_BYTES, MAX_TERM};
pub use rpc::{decode_request, Codec, CodecReply, RpcClient, RpcError, RpcErrors, RpcService};
pub use server::raft_routes;

/// Path of the append-entries RPC (heartbeats included).
pub const APPEND_PATH: &str = "/internal/raft/append";
/// Path of the vote RPC.
pub const VOTE_PATH: &str = "/internal/raft/vote";
/// Path of the install-snapshot RPC (one chunk per call).
pub const SNAPSHOT_PATH: &str = "/internal/raft/snapshot";

/// Path of a write forwarded from a follower to the leader.
pub const WRITE_PATH: &str = "/internal/raft/write";

/// The content type of codec-encoded bodies.
pub const CODEC_CONTENT_TYPE: &str = "application/x-eventide-codec";
