//! The accept loop: every connection is admitted against the cap ([`admit`]) and served
//! by hyper's HTTP/1 connection with a timer, so that a request's head (and an idle
//! kept-alive connection) has [`HttpLimits::header_timeout`] to arrive.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use eventide_api::ErrorBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, info, warn, Instrument};

use super::admission::{
    admit, classify, is_internal_path, Admission, HttpLimits, RefusalLog, Route,
};
use super::replay::Replay;

use crate::metrics::Metrics;

/// The longest first request line read to decide whether it goes to an internal route.
const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The pause after a failed accept (out of file descriptors, memory), doubled on each
/// failure in a row up to [`ACCEPT_BACKOFF_MAX`], so that the loop never spins.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(20);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for each kind of refusal.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
const REFUSED_MESSAGE: &str = "too many open connections, try again later";

/// Serves `router` on `listener` within `limits` until `stop` completes, then lets every
/// open connection finish its answer. Refused connections count in `metrics`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let limits = fit_to_open_file_limit(limits);
    info!(
        max_connections = limits.max_connections,
        internal_reserve = limits.internal_reserve(),
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        "http server started"
    );
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let server = Arc::new(Server {
        router,
        builder,
        limits,
        metrics,
        reserve_refusals: Mutex::new(RefusalLog::new(REFUSAL_LOG_INTERVAL)),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut cap_refusals = RefusalLog::new(REFUSAL_LOG_INTERVAL);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = ACCEPT_BACKOFF_MIN;
                pair
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                if backoff == ACCEPT_BACKOFF_MIN {
                    warn!(error = %error, "failed to accept a connection; backing off");
                } else {
                    debug!(error = %error, "failed to accept a connection");
                }
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let shutdown = shutdown_rx.clone();
        match admit(connections.len(), &limits) {
            Admission::Any => {
                let server = server.clone();
                connections.spawn(
                    async move {
                        server.serve_connection(stream, Vec::new(), peer, None, shutdown).await;
                    }
                    .in_current_span(),
                );
            }
            Admission::InternalOnly => {
                let server = server.clone();
                connections.spawn(
                    async move { server.serve_reserved(stream, peer, shutdown).await }
                        .in_current_span(),
                );
            }
            Admission::Refuse => {
                server.metrics.http_connection_refused("full");
                if let Some(count) = cap_refusals.refused(Instant::now()) {
                    warn!(
                        peer = %peer,
                        refused = count,
                        max_connections = limits.max_connections,
                        "refused http connections: the connection cap is reached"
                    );
                }
                refuse(&stream);
            }
        }
    }
    drop(listener);
    let _ = shutdown_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// What every connection task shares.
struct Server {
    router: Router,
    builder: http1::Builder,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    reserve_refusals: Mutex<RefusalLog>,
}

impl Server {
    /// A connection in the internal reserve: its first request line must name an
    /// internal route, within the header timeout; any other is answered 503 and closed.
    async fn serve_reserved(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let deadline = tokio::time::Instant::now() + self.limits.header_timeout;
        let mut head = Vec::with_capacity(1024);
        let route = tokio::time::timeout_at(deadline, read_request_line(&mut stream, &mut head));
        match route.await {
            Ok(Some(Route::Internal)) => {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                self.serve_connection(stream, head, peer, Some(remaining), shutdown).await;
            }
            Ok(Some(Route::Public)) => {
                self.metrics.http_connection_refused("reserved");
                let logged = self
                    .reserve_refusals
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .refused(Instant::now());
                if let Some(count) = logged {
                    warn!(
                        peer = %peer,
                        refused = count,
                        internal_reserve = self.limits.internal_reserve(),
                        "refused public http requests: the public share of connections is full, the rest is kept for internal rpc"
                    );
                }
                refuse(&stream);
            }
            Ok(None) => debug!(peer = %peer, "connection closed before its request line"),
            Err(_) => debug!(peer = %peer, "closed a connection: no request line in time"),
        }
    }

    /// Serves one connection whose first bytes, already read, are `head`. With a
    /// `header_timeout` the connection is in the internal reserve: that is how long its
    /// first request's head has left, and it serves internal routes only.
    async fn serve_connection(
        &self,
        stream: TcpStream,
        head: Vec<u8>,
        peer: SocketAddr,
        header_timeout: Option<Duration>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let internal_only = header_timeout.is_some();
        let router = self.router.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            // Peer addresses reach handlers (the log line of a refused internal request).
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                if internal_only && !is_internal_path(request.uri().path()) {
                    return Ok::<_, Infallible>(reserved_refusal());
                }
                router.oneshot(request).await
            }
        });
        let mut builder = self.builder.clone();
        if let Some(timeout) = header_timeout {
            builder.header_read_timeout(timeout);
        }
        let io = TokioIo::new(Replay::new(head, stream));
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        match result {
            Err(error) if error.is_timeout() => {
                debug!(peer = %peer, "closed a connection: no request head in time");
            }
            Err(error) => debug!(peer = %peer, error = %error, "http connection ended"),
            Ok(()) => {}
        }
    }
}

/// Reads into `head` until its first line is complete (or too long); `None` when the
/// peer closes first.
async fn read_request_line(stream: &mut TcpStream, head: &mut Vec<u8>) -> Option<Route> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(route) = classify(head) {
            return Some(route);
        }
        if head.len() >= MAX_REQUEST_LINE {
            return Some(Route::Public);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(count) => head.extend_from_slice(&chunk[..count]),
        }
    }
}

/// Answers 503 on a connection that is not served, without waiting: a fresh socket's
/// send buffer takes the few bytes, and a peer that cannot take them loses only them.
fn refuse(stream: &TcpStream) {
    let body = serde_json::json!({ "error": REFUSED_MESSAGE }).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// The answer to a public request on a connection of the internal reserve.
fn reserved_refusal() -> Response {
    let body = ErrorBody { error: REFUSED_MESSAGE.to_owned() };
    let headers = [(header::CONNECTION, "close"), (header::RETRY_AFTER, "1")];
    (StatusCode::SERVICE_UNAVAILABLE, headers, Json(body)).into_response()
}

/// Errors of one incoming connection (it went away before it was accepted), after which
/// the next accept may succeed at once.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Raises the soft open-file limit to the hard one, then lowers the cap to fit it.
fn fit_to_open_file_limit(limits: HttpLimits) -> HttpLimits {
    let fd_limit = match raise_open_file_limit() {
        Ok(limit) => limit,
        Err(error) => {
            warn!(error = %error, "failed to read the open file limit");
            return limits;
        }
    };
    let fitted = limits.fitted_to(fd_limit);
    if fitted.max_connections < limits.max_connections {
        warn!(
            open_file_limit = fd_limit,
            max_connections = fitted.max_connections,
            "the open file limit is low: fewer http connections are allowed than configured"
        );
    }
    fitted
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out pointer that outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid pointer that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            let error = std::io::Error::last_os_error();
            debug!(error = %error, "failed to raise the open file limit");
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
#[path = "serve_test.rs"]
mod tests;
