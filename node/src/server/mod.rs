//! The HTTP server under the API: its own accept loop on hyper, so that slow or idle
//! clients are bounded and public connections can never starve internal RPC.
//!
//! - `admission`: the pure rules: the connection cap and its internal reserve, which
//!   route a request line names, the cap fitted to the open-file limit.
//! - `serve`: the accept loop and each connection's hyper task.
//! - `replay`: a stream whose first bytes, read to pick the route, are read again.
//!
//! ```text
//!   accept ──> admit(open) ── Any ──────────────────────────────> hyper http1 ──> Router
//!                  ├── InternalOnly ──> first request line ── /internal/ ──┘  (header timeout)
//!                  │                                        └─ other ──> 503, close
//!                  └── Refuse ──> 503, close
//! ```

mod admission;
mod replay;
mod serve;

pub use self::admission::HttpLimits;
pub use self::serve::serve;
