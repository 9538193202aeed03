//! `post` against a small forge on loopback: the request on the wire, and the answers
//! turned into results.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::*;

const TOKEN: &[u8] = b"tok-3f9a\n";
const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

/// One request the forge received: path (as sent), headers, body.
type Seen = (String, HeaderMap, Vec<u8>);

/// An answer to give: status, headers, body.
type Scripted = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone, Default)]
struct Forge {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Status, headers and body of the next answers; 201 when none is left.
    answers: Arc<Mutex<VecDeque<Scripted>>>,
}

async fn answer(State(forge): State<Forge>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    forge.seen.lock().expect("seen").push((uri.path().to_owned(), headers, body.to_vec()));
    let next = forge.answers.lock().expect("answers").pop_front();
    let (code, pairs, body) = next.unwrap_or((201, Vec::new(), "{}".into()));
    let mut response = (StatusCode::from_u16(code).expect("status"), body).into_response();
    for (name, value) in pairs {
        response.headers_mut().insert(name, value.parse().expect("header value"));
    }
    response
}

async fn start(answers: Vec<Scripted>) -> (SocketAddr, Forge) {
    let forge = Forge { answers: Arc::new(Mutex::new(answers.into())), ..Forge::default() };
    let router = Router::new().fallback(answer).with_state(forge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, forge)
}

fn status(forge: ForgeKind, api: String, project: &str) -> StatusRequest {
    StatusRequest {
        forge,
        api_url: Url::parse(&api).expect("api url"),
        project: project.into(),
        sha: SHA.into(),
        state: StatusState::Success,
        target_url: Some("http://ci.example/jobs/7".into()),
        context: "eventide/test".into(),
        description: "30 tests passed".into(),
    }
}

fn client() -> reqwest::Client {
    super::client().expect("client")
}

#[tokio::test]
async fn github_posts_carry_the_documented_headers_and_body() {
    let (addr, forge) = start(Vec::new()).await;
    let request = status(ForgeKind::Github, format!("http://{addr}/api/v3"), "octo/hello");
    assert_eq!(post(&client(), TOKEN, &request).await, Ok(()));
    let seen = forge.seen.lock().expect("seen").clone();
    let (path, headers, body) = &seen[0];
    assert_eq!(path, &format!("/api/v3/repos/octo/hello/statuses/{SHA}"));
    // Compared without printing: a failure message never shows a token.
    assert!(headers["authorization"] == "Bearer tok-3f9a", "authorization is not Bearer");
    assert_eq!(headers["accept"], "application/vnd.github+json");
    assert_eq!(headers["x-github-api-version"], "2022-11-28");
    assert_eq!(headers["user-agent"], USER_AGENT);
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(body).expect("json body");
    assert_eq!(body, request.request().1);
}

#[tokio::test]
async fn gitlab_and_gitea_posts_authenticate_their_way() {
    let (addr, forge) = start(Vec::new()).await;
    let gitlab = status(ForgeKind::Gitlab, format!("http://{addr}/api/v4"), "group%2Fsub%2Fp");
    assert_eq!(post(&client(), TOKEN, &gitlab).await, Ok(()));
    let gitea = status(ForgeKind::Gitea, format!("http://{addr}/api/v1/"), "o/r");
    assert_eq!(post(&client(), TOKEN, &gitea).await, Ok(()));
    let seen = forge.seen.lock().expect("seen").clone();
    assert_eq!(seen[0].0, format!("/api/v4/projects/group%2Fsub%2Fp/statuses/{SHA}"));
    assert!(seen[0].1["private-token"] == "tok-3f9a", "PRIVATE-TOKEN is not the token");
    assert!(seen[0].1.get("authorization").is_none());
    assert_eq!(seen[1].0, format!("/api/v1/repos/o/r/statuses/{SHA}"));
    assert!(seen[1].1["authorization"] == "token tok-3f9a", "authorization is not token");
}

#[tokio::test]
async fn answers_become_retries_and_refusals() {
    let echo = r#"{"message":"Bad credentials for tok-3f9a"}"#.to_owned();
    let (addr, _forge) = start(vec![
        (500, Vec::new(), "oops".into()),
        (429, vec![("retry-after", "2")], String::new()),
        (401, vec![("content-type", "application/json")], echo),
    ])
    .await;
    let request = status(ForgeKind::Github, format!("http://{addr}/api/v3"), "o/r");
    let client = client();
    assert!(matches!(
        post(&client, TOKEN, &request).await,
        Err(PostError::Retry { after: None, .. })
    ));
    assert!(matches!(
        post(&client, TOKEN, &request).await,
        Err(PostError::Retry { after: Some(after), .. }) if after == Duration::from_secs(2)
    ));
    let refusal = post(&client, TOKEN, &request).await;
    let expected =
        PostError::Refused { status: 401, message: "Bad credentials for [redacted]".into() };
    // Compared without printing: the answer quoted the token.
    assert!(refusal == Err(expected), "the refusal differs (or still quotes the token)");
    assert_eq!(post(&client, TOKEN, &request).await, Ok(()));
}

#[tokio::test]
async fn an_unreachable_forge_is_retried() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let request = status(ForgeKind::Gitea, format!("http://{addr}/api/v1"), "o/r");
    let result = post(&client(), TOKEN, &request).await;
    let Err(PostError::Retry { after: None, reason }) = result else {
        panic!("expected a retry: {result:?}");
    };
    assert!(!reason.contains("tok-3f9a"), "the reason quotes the token");
}

#[tokio::test]
async fn requests_that_cannot_be_sent_are_refused_at_once() {
    let mut request = status(ForgeKind::Github, "ftp://forge.example/api".into(), "o/r");
    assert!(matches!(
        post(&client(), TOKEN, &request).await,
        Err(PostError::Refused { status: 0, .. })
    ));
    request.api_url = Url::parse("http://127.0.0.1:9/api/v3").expect("url");
    assert!(matches!(
        post(&client(), b"two\nlines", &request).await,
        Err(PostError::Refused { status: 0, .. })
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, forge) =
        start(vec![(307, vec![("location", "http://127.0.0.1:9/elsewhere")], String::new())]).await;
    let request = status(ForgeKind::Gitlab, format!("http://{addr}/api/v4"), "g%2Fp");
    let result = post(&client(), TOKEN, &request).await;
    let Err(PostError::Refused { status: 307, message }) = result else {
        panic!("expected a refusal: {result:?}");
    };
    assert!(message.contains("API url"), "{message}");
    assert_eq!(forge.seen.lock().expect("seen").len(), 1);
}
