//! The protocols of the forges Eventide works with (GitHub, GitLab, Gitea and Forgejo):
//! the webhooks they send and the commit statuses they take. Pure rules, plus one
//! function that posts; the HTTP handler, the state machine's outbox and the leader's
//! poster task call them.
//!
//! - `hooks`: verifying (HMAC or token), parsing and de-duplicating (`deliveries`)
//!   webhook deliveries; `hooks` re-exports `DeliveryIds`.
//! - `status`: API urls and projects from repository urls (`api_url`), the status
//!   request per forge, posting it, classifying the answer (posted, retry, refused) and
//!   the retry backoff (`retry`); `status` re-exports all of it.
//!
//! ```text
//!   forge ── POST /api/v1/hooks/{forge} ──> hooks::verify ──> hooks::parse ──> Delivery
//!                                                   DeliveryIds: seen before? <──┘
//!   job state ──> StatusRequest::request ──> status::post ──> forge API
//!                 status::classify(answer) ──> Ok · Retry (Backoff) · Refused
//! ```

mod api_url;
mod deliveries;
pub mod hooks;
mod retry;
pub mod status;

pub use hooks::{Delivery, DeliveryIds, HookError, HookEvent, MAX_HOOK_BYTES};
pub use status::{Backoff, PostError, StatusRequest, StatusState};
