//! The accept loop on loopback: connections fill the public share, then the internal
//! reserve (internal requests only), then are refused; slow request lines time out; a
//! stop closes idle connections and returns.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;

/// Public share 6, internal reserve 2.
const LIMITS: HttpLimits =
    HttpLimits { max_connections: 8, header_timeout: Duration::from_secs(1) };

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

async fn start() -> Running {
    let router = Router::new()
        .route(
            "/internal/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route("/public", get(|| async { "public" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let server = tokio::spawn(serve(listener, router, LIMITS, metrics, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, server }
}

async fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /public HTTP/1.1\r\n").await.expect("send");
    stream
}

/// Sends a GET on a kept-alive connection; returns the status line and the body.
async fn get_on(stream: &mut TcpStream, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let (head, body_start) = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&received[..end]).into_owned(), end + 4);
        }
        let count = stream.read(&mut chunk).await.expect("read");
        assert!(count > 0, "closed before an answer: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..count]);
    };
    let length: usize = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok())
        .expect("a content length");
    while received.len() < body_start + length {
        let count = stream.read(&mut chunk).await.expect("read");
        assert!(count > 0, "closed in the body");
        received.extend_from_slice(&chunk[..count]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, String::from_utf8_lossy(&received[body_start..]).into_owned())
}

async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await,
        Ok(Ok(_) | Err(_))
    )
}

#[tokio::test]
async fn the_reserve_serves_internal_requests_only_and_the_cap_refuses_the_rest() {
    let running = start().await;
    let mut held = Vec::new();
    for _ in 0..LIMITS.public_share() {
        held.push(half_sent(running.addr).await);
    }
    // Connections are accepted in order: these two land in the reserve.
    let mut public = TcpStream::connect(running.addr).await.expect("connect");
    let (status, body) = get_on(&mut public, "/public").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(body.contains("too many open connections"), "{body}");
    assert!(is_closed(&mut public).await, "a refused connection is closed");

    let mut internal = TcpStream::connect(running.addr).await.expect("connect");
    let (status, body) = get_on(&mut internal, "/internal/peer").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, internal.local_addr().expect("addr").to_string(), "handlers see the peer");
    // A reserved connection stays internal: a public request on it is refused.
    let (status, _) = get_on(&mut internal, "/public").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(is_closed(&mut internal).await);

    // Reserve full too (two silent connections): the next one is refused at once.
    let _silent = [
        TcpStream::connect(running.addr).await.expect("connect"),
        TcpStream::connect(running.addr).await.expect("connect"),
    ];
    let mut over = TcpStream::connect(running.addr).await.expect("connect");
    let mut answer = Vec::new();
    let _ = over.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{:?}", String::from_utf8_lossy(&answer));

    // Held connections time out; then public requests are served again.
    for stream in &mut held {
        assert!(is_closed(stream).await, "a half-sent request is closed");
    }
    let mut fresh = TcpStream::connect(running.addr).await.expect("connect");
    let (status, body) = get_on(&mut fresh, "/public").await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "public"));
    let _ = running.stop.send(());
    running.server.await.expect("the server stops");
}

#[tokio::test]
async fn a_slow_request_line_in_the_reserve_is_closed_by_the_header_timeout() {
    let running = start().await;
    let mut held = Vec::new();
    for _ in 0..LIMITS.public_share() {
        held.push(half_sent(running.addr).await);
    }
    let mut slow = TcpStream::connect(running.addr).await.expect("connect");
    slow.write_all(b"GET /inter").await.expect("send");
    let started = tokio::time::Instant::now();
    assert!(is_closed(&mut slow).await, "a slow request line is closed");
    assert!(started.elapsed() >= LIMITS.header_timeout - Duration::from_millis(200));
    let _ = running.stop.send(());
    running.server.await.expect("the server stops");
}

#[tokio::test]
async fn a_stop_closes_idle_connections_and_returns() {
    let running = start().await;
    let mut idle = TcpStream::connect(running.addr).await.expect("connect");
    let (status, _) = get_on(&mut idle, "/public").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let _ = running.stop.send(());
    tokio::time::timeout(Duration::from_millis(500), running.server)
        .await
        .expect("the server stops before the idle connection times out")
        .expect("no panic");
    assert!(is_closed(&mut idle).await);
}
