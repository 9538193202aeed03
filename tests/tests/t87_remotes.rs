//! Remotes over https and ssh against real servers (nginx + `git http-backend`, sshd),
//! with the node binary: a repository the node cannot authenticate to shows why in
//! `status`, in words that say what to do, and never with a secret.
//!
//! The fetch itself with a token and CA, or a key and known_hosts (and its failures with
//! a wrong token, without the CA, with a wrong key and with an unknown host key) is
//! tested against the same servers by the node's unit tests (`git::tests`). A url with
//! credentials in it is refused by the CLI without repeating them.

use eventide_tests::gitserver::{bare_repository, HttpsGitServer, SshGitServer};
use eventide_tests::{wait_until, Cluster, Options, DEADLINE};

/// One node watching `url`, polling it every 200 ms.
fn watching(url: String) -> Cluster {
    Cluster::start(1, Options { bootstrap_expect: 1, ..Options::watching(url) })
}

/// The observer's error for the only repository, once there is one.
fn repo_error(cluster: &Cluster) -> String {
    wait_until("the repository's error in status", DEADLINE, || {
        let status = cluster.nodes[0].status_doc()?;
        status.repos.first()?.error.clone()
    })
}

#[test]
fn an_https_repository_with_a_private_ca_says_to_give_the_ca_file() {
    let server = HttpsGitServer::start();
    let repos = tempfile::tempdir().expect("temp dir");
    let (bare, _) = bare_repository(repos.path(), "app");
    let url = server.serve("app.git", &bare);
    let cluster = watching(url.clone());
    let error = repo_error(&cluster);
    // Without --ca-file the certificate is the first thing that fails.
    assert!(error.contains(&format!("failed to fetch {url}")), "{error}");
    assert!(
        error.contains("certificate of 127.0.0.1 was not trusted") && error.contains("--ca-file"),
        "{error}"
    );
    assert!(!error.contains(server.token()), "{error}");
    assert!(!cluster.nodes[0].log_text().contains(server.token()));
}

#[test]
fn an_ssh_repository_with_an_unknown_host_key_says_how_to_trust_it() {
    let server = SshGitServer::start();
    let repos = tempfile::tempdir().expect("temp dir");
    let (bare, _) = bare_repository(repos.path(), "app");
    let url = server.serve("app.git", &bare);
    let cluster = watching(url.clone());
    let error = repo_error(&cluster);
    let port = server.port();
    let expected = format!(
        "host key of 127.0.0.1:{port} is not known: add it with `ssh-keyscan -p {port} 127.0.0.1"
    );
    assert!(error.contains(&expected), "{error}");
}

#[test]
fn a_url_with_credentials_is_refused_without_repeating_them() {
    let output = eventide_tests::cli(&[
        "repo",
        "add",
        "https://user:pw-87-secret@git.example.com/x.git",
        "--node",
        "127.0.0.1:1",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("put the token in the secret store and name it with --token"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-87-secret"), "{stderr}");
}
