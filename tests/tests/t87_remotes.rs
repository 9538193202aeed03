//! Remotes over https and ssh against real servers (nginx + `git http-backend`, sshd),
//! with the node binary: a repository the node cannot authenticate to shows why in
//! `status`, in words that say what to do, and never with a secret.
//!
//! The fetch itself with a token and CA, or a key and known_hosts (and its failures with
//! a wrong token, without the CA, with a wrong key and with an unknown host key) is
//! tested against the same servers by the node's unit tests (`git::tests`). A url with
//! credentials in it is refused by the CLI without repeating them. A client runner gets
//! the credentials from the leader, and only when it has to fetch.

use std::net::SocketAddr;
use std::path::Path;

use eventide_tests::gitserver::{bare_repository, HttpsGitServer, SshGitServer};
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};

const SECRET: &str = "cluster secret of the remotes test 87";

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

/// One node with a cluster secret (so it has a secret store); the secret file for the
/// CLI is written into `dir`.
fn secured(dir: &Path) -> (Cluster, String) {
    let options =
        Options { bootstrap_expect: 1, secret: Some(SECRET.to_owned()), ..Options::default() };
    let cluster = Cluster::start(1, options);
    cluster.wait_for_agreed_leader();
    let file = dir.join("cli.secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write the secret file");
    (cluster, file.display().to_string())
}

/// `eventide-node ARGS --node ADDR --secret-file FILE`; must succeed.
fn cli_ok(addr: SocketAddr, secret_file: &str, args: &[&str]) -> String {
    let node = addr.to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--node", &node, "--secret-file", secret_file]);
    let output = cli(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A repository with one passing commit, served by its `.git` directory.
fn passing_repository() -> (GitRepo, String) {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    let head = repo.commit("passes");
    (repo, head)
}

/// Serves `repo` over https from `server` and has the node at `addr` watch it with the
/// server's token (secret `APP_TOKEN`, its file written into `dir`) and CA.
fn watch_with_token(
    server: &HttpsGitServer,
    repo: &GitRepo,
    addr: SocketAddr,
    secret_file: &str,
    dir: &Path,
) {
    let url = server.serve("app.git", &repo.path().join(".git"));
    let token_file = dir.join("token");
    std::fs::write(&token_file, server.token()).expect("write the token");
    let token_path = token_file.display().to_string();
    cli_ok(addr, secret_file, &["secret", "set", "APP_TOKEN", "--from-file", &token_path]);
    let ca = server.ca_path().display().to_string();
    cli_ok(addr, secret_file, &["repo", "add", &url, "--token", "APP_TOKEN", "--ca-file", &ca]);
}

/// Waits for `count` jobs to end and checks that the newest (by attempt) passed.
fn assert_passes(cluster: &Cluster, count: usize) {
    let jobs = wait_for_final_jobs(cluster, 0, count, DEADLINE);
    for job in &jobs {
        assert_eq!(job["state"], "passed", "{job}");
    }
}

#[test]
fn a_cluster_tests_an_https_repository_with_a_token_and_a_ca_file_and_reruns_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, secret_file) = secured(dir.path());
    let addr = cluster.nodes[0].addr;
    let server = HttpsGitServer::start();
    let (repo, head) = passing_repository();
    watch_with_token(&server, &repo, addr, &secret_file, dir.path());
    assert_passes(&cluster, 1);
    cli_ok(addr, &secret_file, &["rerun", &head, "--branch", "main"]);
    assert_passes(&cluster, 2);
    assert!(!cluster.nodes[0].log_text().contains(server.token()), "the token is in the log");
}

#[test]
fn a_cluster_tests_an_ssh_repository_with_a_deploy_key_and_known_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, secret_file) = secured(dir.path());
    let addr = cluster.nodes[0].addr;
    let server = SshGitServer::start();
    let (repo, _) = passing_repository();
    let url = server.serve("app.git", &repo.path().join(".git"));
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, server.client_key()).expect("write the key");
    let hosts_file = dir.path().join("known_hosts");
    std::fs::write(&hosts_file, server.known_hosts_line()).expect("write known_hosts");
    for (name, file) in [("DEPLOY_KEY", &key_file), ("APP_HOSTS", &hosts_file)] {
        let path = file.display().to_string();
        cli_ok(addr, &secret_file, &["secret", "set", name, "--from-file", &path]);
    }
    let add = ["repo", "add", &url, "--ssh-key", "DEPLOY_KEY", "--known-hosts", "APP_HOSTS"];
    cli_ok(addr, &secret_file, &add);
    assert_passes(&cluster, 1);
}

/// A client runner (no replica of its own) fetches a private https repository with the
/// credentials the leader gives it, only when its mirror lacks the commit: the first
/// job and a new commit fetch, a rerun of a commit it has fetches nothing. The three
/// servers run no jobs.
#[test]
fn a_client_runner_fetches_a_private_repository_with_the_leader_s_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, client, client_id) = Cluster::servers_and_a_client_runner(SECRET);
    let secret_file = dir.path().join("cli.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write the secret file");
    let secret_file = secret_file.display().to_string();
    let addr = cluster.nodes[client].addr;
    let server = HttpsGitServer::start();
    let (repo, head) = passing_repository();
    watch_with_token(&server, &repo, addr, &secret_file, dir.path());
    let fetches = |cluster: &Cluster| {
        cluster.nodes[client]
            .log_text()
            .matches("fetching the commit into the runner's mirror")
            .count()
    };
    let ran_on_the_client = |jobs: &[serde_json::Value]| {
        for job in jobs {
            assert_eq!(job["state"], "passed", "{job}");
            assert_eq!(job["runner"], client_id.as_str(), "only the client runs jobs: {job}");
        }
    };
    ran_on_the_client(&wait_for_final_jobs(&cluster, client, 1, DEADLINE));
    assert_eq!(fetches(&cluster), 1, "the first job fetches");
    cli_ok(addr, &secret_file, &["rerun", &head, "--branch", "main"]);
    ran_on_the_client(&wait_for_final_jobs(&cluster, client, 2, DEADLINE));
    assert_eq!(fetches(&cluster), 1, "a rerun of a commit the mirror has fetched again");
    repo.commit("a second commit");
    ran_on_the_client(&wait_for_final_jobs(&cluster, client, 3, DEADLINE));
    assert_eq!(fetches(&cluster), 2, "a new commit is fetched");
    for node in &cluster.nodes {
        assert!(!node.log_text().contains(server.token()), "the token is in {}'s log", node.name);
    }
}
