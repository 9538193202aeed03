//! The pure parts of `eventide-node` that other crates need to reach: the parsers of
//! input that comes from outside the process, so that the fuzz targets (in `fuzz/`) run
//! them exactly as the binary does. Everything else of the node stays private to the
//! binary (`main.rs`), which uses these modules from here.
//!
//! - `repo_config`: `.eventide.toml`, the per-repository job configuration.
//! - `dispatch_rpc`: the dispatcher's claim and renew messages between runners and the
//!   leader (codec-encoded bodies of `/internal/dispatch/*`).
//! - `units`: durations and sizes as people write them (`10m`, `512MiB`).
//! - `admit_rpc`: the gossip admission handshake's messages and the checks of its
//!   answering side (codec-encoded bodies of `/internal/gossip/v2/admit`).
//!
//! ```text
//!   repository ── .eventide.toml ──> repo_config::parse ──> RepoConfig (runner)
//!   runner ── ClaimRequest / RenewRequest (codec) ──> dispatcher (leader)
//!   node ── AdmitRequest (codec, signed) ──> gossip peer: check_request ──> proof
//! ```

#[path = "gossip/admit_rpc.rs"]
pub mod admit_rpc;
#[path = "dispatcher/rpc.rs"]
pub mod dispatch_rpc;
pub mod repo_config;
pub mod units;
