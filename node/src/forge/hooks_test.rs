use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::*;

const GITHUB_PUSH: &str = include_str!("../../../tests/fixtures/hooks/github-push.json");
const GITHUB_PING: &str = include_str!("../../../tests/fixtures/hooks/github-ping.json");
const GITEA_PUSH: &str = include_str!("../../../tests/fixtures/hooks/gitea-push.json");
const GITLAB_PUSH: &str = include_str!("../../../tests/fixtures/hooks/gitlab-push.json");

const SECRET: &[u8] = b"It's a Secret to Everybody";

/// Headers of a delivery and what `verify` says to them.
type Case<'a> = (Vec<(&'a str, &'a str)>, Result<(), HookError>);

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        map.append(name, HeaderValue::from_str(value).expect("header value"));
    }
    map
}

#[test]
fn the_documented_example_signature_verifies() {
    // The example GitHub's documentation gives for checking an implementation.
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let map = headers(&[("X-Hub-Signature-256", signature)]);
    assert_eq!(verify(ForgeKind::Github, &map, b"Hello, World!", SECRET), Ok(()));
    assert_eq!(sign(b"Hello, World!", SECRET), signature["sha256=".len()..]);
}

#[test]
fn github_signatures_are_checked() {
    let body = GITHUB_PUSH.as_bytes();
    let good = format!("sha256={}", sign(body, SECRET));
    let upper = format!("sha256={}", sign(body, SECRET).to_uppercase());
    let other = format!("sha256={}", sign(body, b"another secret"));
    let bare = sign(body, SECRET);
    let header = "X-Hub-Signature-256";
    let bad = Err(HookError::BadSignature { header });
    let cases: Vec<Case> = vec![
        (vec![(header, &good)], Ok(())),
        (vec![(header, &upper)], Ok(())),
        (vec![(header, &other)], bad.clone()),
        (vec![(header, &bare)], bad.clone()),
        (vec![(header, "sha256=zz")], bad.clone()),
        (vec![(header, "sha256=")], bad.clone()),
        // The SHA-1 header alone is not enough.
        (vec![("X-Hub-Signature", "sha1=0000")], Err(HookError::Unsigned { header })),
        (vec![], Err(HookError::Unsigned { header })),
    ];
    for (pairs, expected) in cases {
        assert_eq!(
            verify(ForgeKind::Github, &headers(&pairs), body, SECRET),
            expected,
            "{pairs:?}"
        );
    }
}

#[test]
fn a_changed_body_fails_the_signature() {
    let body = GITHUB_PUSH.as_bytes();
    let signature = format!("sha256={}", sign(body, SECRET));
    let map = headers(&[("X-Hub-Signature-256", &signature)]);
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(verify(ForgeKind::Github, &map, &changed, SECRET).is_err());
}

#[test]
fn gitea_and_forgejo_signatures_are_checked() {
    let body = GITEA_PUSH.as_bytes();
    let good = sign(body, SECRET);
    let wrong = sign(body, b"wrong");
    let prefixed = format!("sha256={good}");
    let header = "X-Gitea-Signature";
    let cases: Vec<Case> = vec![
        (vec![("X-Gitea-Signature", &good)], Ok(())),
        (vec![("X-Forgejo-Signature", &good)], Ok(())),
        (vec![("X-Gitea-Signature", &good), ("X-Forgejo-Signature", &good)], Ok(())),
        (vec![("X-Gitea-Signature", &wrong)], Err(HookError::BadSignature { header })),
        // GitHub's prefix is not part of Gitea's header.
        (vec![("X-Gitea-Signature", prefixed.as_str())], Err(HookError::BadSignature { header })),
        (vec![], Err(HookError::Unsigned { header })),
    ];
    for (pairs, expected) in cases {
        assert_eq!(verify(ForgeKind::Gitea, &headers(&pairs), body, SECRET), expected, "{pairs:?}");
    }
}

#[test]
fn gitlab_tokens_are_compared_whole() {
    let body = GITLAB_PUSH.as_bytes();
    let header = "X-Gitlab-Token";
    let secret = "s3cret-token";
    let cases: Vec<Case> = vec![
        (vec![(header, secret)], Ok(())),
        (vec![(header, "s3cret-toke")], Err(HookError::BadSignature { header })),
        (vec![(header, "s3cret-token!")], Err(HookError::BadSignature { header })),
        (vec![(header, "")], Err(HookError::BadSignature { header })),
        (vec![], Err(HookError::Unsigned { header })),
    ];
    for (pairs, expected) in cases {
        let map = headers(&pairs);
        assert_eq!(verify(ForgeKind::Gitlab, &map, body, secret.as_bytes()), expected, "{pairs:?}");
    }
}

#[test]
fn an_empty_secret_refuses_everything() {
    let body = b"{}";
    let empty_hmac = format!("sha256={}", sign(body, b""));
    let map = headers(&[("X-Hub-Signature-256", &empty_hmac), ("X-Gitlab-Token", "")]);
    for forge in ForgeKind::ALL {
        assert_eq!(verify(forge, &map, body, b""), Err(HookError::NoSecret), "{forge}");
    }
}

#[test]
fn oversized_bodies_are_refused_before_anything_else() {
    let body = vec![b' '; MAX_HOOK_BYTES + 1];
    let error = HookError::TooLarge { size: MAX_HOOK_BYTES + 1, limit: MAX_HOOK_BYTES };
    for forge in ForgeKind::ALL {
        assert_eq!(verify(forge, &HeaderMap::new(), &body, SECRET), Err(error.clone()));
        assert_eq!(parse(forge, &HeaderMap::new(), &body), Err(error.clone()));
    }
    assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn errors_map_to_http_statuses() {
    let cases = [
        (HookError::NoSecret, StatusCode::UNAUTHORIZED),
        (HookError::Unsigned { header: "X-Gitlab-Token" }, StatusCode::UNAUTHORIZED),
        (HookError::BadSignature { header: "X-Gitlab-Token" }, StatusCode::UNAUTHORIZED),
        (HookError::MissingHeader { header: "X-GitHub-Event" }, StatusCode::BAD_REQUEST),
        (HookError::FormEncoded, StatusCode::BAD_REQUEST),
        (HookError::Json { reason: "x".into() }, StatusCode::BAD_REQUEST),
        (HookError::MissingField { field: "ref" }, StatusCode::BAD_REQUEST),
    ];
    for (error, status) in cases {
        assert_eq!(error.status(), status, "{error}");
    }
}

#[test]
fn the_github_push_fixture_parses() {
    let map = headers(&[
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ]);
    let delivery = parse(ForgeKind::Github, &map, GITHUB_PUSH.as_bytes()).expect("parse");
    assert_eq!(
        delivery,
        Delivery {
            forge: ForgeKind::Github,
            event: HookEvent::Push {
                branch: Some("main".into()),
                before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
                after: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
            },
            delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            repository_urls: vec![
                "https://github.com/octo-org/hello.git".into(),
                "git@github.com:octo-org/hello.git".into(),
                "https://github.com/octo-org/hello".into(),
                "git://github.com/octo-org/hello.git".into(),
            ],
        }
    );
}

#[test]
fn the_github_ping_fixture_parses() {
    let map = headers(&[("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "d-1")]);
    let delivery = parse(ForgeKind::Github, &map, GITHUB_PING.as_bytes()).expect("parse");
    assert_eq!(delivery.event, HookEvent::Ping);
    assert_eq!(delivery.delivery_id.as_deref(), Some("d-1"));
    assert!(delivery.repository_urls.contains(&"https://github.com/octo-org/hello.git".into()));
    // A ping from an organisation's webhook names no repository; that is fine.
    assert_eq!(
        parse(ForgeKind::Github, &map, br#"{"zen":"Design for failure.","hook_id":1}"#)
            .expect("parse")
            .repository_urls,
        Vec::<String>::new()
    );
}

#[test]
fn the_gitea_push_fixture_parses_under_either_header_set() {
    let expected = Delivery {
        forge: ForgeKind::Gitea,
        event: HookEvent::Push {
            branch: Some("main".into()),
            before: "28e1879d029cb852e4844d9c718537df08844e03".into(),
            after: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
        },
        delivery_id: Some("f6266f16-1bf3-46a5-9ea4-602e06ead473".into()),
        repository_urls: vec![
            "https://gitea.example.com/octo-org/hello.git".into(),
            "git@gitea.example.com:octo-org/hello.git".into(),
            "https://gitea.example.com/octo-org/hello".into(),
        ],
    };
    let id = "f6266f16-1bf3-46a5-9ea4-602e06ead473";
    for prefix in ["X-Gitea", "X-Forgejo"] {
        let map =
            headers(&[(&format!("{prefix}-Event"), "push"), (&format!("{prefix}-Delivery"), id)]);
        assert_eq!(parse(ForgeKind::Gitea, &map, GITEA_PUSH.as_bytes()), Ok(expected.clone()));
    }
}

#[test]
fn the_gitlab_push_fixture_parses() {
    let map = headers(&[
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"),
    ]);
    let delivery = parse(ForgeKind::Gitlab, &map, GITLAB_PUSH.as_bytes()).expect("parse");
    assert_eq!(
        delivery,
        Delivery {
            forge: ForgeKind::Gitlab,
            event: HookEvent::Push {
                branch: Some("main".into()),
                before: "95790bf891e76fee5e1747ab589903a6a1f80f22".into(),
                after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
            },
            delivery_id: Some("13792a34-cac6-4fda-95a8-c58e00a3954e".into()),
            repository_urls: vec![
                "https://gitlab.example.com/octo-org/tools/hello.git".into(),
                "git@gitlab.example.com:octo-org/tools/hello.git".into(),
                "https://gitlab.example.com/octo-org/tools/hello".into(),
            ],
        }
    );
}

#[test]
fn gitlab_prefers_the_idempotency_key() {
    let map = headers(&[
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "event-uuid"),
        ("Idempotency-Key", "retry-stable"),
    ]);
    let delivery = parse(ForgeKind::Gitlab, &map, GITLAB_PUSH.as_bytes()).expect("parse");
    assert_eq!(delivery.delivery_id.as_deref(), Some("retry-stable"));
}

#[test]
fn gitlab_tag_pushes_and_system_hooks() {
    let mut tag: serde_json::Value = serde_json::from_str(GITLAB_PUSH).expect("fixture");
    tag["object_kind"] = "tag_push".into();
    tag["event_name"] = "tag_push".into();
    tag["ref"] = "refs/tags/v1.0".into();
    let tag = serde_json::to_vec(&tag).expect("encode");
    let map = headers(&[("X-Gitlab-Event", "Tag Push Hook")]);
    let delivery = parse(ForgeKind::Gitlab, &map, &tag).expect("parse");
    assert!(matches!(delivery.event, HookEvent::Push { branch: None, .. }), "{delivery:?}");
    assert_eq!(delivery.delivery_id, None);

    let system = headers(&[("X-Gitlab-Event", "System Hook")]);
    let delivery = parse(ForgeKind::Gitlab, &system, GITLAB_PUSH.as_bytes()).expect("parse");
    assert!(matches!(delivery.event, HookEvent::Push { branch: Some(_), .. }), "{delivery:?}");
    let project_created = br#"{"event_name":"project_create","name":"hello"}"#;
    let delivery = parse(ForgeKind::Gitlab, &system, project_created).expect("parse");
    assert_eq!(delivery.event, HookEvent::Other("project_create".into()));
}

#[test]
fn other_events_are_named_and_bounded() {
    let long = "x".repeat(200);
    let map = headers(&[("X-GitHub-Event", "pull_request")]);
    let delivery = parse(ForgeKind::Github, &map, b"{}").expect("parse");
    assert_eq!(delivery.event, HookEvent::Other("pull_request".into()));
    let map = headers(&[("X-GitHub-Event", &long)]);
    assert!(matches!(
        parse(ForgeKind::Github, &map, b"{}"),
        Err(HookError::MalformedHeader { header: "X-GitHub-Event", .. })
    ));
}

#[test]
fn malformed_deliveries_say_what_is_wrong() {
    let push = headers(&[("X-GitHub-Event", "push")]);
    let mut no_ref: serde_json::Value = serde_json::from_str(GITHUB_PUSH).expect("fixture");
    no_ref.as_object_mut().expect("object").remove("ref");
    let mut short_after: serde_json::Value = serde_json::from_str(GITHUB_PUSH).expect("fixture");
    short_after["after"] = "0d1a26e".into();
    let mut no_repository: serde_json::Value = serde_json::from_str(GITHUB_PUSH).expect("fixture");
    no_repository.as_object_mut().expect("object").remove("repository");
    let cases: Vec<(HeaderMap, Vec<u8>, HookError)> = vec![
        (HeaderMap::new(), b"{}".to_vec(), HookError::MissingHeader { header: "X-GitHub-Event" }),
        (push.clone(), b"payload=%7B%7D".to_vec(), HookError::FormEncoded),
        (
            push.clone(),
            b"[1, 2]".to_vec(),
            HookError::Json { reason: "the top level is not an object".into() },
        ),
        (
            push.clone(),
            b"{\"ref\": ".to_vec(),
            HookError::Json { reason: "end of input error at line 1 column 8".into() },
        ),
        (
            push.clone(),
            serde_json::to_vec(&no_ref).expect("json"),
            HookError::MissingField { field: "ref" },
        ),
        (
            push.clone(),
            serde_json::to_vec(&short_after).expect("json"),
            HookError::MissingField { field: "after" },
        ),
        (
            push.clone(),
            serde_json::to_vec(&no_repository).expect("json"),
            HookError::MissingField { field: "repository url" },
        ),
    ];
    for (map, body, expected) in cases {
        assert_eq!(parse(ForgeKind::Github, &map, &body), Err(expected));
    }
}

#[test]
fn json_errors_never_quote_the_body() {
    // A wrong type inside a value serde would quote; the message keeps to a position.
    let map = headers(&[("X-Gitea-Event", "push")]);
    let error = parse(ForgeKind::Gitea, &map, b"{\"secret\": \"hunter2\" oops}").unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn delivery_ids_must_be_short_visible_text() {
    let long = "a".repeat(MAX_DELIVERY_ID_CHARS + 1);
    for id in ["", "has space", long.as_str()] {
        let map = headers(&[("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", id)]);
        assert!(
            matches!(
                parse(ForgeKind::Github, &map, b"{}"),
                Err(HookError::MalformedHeader { header: "X-GitHub-Delivery", .. })
            ),
            "{id:?}"
        );
    }
}

#[test]
fn zero_commits_mark_created_and_deleted_refs() {
    assert!(is_zero_commit("0000000000000000000000000000000000000000"));
    assert!(!is_zero_commit("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
    assert!(!is_zero_commit(""));
}

#[test]
fn delivery_ids_recognise_repeats() {
    let mut ids = DeliveryIds::new(3);
    assert!(ids.first_sighting(ForgeKind::Github, "a"));
    assert!(!ids.first_sighting(ForgeKind::Github, "a"));
    // The same id from another forge is another delivery.
    assert!(ids.first_sighting(ForgeKind::Gitlab, "a"));
    assert!(ids.first_sighting(ForgeKind::Github, "b"));
    assert_eq!(ids.len(), 3);
    // A fourth id pushes out the oldest.
    assert!(ids.first_sighting(ForgeKind::Github, "c"));
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(ForgeKind::Github, "a"));
    assert!(ids.contains(ForgeKind::Gitlab, "a"));
    assert!(ids.first_sighting(ForgeKind::Github, "a"));
}

#[test]
fn delivery_ids_stay_bounded() {
    let mut ids = DeliveryIds::default();
    for index in 0..(DELIVERY_MEMORY * 2) {
        assert!(ids.first_sighting(ForgeKind::Gitea, &index.to_string()));
    }
    assert_eq!(ids.len(), DELIVERY_MEMORY);
    assert!(!ids.contains(ForgeKind::Gitea, "0"));
    assert!(ids.contains(ForgeKind::Gitea, &(DELIVERY_MEMORY * 2 - 1).to_string()));
    assert!(DeliveryIds::new(0).first_sighting(ForgeKind::Gitea, "x"));
}
