use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        map.append(name, HeaderValue::from_str(value).expect("header value"));
    }
    map
}

/// A fixed "now": 2026-12-01T00:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

#[test]
fn states_map_to_each_forges_names() {
    use ForgeKind::{Gitea, Github, Gitlab};
    use StatusState::*;
    let cases = [
        (Pending, ["pending", "pending", "pending"]),
        (Running, ["pending", "running", "pending"]),
        (Success, ["success", "success", "success"]),
        (Failure, ["failure", "failed", "failure"]),
        (Error, ["error", "failed", "error"]),
    ];
    for (state, [github, gitlab, gitea]) in cases {
        assert_eq!(state.as_forge_str(Github), github, "{state:?}");
        assert_eq!(state.as_forge_str(Gitlab), gitlab, "{state:?}");
        assert_eq!(state.as_forge_str(Gitea), gitea, "{state:?}");
    }
}

#[test]
fn api_urls_derive_from_repository_urls() {
    use ForgeKind::{Gitea, Github, Gitlab};
    let cases = [
        (Github, "https://github.com/octo-org/hello.git", "https://api.github.com"),
        (Github, "git@github.com:octo-org/hello.git", "https://api.github.com"),
        (Github, "ssh://git@github.com/octo-org/hello", "https://api.github.com"),
        (Github, "https://GitHub.com/octo-org/hello", "https://api.github.com"),
        (Github, "https://ghe.example.com/octo-org/hello.git", "https://ghe.example.com/api/v3"),
        (Github, "git@ghe.example.com:octo-org/hello.git", "https://ghe.example.com/api/v3"),
        (Gitlab, "https://gitlab.com/group/sub/project.git", "https://gitlab.com/api/v4"),
        (Gitlab, "ssh://git@gitlab.example.com:2222/g/p.git", "https://gitlab.example.com/api/v4"),
        (Gitlab, "git@gitlab.example.com:g/p.git", "https://gitlab.example.com/api/v4"),
        (Gitea, "https://gitea.example.com/owner/repo.git", "https://gitea.example.com/api/v1"),
        (Gitea, "http://127.0.0.1:3000/owner/repo.git", "http://127.0.0.1:3000/api/v1"),
        (Gitea, "gitea.example.com:owner/repo.git", "https://gitea.example.com/api/v1"),
    ];
    for (forge, repo, api) in cases {
        assert_eq!(default_api_url(forge, repo).expect(repo), api, "{forge} {repo}");
    }
}

#[test]
fn api_urls_refuse_what_is_no_forge_url() {
    for repo in ["/srv/git/repo.git", "file:///srv/git/repo.git", "https://", ""] {
        assert!(default_api_url(ForgeKind::Github, repo).is_err(), "{repo:?}");
    }
}

#[test]
fn projects_derive_from_repository_urls() {
    use ForgeKind::{Gitea, Github, Gitlab};
    let cases = [
        (Github, "https://github.com/octo-org/hello.git", "octo-org/hello"),
        (Github, "https://github.com/octo-org/hello/", "octo-org/hello"),
        (Github, "git@github.com:octo-org/hello.git", "octo-org/hello"),
        (Gitea, "ssh://git@gitea.example.com:2222/owner/my.repo.git", "owner/my.repo"),
        (Gitlab, "https://gitlab.com/group/sub/project.git", "group%2Fsub%2Fproject"),
        (Gitlab, "git@gitlab.com:group/project.git", "group%2Fproject"),
    ];
    for (forge, repo, project) in cases {
        assert_eq!(project_of(forge, repo).expect(repo), project, "{forge} {repo}");
    }
}

#[test]
fn projects_refuse_paths_that_name_none() {
    use ForgeKind::{Gitea, Github, Gitlab};
    let cases = [
        (Github, "https://github.com/octo-org"),
        (Github, "https://github.com/a/b/c"),
        (Gitea, "https://gitea.example.com/"),
        (Gitlab, "https://gitlab.com/project"),
        (Gitlab, "https://gitlab.com/group/../project"),
        (Github, "https://github.com/owner/re%20po"),
        (Github, "https://github.com/owner//repo"),
    ];
    for (forge, repo) in cases {
        assert!(project_of(forge, repo).is_err(), "{forge} {repo}");
    }
}

fn request(forge: ForgeKind, api: &str, project: &str) -> StatusRequest {
    StatusRequest {
        forge,
        api_url: Url::parse(api).expect("api url"),
        project: project.into(),
        sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
        state: StatusState::Failure,
        target_url: Some("https://ci.example.com/jobs/42".into()),
        context: "eventide/test".into(),
        description: "2 of 30 tests failed".into(),
    }
}

#[test]
fn github_requests_follow_the_statuses_api() {
    let (url, body) =
        request(ForgeKind::Github, "https://api.github.com", "octo-org/hello").request();
    assert_eq!(
        url.as_str(),
        "https://api.github.com/repos/octo-org/hello/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(
        body,
        json!({
            "state": "failure",
            "target_url": "https://ci.example.com/jobs/42",
            "description": "2 of 30 tests failed",
            "context": "eventide/test",
        })
    );
    // An Enterprise API root with a path, with or without a trailing slash.
    for api in ["https://ghe.example.com/api/v3", "https://ghe.example.com/api/v3/"] {
        let (url, _) = request(ForgeKind::Github, api, "o/r").request();
        assert_eq!(
            url.as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
        );
    }
}

#[test]
fn gitea_requests_follow_the_statuses_api() {
    let (url, body) = request(ForgeKind::Gitea, "http://127.0.0.1:3000/api/v1", "o/r").request();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:3000/api/v1/repos/o/r/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(body["state"], "failure");
    assert_eq!(body["context"], "eventide/test");
}

#[test]
fn gitlab_requests_name_the_context_and_encode_the_path() {
    let mut status =
        request(ForgeKind::Gitlab, "https://gitlab.com/api/v4", "group%2Fsub%2Fproject");
    status.target_url = None;
    status.state = StatusState::Running;
    let (url, body) = status.request();
    assert_eq!(
        url.as_str(),
        "https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(
        body,
        json!({ "state": "running", "description": "2 of 30 tests failed", "name": "eventide/test" })
    );
}

#[test]
fn descriptions_are_bounded() {
    let mut status = request(ForgeKind::Github, "https://api.github.com", "o/r");
    status.description = "é".repeat(500);
    let (_, body) = status.request();
    let description = body["description"].as_str().expect("description");
    assert_eq!(description.chars().count(), MAX_DESCRIPTION_CHARS);
    assert!(description.ends_with('…'));
    status.description = "x".repeat(MAX_DESCRIPTION_CHARS);
    assert_eq!(status.request().1["description"], "x".repeat(MAX_DESCRIPTION_CHARS));
}

/// A status code, headers and body, and what `classify` should say to them.
type AnswerCase<'a> = (u16, Vec<(&'a str, &'a str)>, &'a str, Expect);

/// What `classify` should say to an answer.
#[derive(Debug)]
enum Expect {
    Posted,
    /// Retry, after the wait in seconds the forge asked for.
    Retry(Option<u64>),
}

impl Expect {
    fn matches(&self, result: &Result<(), PostError>) -> bool {
        match (self, result) {
            (Expect::Posted, Ok(())) => true,
            (Expect::Retry(after), Err(PostError::Retry { after: got, .. })) => {
                *got == after.map(Duration::from_secs)
            }
            _ => false,
        }
    }
}

#[test]
fn answers_are_classified() {
    let reset = "1796083260"; // now + 60 s
    let date = "Tue, 01 Dec 2026 00:00:30 GMT"; // now + 30 s
    let gone_date = "Mon, 30 Nov 2026 00:00:00 GMT";
    let github_limit = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)];
    let cases: Vec<AnswerCase> = vec![
        (201, vec![], "{}", Expect::Posted),
        (200, vec![], "", Expect::Posted),
        (500, vec![], "", Expect::Retry(None)),
        (502, vec![], "<html>bad gateway</html>", Expect::Retry(None)),
        (503, vec![("Retry-After", "7")], "", Expect::Retry(Some(7))),
        (429, vec![("Retry-After", "1")], "", Expect::Retry(Some(1))),
        (429, vec![("Retry-After", date)], "", Expect::Retry(Some(30))),
        (429, vec![("Retry-After", gone_date)], "", Expect::Retry(Some(0))),
        (429, vec![("Retry-After", "999999")], "", Expect::Retry(Some(3600))),
        (429, vec![], "", Expect::Retry(None)),
        (
            403,
            github_limit.to_vec(),
            r#"{"message":"API rate limit exceeded"}"#,
            Expect::Retry(Some(60)),
        ),
        (429, github_limit.to_vec(), "", Expect::Retry(Some(60))),
        (
            403,
            vec![],
            r#"{"message":"You have exceeded a secondary rate limit."}"#,
            Expect::Retry(None),
        ),
        (
            429,
            vec![("RateLimit-Remaining", "0"), ("RateLimit-Reset", reset)],
            "",
            Expect::Retry(Some(60)),
        ),
        (429, vec![("RateLimit-Reset", "12")], "", Expect::Retry(Some(12))),
        (408, vec![], "", Expect::Retry(None)),
    ];
    for (code, pairs, body, expect) in cases {
        let status = StatusCode::from_u16(code).expect("status");
        let result = classify(status, &headers(&pairs), body.as_bytes(), now());
        assert!(expect.matches(&result), "{code} {pairs:?} {body}: {result:?}");
    }
}

#[test]
fn refusals_carry_the_forges_message() {
    let cases = [
        (
            401,
            r#"{"message":"Bad credentials","documentation_url":"https://docs"}"#,
            "Bad credentials",
        ),
        (
            403,
            r#"{"message":"Resource not accessible by personal access token"}"#,
            "Resource not accessible by personal access token",
        ),
        (404, r#"{"message":"404 Project Not Found"}"#, "404 Project Not Found"),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","message":"sha must be a 40 character SHA1"}]}"#,
            r#"Validation Failed; [{"code":"custom","message":"sha must be a 40 character SHA1","resource":"Status"}]"#,
        ),
        (
            400,
            r#"{"error":"state does not have a valid value"}"#,
            "state does not have a valid value",
        ),
        (400, r#"{"message":{"name":["is too long"]}}"#, r#"{"name":["is too long"]}"#),
        (404, "", "not found"),
        (404, "<html>nope</html>", "not found"),
        (401, "Unauthorized\n", "Unauthorized"),
    ];
    for (code, body, message) in cases {
        let status = StatusCode::from_u16(code).expect("status");
        assert_eq!(
            classify(status, &HeaderMap::new(), body.as_bytes(), now()),
            Err(PostError::Refused { status: code, message: message.into() }),
            "{code} {body}"
        );
    }
}

#[test]
fn refusal_messages_are_bounded_and_clean() {
    let body = json!({ "message": format!("line one\nline two {}", "x".repeat(1000)) }).to_string();
    let Err(PostError::Refused { message, .. }) =
        classify(StatusCode::UNPROCESSABLE_ENTITY, &HeaderMap::new(), body.as_bytes(), now())
    else {
        panic!("expected a refusal");
    };
    assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(message.starts_with("line one line two"), "{message}");
}

#[test]
fn redirects_are_refused_with_a_hint() {
    let result = classify(
        StatusCode::MOVED_PERMANENTLY,
        &headers(&[("Location", "https://elsewhere.example/api")]),
        b"",
        now(),
    );
    let Err(PostError::Refused { status: 301, message }) = result else {
        panic!("expected a refusal: {result:?}");
    };
    assert!(message.contains("elsewhere.example") && message.contains("API url"), "{message}");
}

#[test]
fn tokens_are_cut_out_of_messages() {
    assert_eq!(
        redact("bad token ghp_abc in request", b"ghp_abc"),
        "bad token [redacted] in request"
    );
    assert_eq!(redact("nothing here", b""), "nothing here");
}

#[test]
fn auth_headers_follow_each_forge() {
    let github = auth_headers(ForgeKind::Github, b"ghp_abc").expect("headers");
    assert_eq!(github["authorization"], "Bearer ghp_abc");
    assert!(github["authorization"].is_sensitive());
    assert_eq!(github["accept"], "application/vnd.github+json");
    assert_eq!(github["x-github-api-version"], "2022-11-28");
    assert_eq!(github["user-agent"], USER_AGENT);
    let gitea = auth_headers(ForgeKind::Gitea, b"abc").expect("headers");
    assert_eq!(gitea["authorization"], "token abc");
    let gitlab = auth_headers(ForgeKind::Gitlab, b"glpat-abc").expect("headers");
    assert_eq!(gitlab["private-token"], "glpat-abc");
    assert!(gitlab["private-token"].is_sensitive());
    assert!(gitlab.get("authorization").is_none());
    for bad in [&b""[..], b"new\nline"] {
        let Err(PostError::Refused { status: 0, message }) = auth_headers(ForgeKind::Github, bad)
        else {
            panic!("expected a refusal");
        };
        assert!(!message.contains("line"), "{message}");
    }
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let backoff = Backoff::default();
    let seconds = |failures, unit| backoff.delay(failures, None, unit).as_secs_f64();
    assert_eq!(seconds(1, 0.0), 0.5);
    assert_eq!(seconds(1, 1.0), 1.0);
    assert_eq!(seconds(2, 0.0), 1.0);
    assert_eq!(seconds(3, 0.5), 3.0);
    assert_eq!(seconds(10, 1.0), 300.0);
    assert_eq!(seconds(10, 0.0), 150.0);
    assert_eq!(seconds(u32::MAX, 1.0), 300.0);
    assert_eq!(seconds(0, 1.0), 1.0);
    assert_eq!(seconds(1, f64::NAN), 0.5);
    for failures in 1..40 {
        for unit in [0.0, 0.3, 0.999] {
            let delay = backoff.delay(failures, None, unit);
            assert!(delay <= backoff.max && delay >= backoff.initial / 2, "{failures} {unit}");
        }
    }
}

#[test]
fn backoff_honours_the_forges_wait() {
    let backoff = Backoff::default();
    assert_eq!(backoff.delay(1, Some(Duration::from_secs(30)), 1.0), Duration::from_secs(30));
    // A wait shorter than the step does not shorten it.
    assert_eq!(backoff.delay(4, Some(Duration::from_secs(1)), 1.0), Duration::from_secs(8));
    assert_eq!(backoff.delay(1, Some(Duration::from_secs(86_400)), 0.0), MAX_RETRY_AFTER);
    let unit = random_unit();
    assert!((0.0..1.0).contains(&unit));
}
