//! The protocols of the forges Eventide works with (GitHub, GitLab, Gitea and Forgejo):
//! the webhooks they send and the commit statuses they take. Pure rules, plus one
//! function that posts; the HTTP handler, the state machine's outbox and the leader's
//! poster task call them.
//!
//! - `hooks`: verifying (HMAC or token), parsing and de-duplicating webhook deliveries.
//! - `status`: API urls and projects from repository urls, the status request per forge,
//!   posting it, classifying the answer (posted, retry, refused) and the retry backoff.
//!
//! ```text
//!   forge ── POST /api/v1/hooks/{forge} ──> hooks::verify ──> hooks::parse ──> Delivery
//!                                                  DeliveryIds (repeats) ─┘
//!   job state ──> StatusRequest::request ──> status::post ──> forge API
//!                                 status::classify ──> Ok · Retry (Backoff) · Refused
//! ```

pub mod hooks;
pub mod status;

pub use hooks::{Delivery, DeliveryIds, HookError, HookEvent, MAX_HOOK_BYTES};
pub use status::{Backoff, PostError, StatusRequest, StatusState};
