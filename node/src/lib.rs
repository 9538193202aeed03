//! The pure parts of `eventide-node` that other crates need to reach: the parsers of
//! input that comes from outside the process, so that the fuzz targets (in `fuzz/`) run
//! them exactly as the binary does. Everything else of the node stays private to the
//! binary (`main.rs`), which uses these modules from here.
//!
//! - `forge`: the forges' webhooks (verify, parse, de-duplicate) and commit statuses
//!   (request, post, classify the answer, back off).
//! - `isolation`: the rules of what a job may reach and use (sandbox requirement,
//!   network, limits within a runner's maximum).
//! - `repo_config`: `.eventide.toml`, the per-repository job configuration;
//!   `pipeline_config`: its `[[step]]`s and the plan of a commit's build.
//! - `protocol`: the messages of internal RPC: `protocol::dispatch`, the claim and renew
//!   protocol between runners and the leader (bodies of `/internal/dispatch/*`, and its
//!   timings), `protocol::context`, a job's sealed credentials and secrets and the rules
//!   of which it is given (bodies of `/internal/dispatch/job-context`), and
//!   `protocol::admit`, the gossip admission handshake and the checks of its answering
//!   side (bodies of `/internal/gossip/v2/admit`).
//! - `secrets`: opening the secret store's sealed values with the cluster secret, for
//!   the node's own users of them.
//! - `units`: durations and sizes as people write them (`10m`, `512MiB`).
//!
//! ```text
//!   repository ── .eventide.toml ──> repo_config::parse ──> RepoConfig (runner)
//!   runner ── ClaimRequest / RenewRequest / JobContextRequest (codec) ──> dispatcher (leader)
//!   node ── AdmitRequest (codec, signed) ──> gossip peer: check_addressed ──> proof
//!   forge ── webhook ──> forge::hooks ──> Delivery;  job ──> forge::status ──> forge API
//! ```

pub mod forge;
pub mod isolation;
pub mod pipeline_config;
pub mod protocol;
pub mod repo_config;
pub mod secrets;
pub mod units;
