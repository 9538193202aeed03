//! The pure rules of the HTTP server: which share of the connection cap a new
//! connection takes, whether a request goes to the internal routes, how far the cap
//! fits the file-descriptor limit, and how often refusals are logged.

use std::time::{Duration, Instant};

/// The prefix of every internal route (Raft, dispatcher, gossip admission).
pub const INTERNAL_PREFIX: &str = "/internal/";

/// Bounds on the connections of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once, public and internal together.
    pub max_connections: usize,
    /// How long a request's head may take to arrive, counted from the connection's start
    /// or from the end of the previous answer: so it is also how long a kept-alive
    /// connection may stay idle. Answers themselves (a long-polled claim, a followed
    /// log) are not bounded by it.
    pub header_timeout: Duration,
}

impl HttpLimits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// The smallest cap accepted: room for a few public and internal connections.
    pub const MIN_MAX_CONNECTIONS: usize = 8;

    /// Connections only requests to [`INTERNAL_PREFIX`] may use: a quarter of the cap.
    pub fn internal_reserve(&self) -> usize {
        (self.max_connections / 4).max(1)
    }

    /// Connections any request may use.
    pub fn public_share(&self) -> usize {
        self.max_connections.saturating_sub(self.internal_reserve())
    }

    /// These limits with the cap lowered to half of `fd_limit` (the process's open-file
    /// limit), so that connections can never take the descriptors Raft, sled, git and
    /// jobs need.
    pub fn fitted_to(self, fd_limit: u64) -> HttpLimits {
        let half = usize::try_from(fd_limit / 2).unwrap_or(usize::MAX);
        HttpLimits {
            max_connections: self.max_connections.min(half).max(2),
            header_timeout: self.header_timeout,
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: HttpLimits::DEFAULT_MAX_CONNECTIONS,
            header_timeout: HttpLimits::DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// What happens to a newly accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Served for any request.
    Any,
    /// Taken from the internal reserve: served only for requests to the internal routes;
    /// its first request line decides before anything else is read.
    InternalOnly,
    /// Over the cap: answered 503 at once and closed.
    Refuse,
}

/// The admission of a new connection while `open` connections are already open.
pub fn admit(open: usize, limits: &HttpLimits) -> Admission {
    if open < limits.public_share() {
        Admission::Any
    } else if open < limits.max_connections {
        Admission::InternalOnly
    } else {
        Admission::Refuse
    }
}

/// Whether a request for `path` may use the internal reserve.
pub fn is_internal_path(path: &str) -> bool {
    path.starts_with(INTERNAL_PREFIX)
}

/// The route class of the request whose first bytes are `head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Internal,
    Public,
}

/// The route class of a request from its first bytes, or `None` while its request line
/// is incomplete. Anything that is not a request line naming an internal path is
/// `Public` (the reserve then refuses it).
pub fn classify(head: &[u8]) -> Option<Route> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end]).ok();
    let target = line.and_then(|line| line.split(' ').nth(1));
    let path = target.and_then(|t| t.parse::<axum::http::Uri>().ok());
    Some(match path {
        Some(uri) if is_internal_path(uri.path()) => Route::Internal,
        _ => Route::Public,
    })
}

/// How often refused connections are logged under a flood: the first at once, then one
/// line per `interval` with the count of those not logged.
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    pub fn new(interval: Duration) -> RefusalLog {
        RefusalLog { interval, last: None, unlogged: 0 }
    }

    /// Records a refusal at `now`; returns how many refusals the line to log now stands
    /// for (this one included), or `None` when this one is only counted.
    pub fn refused(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> HttpLimits {
        HttpLimits { max_connections, ..HttpLimits::default() }
    }

    #[test]
    fn a_quarter_of_the_cap_is_kept_for_internal_rpc() {
        let cases = [(1024, 256, 768), (64, 16, 48), (8, 2, 6), (3, 1, 2), (2, 1, 1)];
        for (max, reserve, public) in cases {
            let limits = limits(max);
            assert_eq!((limits.internal_reserve(), limits.public_share()), (reserve, public));
        }
    }

    #[test]
    fn connections_fill_the_public_share_then_the_reserve_then_are_refused() {
        let limits = limits(64);
        let cases = [
            (0, Admission::Any),
            (47, Admission::Any),
            (48, Admission::InternalOnly),
            (63, Admission::InternalOnly),
            (64, Admission::Refuse),
            (1000, Admission::Refuse),
        ];
        for (open, expected) in cases {
            assert_eq!(admit(open, &limits), expected, "with {open} open");
        }
    }

    #[test]
    fn the_cap_fits_half_the_file_descriptor_limit() {
        assert_eq!(limits(1024).fitted_to(1_048_576).max_connections, 1024);
        assert_eq!(limits(1024).fitted_to(1024).max_connections, 512);
        assert_eq!(limits(64).fitted_to(256).max_connections, 64);
        assert_eq!(limits(64).fitted_to(3).max_connections, 2);
        assert_eq!(limits(64).fitted_to(u64::MAX).max_connections, 64);
    }

    #[test]
    fn only_request_lines_naming_an_internal_path_are_internal() {
        let cases: [(&[u8], Option<Route>); 12] = [
            (b"", None),
            (b"POST /internal/raft/app", None),
            (b"POST /internal/raft/append HTTP/1.1\r\n", Some(Route::Internal)),
            (b"POST /internal/dispatch/claim HTTP/1.1\r\nHost: x\r\n", Some(Route::Internal)),
            (b"POST http://h:1/internal/raft/vote HTTP/1.1\r\n", Some(Route::Internal)),
            (b"GET / HTTP/1.1\r\n", Some(Route::Public)),
            (b"GET /api/v1/status HTTP/1.1\n", Some(Route::Public)),
            (b"GET /internal HTTP/1.1\r\n", Some(Route::Public)),
            (b"GET /api/v1/internal/x HTTP/1.1\r\n", Some(Route::Public)),
            (b"\r\n", Some(Route::Public)),
            (b"\xff\xfe /internal/x HTTP/1.1\r\n", Some(Route::Public)),
            (b"GET  /internal/x HTTP/1.1\r\n", Some(Route::Public)),
        ];
        for (head, expected) in cases {
            assert_eq!(classify(head), expected, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_flood_of_refusals_is_logged_once_per_interval_with_its_count() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut log = RefusalLog::new(Duration::from_secs(10));
        assert_eq!(log.refused(start), Some(1));
        assert_eq!(log.refused(start + second), None);
        assert_eq!(log.refused(start + 9 * second), None);
        assert_eq!(log.refused(start + 10 * second), Some(3));
        assert_eq!(log.refused(start + 11 * second), None);
        assert_eq!(log.refused(start + 30 * second), Some(2));
    }
}
