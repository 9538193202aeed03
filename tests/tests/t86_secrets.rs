//! The secret store end to end: `secret set` on one node, `secret list` on another (names
//! and times, never values), updates and removal survive a restart, and the clear value
//! never reaches a file under any data dir (sled, Raft log, snapshots, job logs) nor any
//! node's log. Every secret route needs the API token, a cluster without a secret refuses
//! the store, and bad names and oversized values are 400.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use eventide_api::{ErrorBody, SecretDoc};
use eventide_consensus::auth::Secret;
use eventide_tests::{binary, cli, http, wait_until, Cluster, Options, DEADLINE};

const SECRET: &str = "correct horse battery staple 86";
/// Distinctive bytes, so that finding them anywhere on disk means a leak.
const VALUE: &str = "tide-VALUE-9f3c71e2-do-not-store-in-clear";
const NEW_VALUE: &str = "tide-NEWVALUE-04ab8d55-also-never-in-clear";

fn token() -> String {
    Secret::try_new(SECRET.as_bytes()).expect("valid secret").api_token()
}

fn node_flag(addr: SocketAddr) -> String {
    addr.to_string()
}

/// `eventide-node secret ARGS` against `addr` with the secret file; must succeed.
fn secret_cli(addr: SocketAddr, secret_file: &Path, args: &[&str]) -> String {
    let node = node_flag(addr);
    let file = secret_file.display().to_string();
    let mut all = vec!["secret"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--node", &node, "--secret-file", &file]);
    let output = cli(&all);
    assert!(
        output.status.success(),
        "secret {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn list_json(addr: SocketAddr, secret_file: &Path) -> Vec<SecretDoc> {
    let text = secret_cli(addr, secret_file, &["list", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a secret list: {e}: {text}"))
}

/// Every regular file under `dir`.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Fails if `value` is in any file of any node's data dir or in any node's log.
fn assert_nowhere_in_clear(cluster: &Cluster, value: &str) {
    for node in &cluster.nodes {
        let mut files = Vec::new();
        files_under(&node.data_dir, &mut files);
        assert!(!files.is_empty(), "{} has no files under {}", node.name, node.data_dir.display());
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!contains(&bytes, value.as_bytes()), "the value is in {}", file.display());
        }
        assert!(!node.log_text().contains(value), "the value is in the log of {}", node.name);
    }
}

fn put(addr: SocketAddr, name: &str, body: &str, authorization: Option<&str>) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let path = format!("/api/v1/secrets/{name}");
    http::request_with(addr, "PUT", &path, &headers, body.as_bytes()).expect("put")
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).map(|e| e.error).unwrap_or_else(|_| body.to_owned())
}

#[test]
fn secrets_are_set_listed_updated_and_removed_and_never_stored_in_clear() {
    let options = Options { secret: Some(SECRET.to_owned()), ..Options::default() };
    let mut cluster = Cluster::start(3, options);
    cluster.wait_for_agreed_leader();
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("cli.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret file");
    let value_file = dir.path().join("value");
    std::fs::write(&value_file, VALUE).expect("write value file");
    let (first, third) = (cluster.nodes[0].addr, cluster.nodes[2].addr);

    // Set through the CLI on node 1, from a file.
    let value_path = value_file.display().to_string();
    let said = secret_cli(first, &secret_file, &["set", "DEPLOY_KEY", "--from-file", &value_path]);
    assert_eq!(said.trim(), "stored secret DEPLOY_KEY");

    // Node 3 lists it, with times and no value.
    let listed = wait_until("node 3 to list DEPLOY_KEY", DEADLINE, || {
        let list = list_json(third, &secret_file);
        (list.len() == 1).then_some(list)
    });
    let created = listed[0].clone();
    assert_eq!(created.name, "DEPLOY_KEY");
    assert_eq!(created.created_at, created.updated_at);
    let table = secret_cli(third, &secret_file, &["list"]);
    assert!(table.contains("DEPLOY_KEY") && !table.contains(VALUE), "{table}");
    let (code, raw) = http::request_with(
        third,
        "GET",
        "/api/v1/secrets",
        &[("Authorization", &format!("Bearer {}", token()))],
        b"",
    )
    .expect("get");
    assert_eq!(code, 200);
    assert!(!raw.contains(VALUE) && !raw.contains("value"), "{raw}");

    // An update from stdin (its trailing newline stripped) moves updated_at only.
    let node = node_flag(cluster.nodes[1].addr);
    let file = secret_file.display().to_string();
    let mut child = Command::new(binary())
        .args(["secret", "set", "DEPLOY_KEY", "--node", &node, "--secret-file", &file])
        .env_remove("EVENTIDE_NODE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eventide-node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{NEW_VALUE}\n").as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "updated secret DEPLOY_KEY");
    let updated = wait_until("node 3 to see the update", DEADLINE, || {
        let list = list_json(third, &secret_file);
        list.into_iter().find(|s| s.updated_at > created.updated_at)
    });
    assert_eq!(updated.created_at, created.created_at);

    // A second secret, then the first removed.
    std::fs::write(&value_file, VALUE).expect("write value file");
    secret_cli(first, &secret_file, &["set", "OTHER_KEY", "--from-file", &value_path]);
    let said = secret_cli(third, &secret_file, &["rm", "DEPLOY_KEY"]);
    assert_eq!(said.trim(), "removed secret DEPLOY_KEY");
    let auth = format!("Bearer {}", token());
    let (code, body) = http::request_with(
        first,
        "DELETE",
        "/api/v1/secrets/DEPLOY_KEY",
        &[("Authorization", &auth)],
        b"",
    )
    .expect("delete");
    assert_eq!(code, 404, "{body}");
    let names = |list: &[SecretDoc]| list.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let expected = wait_until("every node to list only OTHER_KEY", DEADLINE, || {
        let lists: Vec<Vec<SecretDoc>> =
            cluster.nodes.iter().map(|n| list_json(n.addr, &secret_file)).collect();
        lists.iter().all(|l| names(l) == ["OTHER_KEY"] && *l == lists[0]).then(|| lists[0].clone())
    });

    // A restarted node lists the same (its state comes back from its snapshot and log).
    cluster.stop(1);
    cluster.restart(1);
    let second = cluster.nodes[1].addr;
    wait_until("the restarted node to list the same secrets", DEADLINE, || {
        let output = cli(&[
            "secret",
            "list",
            "--json",
            "--node",
            &second.to_string(),
            "--secret-file",
            &file,
        ]);
        let list: Vec<SecretDoc> = serde_json::from_slice(&output.stdout).ok()?;
        (list == expected).then_some(())
    });

    assert_nowhere_in_clear(&cluster, VALUE);
    assert_nowhere_in_clear(&cluster, NEW_VALUE);
}

#[test]
fn the_store_needs_the_token_a_cluster_secret_and_valid_names_and_sizes() {
    let options =
        Options { bootstrap_expect: 1, secret: Some(SECRET.to_owned()), ..Options::default() };
    let cluster = Cluster::start(1, options);
    cluster.wait_for_agreed_leader();
    let addr = cluster.nodes[0].addr;
    let auth = format!("Bearer {}", token());

    // Without the token every route is 401, reads included; a wrong one is 403.
    assert_eq!(http::get(addr, "/api/v1/secrets").expect("get").0, 401);
    assert_eq!(put(addr, "A", r#"{"value": "x"}"#, None).0, 401);
    assert_eq!(
        http::request_with(addr, "DELETE", "/api/v1/secrets/A", &[], b"").expect("delete").0,
        401
    );
    assert_eq!(put(addr, "A", r#"{"value": "x"}"#, Some("Bearer 00")).0, 403);

    // Bad names and oversized values are 400 with a reason.
    let pattern = "a secret name has letters, digits and '_' only and does not start with a digit";
    for name in ["1ABC", "A-B", "A%20B"] {
        let (code, body) = put(addr, name, r#"{"value": "x"}"#, Some(&auth));
        assert_eq!((code, error_of(&body).as_str()), (400, pattern), "{name}");
    }
    let long = "A".repeat(65);
    let (code, body) = put(addr, &long, r#"{"value": "x"}"#, Some(&auth));
    assert_eq!(
        (code, error_of(&body).as_str()),
        (400, "a secret name has at most 64 characters, not 65")
    );
    let oversized = format!(r#"{{"value": "{}"}}"#, "v".repeat(64 * 1024 + 1));
    let (code, body) = put(addr, "BIG", &oversized, Some(&auth));
    assert_eq!(
        (code, error_of(&body).as_str()),
        (400, "a secret value has at most 65536 bytes, not 65537")
    );
    // A body that is not a value is refused without being quoted back.
    let (code, body) = put(addr, "QUOTED", r#""tide-quoted-VALUE""#, Some(&auth));
    assert_eq!(code, 400, "{body}");
    assert!(!body.contains("tide-quoted-VALUE"), "{body}");
    let most = format!(r#"{{"value": "{}"}}"#, "v".repeat(64 * 1024));
    let (code, body) = put(addr, "BIG", &most, Some(&auth));
    assert_eq!(code, 200, "{body}");
    let doc: SecretDoc = serde_json::from_str(&body).expect("a secret document");
    assert_eq!(doc.name, "BIG");

    // The CLI says why a name is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("cli.secret");
    std::fs::write(&secret_file, SECRET).expect("write secret file");
    let value = dir.path().join("value");
    std::fs::write(&value, "x").expect("write value");
    let output = cli(&[
        "secret",
        "set",
        "9LIVES",
        "--from-file",
        &value.display().to_string(),
        "--node",
        &addr.to_string(),
        "--secret-file",
        &secret_file.display().to_string(),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(pattern));

    // A cluster without a secret has no key to seal with.
    let open = Cluster::start(1, Options { bootstrap_expect: 1, ..Options::default() });
    open.wait_for_agreed_leader();
    let addr = open.nodes[0].addr;
    let needs = "the secret store needs a cluster secret: start every node with --secret-file";
    let (code, body) = http::get(addr, "/api/v1/secrets").expect("get");
    assert_eq!((code, error_of(&body).as_str()), (409, needs));
    let (code, body) = put(addr, "A", r#"{"value": "x"}"#, None);
    assert_eq!((code, error_of(&body).as_str()), (409, needs));
    let (code, body) =
        http::request_with(addr, "DELETE", "/api/v1/secrets/A", &[], b"").expect("delete");
    assert_eq!((code, error_of(&body).as_str()), (409, needs));
}
