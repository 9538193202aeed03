//! [`RpcClient`] and the axum adapter against a local server.

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ping {
    text: String,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pong {
    length: u64,
}

/// A request that cannot be encoded.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be encoded"))
    }
}

const ECHO: &str = "/internal/test/echo";
const FAILING: &str = "/internal/test/failing";
const FORBIDDEN: &str = "/internal/test/forbidden";
const SILENT: &str = "/internal/test/silent";
const GARBAGE: &str = "/internal/test/garbage";

async fn echo(Codec(ping): Codec<Ping>) -> CodecReply<Pong> {
    CodecReply(Pong { length: ping.text.len() as u64 })
}

/// A server with one route per way a call can end; its address.
async fn serve() -> SocketAddr {
    let router = Router::new()
        .route(ECHO, post(echo))
        .route(FAILING, post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "it broke") }))
        .route(FORBIDDEN, post(|| async { (StatusCode::FORBIDDEN, "not for you") }))
        .route(SILENT, post(std::future::pending::<()>))
        .route(GARBAGE, post(|| async { vec![codec::FORMAT_V1, 0xff, 0xff] }))
        .layer(Extension(RpcService("test")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn client() -> RpcClient {
    RpcClient::new(Signer::new(None)).expect("client")
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_call_is_answered_with_the_decoded_reply() {
    let addr = serve().await.to_string();
    let rpc = client();
    let ping = Ping { text: "hello".into() };
    let pong: Pong = rpc.call(&addr, ECHO, &ping, TIMEOUT).await.expect("answered");
    assert_eq!(pong, Pong { length: 5 });
    assert!(rpc.errors().counts().is_empty(), "a success is not counted");
}

#[tokio::test]
async fn replies_carry_the_codec_content_type() {
    let addr = serve().await;
    let body = codec::encode(&Ping { text: "hi".into() }).expect("encode");
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{ECHO}"))
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], CODEC_CONTENT_TYPE);
    let pong: Pong = codec::decode(&response.bytes().await.expect("body")).expect("decode");
    assert_eq!(pong, Pong { length: 2 });
}

#[tokio::test]
async fn a_malformed_request_is_answered_400_with_the_reason() {
    let addr = serve().await.to_string();
    let rpc = client();
    // A value of another type does not decode as a `Ping`.
    let error = rpc.call::<_, Pong>(&addr, ECHO, &[1u8; 3], TIMEOUT).await.expect_err("refused");
    match error {
        RpcError::Status { status: 400, body_excerpt } => {
            assert!(body_excerpt.starts_with("malformed request: "), "{body_excerpt}");
        }
        other => panic!("not a 400: {other:?}"),
    }
    assert_eq!(rpc.errors().counts(), vec![("echo".to_owned(), 1)]);
}

#[test]
fn decode_request_refuses_with_400() {
    let refused = decode_request::<Ping>("test", ECHO, &[]).expect_err("refused");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = codec::encode(&Ping { text: "x".into() }).expect("encode");
    let ping: Ping = decode_request("test", ECHO, &body).expect("decodes");
    assert_eq!(ping.text, "x");
}

#[tokio::test]
async fn error_statuses_are_typed_and_refusals_told_apart() {
    let addr = serve().await.to_string();
    let rpc = client();
    let ping = Ping { text: String::new() };
    match rpc.call::<_, Pong>(&addr, FAILING, &ping, TIMEOUT).await {
        Err(RpcError::Status { status: 500, body_excerpt }) => assert_eq!(body_excerpt, "it broke"),
        other => panic!("not a 500: {other:?}"),
    }
    let refused = rpc.call::<_, Pong>(&addr, FORBIDDEN, &ping, TIMEOUT).await.expect_err("403");
    assert!(refused.is_refused() && !refused.is_connect(), "{refused:?}");
    assert_eq!(refused.to_string(), "HTTP 403: not for you");
    let counts = rpc.errors().counts();
    assert_eq!(counts, vec![("failing".to_owned(), 1), ("forbidden".to_owned(), 1)]);
}

#[tokio::test]
async fn a_peer_that_is_not_listening_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    drop(listener);
    let rpc = client();
    let ping = Ping { text: String::new() };
    let error = rpc.call::<_, Pong>(&addr, ECHO, &ping, TIMEOUT).await.expect_err("refused");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn a_peer_that_does_not_answer_in_time_is_a_timeout() {
    let addr = serve().await.to_string();
    let rpc = client();
    let ping = Ping { text: String::new() };
    let timeout = Duration::from_millis(200);
    let error = rpc.call::<_, Pong>(&addr, SILENT, &ping, timeout).await.expect_err("timed out");
    assert!(matches!(error, RpcError::Timeout { timeout: t, .. } if t == timeout), "{error:?}");
    assert_eq!(rpc.errors().counts(), vec![("silent".to_owned(), 1)]);
}

#[tokio::test]
async fn an_answer_that_does_not_decode_is_a_decode_error() {
    let addr = serve().await.to_string();
    let ping = Ping { text: String::new() };
    let error = client().call::<_, Pong>(&addr, GARBAGE, &ping, TIMEOUT).await.expect_err("bad");
    assert!(matches!(error, RpcError::Decode { .. }), "{error:?}");
}

#[tokio::test]
async fn a_request_that_does_not_encode_is_never_sent() {
    let addr = serve().await.to_string();
    let rpc = client();
    let error = rpc.call::<_, Pong>(&addr, ECHO, &Unencodable, TIMEOUT).await.expect_err("bad");
    assert!(matches!(error, RpcError::Encode { .. }), "{error:?}");
    assert_eq!(rpc.errors().counts(), vec![("echo".to_owned(), 1)]);
}

#[test]
fn counts_are_shared_by_clones_and_derived_clients() {
    let rpc = client();
    rpc.errors().expect(&["/internal/raft/append", "/internal/raft/vote"]);
    let derived = rpc.with_connect_timeout(Duration::from_secs(2)).expect("client");
    derived.errors().record("/internal/raft/vote");
    rpc.clone().errors().record("/internal/dispatch/claim");
    let expected = [("append", 0), ("claim", 1), ("vote", 1)];
    let expected: Vec<_> = expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(rpc.errors().counts(), expected);
    let unpooled = RpcClient::unpooled(Signer::new(None)).expect("client");
    assert!(unpooled.errors().counts().is_empty(), "counts of its own");
}
