//! Authentication with a cluster secret: only nodes holding it form and join a cluster;
//! internal RPC without a valid, fresh signature is refused; public writes need the API
//! token; the secret never reaches a job, a log line or `status`. Without a secret,
//! `status` says `auth: off`.

use std::net::SocketAddr;

use eventide_consensus::auth::{self, Secret};
use eventide_consensus::network::WRITE_PATH;
use eventide_consensus::{codec, Command, JobId, Timestamp};
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, http, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

const SECRET: &str = "correct horse battery staple 42";
const OTHER_SECRET: &str = "a different secret of enough length";

fn secret() -> Secret {
    Secret::try_new(SECRET.as_bytes()).expect("valid secret")
}

fn with_secret(secret: &str, extra: Vec<String>) -> Options {
    Options { secret: Some(secret.to_owned()), extra, ..Options::default() }
}

/// A harmless command (cancelling a job that does not exist), codec-encoded.
fn harmless_write() -> Vec<u8> {
    let command = Command::Cancel { job: JobId(999_999), reason: "test".into(), at: Timestamp(1) };
    codec::encode(&command).expect("encode")
}

/// POSTs `body` to `path` with the given signature headers.
fn post_signed(addr: SocketAddr, path: &str, signed: &auth::SignedHeaders, body: &[u8]) -> u16 {
    let headers = [
        ("Content-Type", "application/x-eventide-codec"),
        (auth::TIME_HEADER, signed.time.as_str()),
        (auth::NONCE_HEADER, signed.nonce.as_str()),
        (auth::SIGNATURE_HEADER, signed.signature.as_str()),
    ];
    http::request_with(addr, "POST", path, &headers, body).expect("post").0
}

fn sign_now(secret: &Secret, nonce: &str, body: &[u8]) -> auth::SignedHeaders {
    auth::sign(secret, "POST", WRITE_PATH, auth::now_ms(), nonce, body)
}

fn node_count(status: &Value) -> usize {
    status["nodes"].as_array().map_or(0, Vec::len)
}

#[test]
fn only_nodes_with_the_secret_form_and_join_the_cluster() {
    let mut cluster = Cluster::start(3, with_secret(SECRET, Vec::new()));
    let leader = cluster.wait_for_agreed_leader();
    let seeds: Vec<String> =
        cluster.nodes.iter().flat_map(|n| ["--seed".to_owned(), n.addr.to_string()]).collect();
    // Outsiders seeded at the cluster: one without a secret, one with another secret.
    let secretless = Cluster::start(1, Options { extra: seeds.clone(), ..Options::default() });
    let stranger = Cluster::start(1, with_secret(OTHER_SECRET, seeds));
    let outsiders = [secretless.nodes[0].addr];

    // The cluster hears them, asks them to prove the secret, and they fail.
    wait_until("the cluster to refuse both outsiders' gossip", DEADLINE, || {
        let logs: String = cluster.nodes.iter().map(|n| n.log_text()).collect();
        outsiders
            .iter()
            .all(|addr| {
                logs.lines().any(|l| {
                    l.contains("failed the admission handshake") && l.contains(&addr.to_string())
                })
            })
            .then_some(())
    });
    // A node's HTTP server starts after its gossip: wait for each outsider to answer.
    let secretless_status =
        wait_until("the outsider to answer", DEADLINE, || secretless.nodes[0].status());
    assert_eq!(secretless_status["auth"], "off");
    for (_, status) in cluster.statuses() {
        assert_eq!(node_count(&status), 3, "outsiders must not appear: {status}");
        assert_eq!(status["auth"], "on");
    }
    assert_eq!(node_count(&secretless_status), 1, "{secretless_status}");
    assert!(secretless_status["leader"].is_null(), "{secretless_status}");
    let stranger_status =
        wait_until("the stranger to answer", DEADLINE, || stranger.nodes[0].status());
    assert_eq!(node_count(&stranger_status), 1, "{stranger_status}");

    // A write from an outsider: unsigned, or signed with the wrong secret, is refused.
    let target = cluster.nodes[leader].addr;
    let body = harmless_write();
    let (code, _) = http::request_with(target, "POST", WRITE_PATH, &[], &body).expect("post");
    assert_eq!(code, 401, "an unsigned write");
    let other = Secret::try_new(OTHER_SECRET.as_bytes()).expect("valid");
    assert_eq!(post_signed(target, WRITE_PATH, &sign_now(&other, "forged", &body), &body), 401);
    // A signature over another body (tampered) is refused.
    let signed = sign_now(&secret(), "tampered", &body);
    assert_eq!(post_signed(target, WRITE_PATH, &signed, b"something else"), 401);
    // An old request is refused.
    let old = auth::sign(&secret(), "POST", WRITE_PATH, auth::now_ms() - 120_000, "old", &body);
    assert_eq!(post_signed(target, WRITE_PATH, &old, &body), 401);
    // A valid request is accepted once; the same request again is a replay.
    let valid = sign_now(&secret(), "valid-once", &body);
    assert_eq!(post_signed(target, WRITE_PATH, &valid, &body), 200);
    assert_eq!(post_signed(target, WRITE_PATH, &valid, &body), 401);
    // Every other internal route is guarded too.
    let guarded = [
        "/internal/raft/vote",
        "/internal/raft/append",
        "/internal/dispatch/claim",
        "/internal/dispatch/finish-and-claim",
    ];
    for path in guarded {
        let (code, _) = http::request_with(target, "POST", path, &[], b"").expect("post");
        assert_eq!(code, 401, "{path}");
    }
    // Refusals are logged (at most one warning a second per kind), with the peer's
    // address; the unsigned write was the first refusal of its kind.
    let log = cluster.nodes[leader].log_text();
    assert!(
        log.lines().any(|l| l.contains("refused unauthenticated internal rpc")
            && l.contains("peer=127.0.0.1:")
            && l.contains(WRITE_PATH)
            && l.contains("missing header")),
        "refusals are logged"
    );

    // Public writes need the token: none is 401, a wrong one 403, the right one passes.
    let repo = tempfile::tempdir().expect("temp dir");
    let add = format!("{{\"url\": \"{}\"}}", repo.path().display());
    let (code, answer) = http::post(target, "/api/v1/repos", &add).expect("post");
    assert_eq!(code, 401, "{answer}");
    let error: Value = serde_json::from_str(&answer).expect("json error body");
    assert!(error["error"].is_string(), "{answer}");
    let wrong = [("Authorization", "Bearer 0123456789abcdef")];
    let (code, _) =
        http::request_with(target, "POST", "/api/v1/notify", &wrong, b"").expect("post");
    assert_eq!(code, 403);
    let token = cli(&["token", "--secret-file", &write_secret_file(&repo, SECRET)]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).expect("utf-8").trim().to_owned();
    assert_eq!(token, secret().api_token());
    assert!(!token.contains(SECRET));
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let (code, answer) =
        http::request_with(target, "POST", "/api/v1/repos", &headers, add.as_bytes())
            .expect("post");
    assert_eq!(code, 201, "{answer}");
    // A follower forwards notify to the leader with the token.
    let follower = cluster.running().find(|&i| i != leader).expect("a follower");
    let (code, answer) =
        http::request_with(cluster.nodes[follower].addr, "POST", "/api/v1/notify", &headers, b"")
            .expect("post");
    assert_eq!(code, 202, "{answer}");
    // Reads stay open.
    assert_eq!(http::get(target, "/api/v1/jobs").expect("get").0, 200);

    // A node started later with the secret is proven and added as a learner; the
    // outsiders still are not.
    let late = cluster.add();
    wait_until("the late node to join as a learner", DEADLINE, || {
        let status = cluster.nodes[late].status()?;
        let me = status["node"]["id"].clone();
        let role = status["nodes"].as_array()?.iter().find(|n| n["id"] == me)?["raft"].clone();
        (role == "learner").then_some(())
    });
    for (_, status) in cluster.statuses() {
        assert!(node_count(&status) <= 4, "outsiders must not appear: {status}");
    }

    for node in cluster.nodes.iter().chain(&secretless.nodes).chain(&stranger.nodes) {
        assert!(!node.log_text().contains(SECRET), "the secret in {}'s log", node.name);
    }
}

fn write_secret_file(dir: &tempfile::TempDir, secret: &str) -> String {
    let path = dir.path().join("cli.secret");
    std::fs::write(&path, secret).expect("write secret");
    path.display().to_string()
}

#[test]
fn jobs_never_see_the_secret() {
    let repo = GitRepo::new();
    repo.configure("env; echo OK", "");
    let commit = repo.commit("print the environment");
    let mut options = Options::watching(repo.url());
    options.secret = Some(SECRET.to_owned());
    // The node also has the secret in its own environment.
    options.env = vec![("EVENTIDE_SECRET".to_owned(), SECRET.to_owned())];
    // Three nodes: claims, renewals and results cross nodes as signed RPC.
    let cluster = Cluster::start(3, options);
    let jobs = wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    assert_eq!(jobs[0]["commit"], commit.as_str());
    assert_eq!(jobs[0]["state"], "passed", "{}", jobs[0]);
    let (code, log) =
        http::get(cluster.nodes[0].addr, &format!("/api/v1/jobs/{}/log", jobs[0]["id"]))
            .expect("log");
    assert_eq!(code, 200);
    assert!(log.contains("EVENTIDE_JOB_ID="), "the job printed its environment: {log}");
    assert!(!log.contains("EVENTIDE_SECRET"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    for node in &cluster.nodes {
        assert!(!node.log_text().contains(SECRET), "the secret in {}'s log", node.name);
        let status = node.status().expect("status");
        assert_eq!(status["auth"], "on");
        assert!(!status.to_string().contains(SECRET));
    }
}

#[test]
fn a_private_api_needs_the_token_for_reads_and_no_secret_means_auth_off() {
    let mut private = with_secret(SECRET, vec!["--private-api".into()]);
    private.bootstrap_expect = 1;
    let cluster = Cluster::start(1, private);
    let addr = cluster.nodes[0].addr;
    let token = format!("Bearer {}", secret().api_token());
    let status = wait_until("the private node to answer with the token", DEADLINE, || {
        let headers = [("Authorization", token.as_str())];
        let (code, body) = http::request_with(addr, "GET", "/api/v1/status", &headers, b"").ok()?;
        (code == 200).then(|| serde_json::from_str::<Value>(&body).ok()).flatten()
    });
    assert_eq!(status["auth"], "on");
    assert_eq!(http::get(addr, "/api/v1/status").expect("get").0, 401);
    assert_eq!(http::get(addr, "/api/v1/jobs").expect("get").0, 401);
    // The CLI reads with the secret from the environment.
    let output = std::process::Command::new(eventide_tests::binary())
        .args(["status", "--json", "--node", &addr.to_string()])
        .env("EVENTIDE_SECRET", SECRET)
        .output()
        .expect("run status");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(doc["auth"], "on");
    let without = cli(&["status", "--node", &addr.to_string()]);
    assert!(!without.status.success());

    let open = Cluster::start(1, Options { bootstrap_expect: 1, ..Options::default() });
    let addr = open.nodes[0].addr.to_string();
    wait_until("the open node to lead itself", DEADLINE, || {
        open.nodes[0].status().filter(|s| s["leader"]["id"].is_string())
    });
    let output = cli(&["status", "--node", &addr]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("auth: off"), "{text}");
    let json = cli(&["status", "--json", "--node", &addr]);
    let doc: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(doc["auth"], "off");
    assert!(open.nodes[0].log_text().contains("NO CLUSTER SECRET"));
    // Without a secret, writes are open.
    assert_eq!(http::post(open.nodes[0].addr, "/api/v1/notify", "").expect("post").0 / 100, 2);
}

#[test]
fn a_bad_secret_file_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").expect("write");
    let data = dir.path().join("data");
    for file in [short.display().to_string(), dir.path().join("missing").display().to_string()] {
        let output =
            cli(&["run", "--data-dir", &data.display().to_string(), "--secret-file", &file]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--secret-file"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
