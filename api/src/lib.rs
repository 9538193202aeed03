//! The documents of Eventide's public HTTP API (`/api/v1/`, see `docs/api.md`): typed
//! serde structs and enums whose JSON is the API's, field for field and byte for byte.
//! The server builds them, the CLI and the end-to-end tests read them, so a field
//! cannot change on one side only. Plain types only: nothing here knows Raft, gossip or
//! HTTP, and none of these types is ever a Raft command.
//!
//! - `nodes`: a node as documents name it ([`NodeRef`]) and describe it ([`NodeStatus`]),
//!   with its [`RaftRole`], [`NodeRole`] and [`RunnerState`].
//! - `status`: `GET /api/v1/status`, [`StatusDoc`] and its parts, with [`Auth`].
//! - `builds`: builds with their jobs, [`BuildDoc`], [`BuildState`], and artifacts.
//! - `jobs`: jobs and results, [`JobDoc`], [`JobDetailDoc`], [`JobState`], [`Trigger`],
//!   the list query and the rerun request.
//! - `repos`: watched repositories, added and removed.
//! - `secrets`: the secret store's names and times, and the request that sets a value.
//! - `notify`: the answers of `POST /api/v1/notify` and of the forges' webhooks.
//! - `logs`: the query of `GET /api/v1/jobs/{id}/log`.
//! - `error`: [`ErrorBody`], the body of every error answer.
//!
//! ```text
//!   replicated state + gossip ──> node (server) ──> StatusDoc, JobDoc, … ──> JSON
//!   JSON ──> StatusDoc, JobDoc, … ──> CLI tables, end-to-end tests
//! ```

pub mod builds;
pub mod error;
pub mod jobs;
pub mod logs;
pub mod nodes;
pub mod notify;
pub mod repos;
pub mod secrets;
pub mod status;

pub use builds::{ArtifactDoc, BuildDoc, BuildJobDoc, BuildListQuery, BuildState};
pub use error::ErrorBody;
pub use jobs::{
    AttemptDoc, JobDetailDoc, JobDoc, JobState, ListQuery, RerunRequest, SummaryDoc, Trigger,
    MAX_LIMIT,
};
pub use logs::LogQuery;
pub use nodes::{NodeRef, NodeRole, NodeStatus, RaftRole, RunnerState};
pub use notify::{HookDoc, HookResult, NotifyDoc};
pub use repos::{AddRepo, Forge, RemovedRepoDoc, RepoDoc, RepoPatch, RepoSettingsDoc};
pub use secrets::{RemovedSecretDoc, SecretDoc, SetSecret};
pub use status::{Auth, QueueStatus, RepoStatus, StatusDoc};

#[cfg(test)]
mod docs_test;
