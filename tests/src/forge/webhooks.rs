//! Webhook deliveries as each forge sends them: payloads from the fixtures, the headers,
//! the signature, and sending.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::Forge;

const GITHUB_PUSH: &str = include_str!("../../fixtures/hooks/github-push.json");
const GITHUB_PING: &str = include_str!("../../fixtures/hooks/github-ping.json");
const GITEA_PUSH: &str = include_str!("../../fixtures/hooks/gitea-push.json");
const GITLAB_PUSH: &str = include_str!("../../fixtures/hooks/gitlab-push.json");

/// The all-zero commit id forges send for a created or deleted ref.
pub const ZERO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// A push payload of `forge` for `branch` of the repository at `clone_url`, moving from
/// `before` to `after`.
pub fn push_payload(
    forge: Forge,
    clone_url: &str,
    branch: &str,
    before: &str,
    after: &str,
) -> Vec<u8> {
    let fixture = match forge {
        Forge::Github => GITHUB_PUSH,
        Forge::Gitea => GITEA_PUSH,
        Forge::Gitlab => GITLAB_PUSH,
    };
    let mut payload: Value = serde_json::from_str(fixture).expect("push fixture is JSON");
    payload["ref"] = format!("refs/heads/{branch}").into();
    payload["before"] = before.into();
    payload["after"] = after.into();
    payload["commits"][0]["id"] = after.into();
    match forge {
        Forge::Github => {
            payload["created"] = (before == ZERO_COMMIT).into();
            payload["deleted"] = (after == ZERO_COMMIT).into();
            payload["head_commit"]["id"] = after.into();
            payload["repository"]["clone_url"] = clone_url.into();
        }
        Forge::Gitea => {
            payload["head_commit"]["id"] = after.into();
            payload["repository"]["clone_url"] = clone_url.into();
        }
        Forge::Gitlab => {
            payload["checkout_sha"] = after.into();
            payload["project"]["git_http_url"] = clone_url.into();
            payload["repository"]["git_http_url"] = clone_url.into();
        }
    }
    serde_json::to_vec(&payload).expect("encode payload")
}

/// GitHub's ping payload for the repository at `clone_url`.
pub fn ping_payload(clone_url: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_str(GITHUB_PING).expect("ping fixture is JSON");
    payload["repository"]["clone_url"] = clone_url.into();
    serde_json::to_vec(&payload).expect("encode payload")
}

/// The headers `forge` sends with a delivery of `event` (its own name for it: `push`,
/// `ping`, GitLab's `Push Hook`), signed (or, for GitLab, carrying the token) with
/// `secret`.
pub fn hook_headers(
    forge: Forge,
    event: &str,
    secret: &str,
    body: &[u8],
    delivery_id: &str,
) -> Vec<(String, String)> {
    let pairs: Vec<(&str, String)> = match forge {
        Forge::Github => vec![
            ("User-Agent", "GitHub-Hookshot/5a3b1c9".into()),
            ("X-GitHub-Event", event.into()),
            ("X-GitHub-Delivery", delivery_id.into()),
            ("X-GitHub-Hook-ID", "109948940".into()),
            ("X-GitHub-Hook-Installation-Target-Type", "repository".into()),
            ("X-GitHub-Hook-Installation-Target-ID", "35129377".into()),
            ("X-Hub-Signature-256", format!("sha256={}", sign(body, secret))),
        ],
        Forge::Gitea => vec![
            ("User-Agent", "Go-http-client/1.1".into()),
            ("X-Gitea-Event", event.into()),
            ("X-Gitea-Event-Type", event.into()),
            ("X-Gitea-Delivery", delivery_id.into()),
            ("X-Gitea-Signature", sign(body, secret)),
            ("X-Gogs-Event", event.into()),
            ("X-Gogs-Delivery", delivery_id.into()),
            ("X-GitHub-Event", event.into()),
            ("X-GitHub-Delivery", delivery_id.into()),
        ],
        Forge::Gitlab => vec![
            ("User-Agent", "GitLab/17.6.0".into()),
            ("X-Gitlab-Event", event.into()),
            ("X-Gitlab-Token", secret.into()),
            ("X-Gitlab-Instance", "https://gitlab.example.com".into()),
            ("X-Gitlab-Webhook-UUID", "2b1f7e0c-31a2-4b6e-9a0c-5d2f1c3e4a10".into()),
            ("X-Gitlab-Event-UUID", delivery_id.into()),
            ("Idempotency-Key", delivery_id.into()),
        ],
    };
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    headers.extend(pairs.into_iter().map(|(name, value)| (name.to_owned(), value)));
    headers
}

/// POSTs a delivery to `hook_url` (`http://ADDR/api/v1/hooks/github`); the answer's
/// status code.
pub fn send_hook(hook_url: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    let url = reqwest::Url::parse(hook_url).expect("hook url");
    let addr = url.socket_addrs(|| Some(80)).expect("hook url address")[0];
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    crate::http::request_with(addr, "POST", &path, &pairs, body).expect("send webhook").0
}

/// Delivers a push of `branch` (from `before` to `after`) of the repository at
/// `clone_url`, as `forge` would; the answer's status code.
#[allow(clippy::too_many_arguments)]
pub fn send_push(
    forge: Forge,
    hook_url: &str,
    secret: &str,
    clone_url: &str,
    branch: &str,
    before: &str,
    after: &str,
    delivery_id: &str,
) -> u16 {
    let body = push_payload(forge, clone_url, branch, before, after);
    let event = match forge {
        Forge::Github | Forge::Gitea => "push",
        Forge::Gitlab => "Push Hook",
    };
    send_hook(hook_url, &hook_headers(forge, event, secret, &body, delivery_id), &body)
}

/// Delivers GitHub's ping for the repository at `clone_url`; the answer's status code.
pub fn send_ping(hook_url: &str, secret: &str, clone_url: &str, delivery_id: &str) -> u16 {
    let body = ping_payload(clone_url);
    send_hook(hook_url, &hook_headers(Forge::Github, "ping", secret, &body, delivery_id), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    #[test]
    fn payloads_carry_the_given_fields_and_signatures() {
        let before = "1111111111111111111111111111111111111111";
        for forge in Forge::ALL {
            let body = push_payload(forge, "http://127.0.0.1:9/repo.git", "release/1", before, SHA);
            let payload: Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(payload["ref"], "refs/heads/release/1");
            assert_eq!(payload["before"], before);
            assert_eq!(payload["after"], SHA);
            let url = match forge {
                Forge::Gitlab => &payload["project"]["git_http_url"],
                _ => &payload["repository"]["clone_url"],
            };
            assert_eq!(url, "http://127.0.0.1:9/repo.git");
            let headers = hook_headers(forge, "push", "s", &body, "id-1");
            assert!(headers.iter().any(|(_, v)| v == "id-1"), "{forge:?}");
        }
        let body = ping_payload("http://x/r.git");
        let headers = hook_headers(Forge::Github, "ping", "secret", &body, "d");
        let signature = headers.iter().find(|(n, _)| n == "X-Hub-Signature-256").expect("signed");
        assert_eq!(signature.1, format!("sha256={}", sign(&body, "secret")));
        // The example of GitHub's documentation.
        assert_eq!(
            sign(b"Hello, World!", "It's a Secret to Everybody"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    /// What the node makes of a delivery built here.
    fn node_reads(
        forge: Forge,
        headers: &[(String, String)],
        body: &[u8],
        secret: &str,
    ) -> eventide_node::forge::Delivery {
        use eventide_node::forge::hooks;
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let kind = forge.as_str().parse().expect("forge kind");
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            map.append(name, HeaderValue::from_str(value).expect("header value"));
        }
        hooks::verify(kind, &map, body, secret.as_bytes()).expect("the node verifies it");
        hooks::parse(kind, &map, body).expect("the node parses it")
    }

    #[test]
    fn the_node_verifies_and_reads_every_delivery() {
        use eventide_node::forge::HookEvent;
        let url = "http://127.0.0.1:9/repo.git";
        for forge in Forge::ALL {
            let body = push_payload(forge, url, "main", ZERO_COMMIT, SHA);
            let event = if forge == Forge::Gitlab { "Push Hook" } else { "push" };
            let headers = hook_headers(forge, event, "hook-secret", &body, "delivery-7");
            let delivery = node_reads(forge, &headers, &body, "hook-secret");
            assert_eq!(
                delivery.event,
                HookEvent::Push {
                    branch: Some("main".into()),
                    before: ZERO_COMMIT.into(),
                    after: SHA.into()
                },
                "{forge:?}"
            );
            assert_eq!(delivery.delivery_id.as_deref(), Some("delivery-7"), "{forge:?}");
            assert_eq!(delivery.repository_urls[0], url, "{forge:?}");
        }
        let body = ping_payload(url);
        let headers = hook_headers(Forge::Github, "ping", "s", &body, "d-1");
        assert_eq!(node_reads(Forge::Github, &headers, &body, "s").event, HookEvent::Ping);
    }
}
