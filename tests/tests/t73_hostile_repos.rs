//! Hostile repositories end to end (issue 10): a server that accepts connections and
//! never answers, an upstream that goes silent between the observer's fetch and the
//! runner's, a branch name git allows and the state refuses, and the many spellings of
//! one repository. Each ends in an error that says what failed, the cluster keeps testing
//! the other commits, and nothing is proposed to Raft over and over.
//!
//! The fetch limits are passed in the environment (`EVENTIDE_FETCH_TIMEOUT`,
//! `EVENTIDE_FETCH_DEADLINE`) rather than as flags, so that the same test also runs
//! against a build without them (`EVENTIDE_NODE_BIN`) and shows the hang there.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide_tests::repo::GitRepo;
use eventide_tests::{binary, cli, free_addr, http, is_final, wait_until, Cluster, Node, Options};
use eventide_tests::{wait_for_final_jobs, DEADLINE};
use serde_json::Value;

/// A branch name git accepts (its bytes are all >= 0x80) with a control character in it
/// (U+0085, NEXT LINE), which the state refuses.
const REFUSED_BRANCH: &str = "x\u{85}y";

/// One node that forms a cluster alone, polls every 200 ms and gives up on a silent
/// server after `timeout` (a whole fetch after twice that).
fn lone_node(repo: Option<String>, timeout: Duration) -> Options {
    let mut options = match repo {
        Some(url) => Options::watching(url),
        None => Options::default(),
    };
    options.bootstrap_expect = 1;
    options.env = vec![
        ("EVENTIDE_FETCH_TIMEOUT".into(), format!("{}ms", timeout.as_millis())),
        ("EVENTIDE_FETCH_DEADLINE".into(), format!("{}ms", 2 * timeout.as_millis())),
    ];
    options
}

fn cli_ok(args: &[&str]) -> String {
    let output = cli(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cli_error(args: &[&str]) -> String {
    let output = cli(args);
    assert!(!output.status.success(), "{args:?} should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn repos(node: &Node) -> Vec<Value> {
    let (code, body) = http::get(node.addr, "/api/v1/repos").expect("list repositories");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

fn job_of(node: &Node, commit: &str) -> Option<Value> {
    node.jobs(&format!("commit={commit}"))?.into_iter().next()
}

fn applied_index(node: &Node) -> u64 {
    let status = wait_until("a status", DEADLINE, || node.status());
    status["applied_index"].as_u64().expect("applied_index")
}

/// Accepts connections and never writes a byte; holds them until dropped.
struct SilentServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                held.extend(stream.ok());
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        SilentServer { addr, accepted, stop }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A TCP proxy to `backend` that, once told to, answers new connections with silence.
struct Proxy {
    addr: SocketAddr,
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn to(backend: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (is_silent, stopped) = (silent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                if is_silent.load(Ordering::Relaxed) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(backend) else { continue };
                pipe(client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                pipe(server, client);
            }
        });
        Proxy { addr, silent, stop }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to` on a thread until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `git daemon` serving one repository over git://, stopped on drop.
struct GitDaemon {
    addr: SocketAddr,
    child: Child,
}

impl GitDaemon {
    /// Serves `repo`'s `.git` at `git://ADDR/<repo>/.git`.
    fn serving(repo: &Path) -> GitDaemon {
        let addr = free_addr();
        // `git daemon` would run git-daemon as its own child, which killing `git` leaves
        // behind: start git-daemon itself.
        let exec_path = Command::new("git").arg("--exec-path").output().expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--strict-paths", "--listen=127.0.0.1"])
            .arg(format!("--port={}", addr.port()))
            .arg(repo.join(".git"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let daemon = GitDaemon { addr, child };
        wait_until("git daemon to listen", DEADLINE, || TcpStream::connect(addr).ok());
        daemon
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_repository_that_never_answers_delays_no_other_and_can_be_removed() {
    let good = GitRepo::new();
    good.configure("echo Ran 1 test; echo OK", "");
    good.commit("first");
    // The silent server holds each fetch for this long; the good repository's commit
    // must be tested well within it.
    let timeout = Duration::from_secs(10);
    let cluster = Cluster::start(1, lone_node(Some(good.url()), timeout));
    let node = &cluster.nodes[0];
    let addr = node.addr.to_string();
    wait_for_final_jobs(&cluster, 0, 1, DEADLINE);

    let silent = SilentServer::start();
    let url = format!("http://{}/x.git", silent.addr);
    assert!(cli_ok(&["repo", "add", &url, "--node", &addr]).contains(&url));
    wait_until("the observer to fetch the silent repository", DEADLINE, || {
        (silent.accepted.load(Ordering::Relaxed) > 0).then_some(())
    });
    let second = good.commit("while the silent repository's fetch hangs");
    node.notify();
    wait_until("the good repository's new commit tested", timeout * 7 / 10, || {
        job_of(node, &second).filter(is_final)
    });
    let error = wait_until("status to show the silent repository's error", DEADLINE, || {
        let status = node.status()?;
        let repo = status["repos"].as_array()?.iter().find(|r| r["url"] == url.as_str())?;
        repo["error"].as_str().map(str::to_owned)
    });
    assert!(error.contains(&format!("failed to fetch {url}")), "{error}");
    assert!(error.contains("timed out"), "{error}");

    let removed = cli_ok(&["repo", "remove", &format!("{url}/"), "--node", &addr]);
    assert!(removed.contains("stopped watching repository 2"), "{removed}");
    let left: Vec<Value> = repos(node).into_iter().map(|r| r["url"].clone()).collect();
    assert_eq!(left, vec![Value::from(good.url())]);
    let again = cli_error(&["repo", "remove", &url, "--node", &addr]);
    assert!(again.contains("no watched repository is"), "{again}");
    let (code, body) = http::request_with(node.addr, "DELETE", "/api/v1/repos/2", &[], b"")
        .expect("delete request");
    assert_eq!((code, body.as_str()), (404, "{\"error\":\"unknown repository 2\"}"));

    let third = good.commit("after the removal");
    node.notify();
    wait_until("the good repository still tested", DEADLINE, || {
        job_of(node, &third).filter(is_final)
    });
}

#[test]
fn a_runner_whose_fetch_hangs_ends_the_job_in_error() {
    let repo = GitRepo::new();
    let gate = tempfile::tempdir().expect("temp dir");
    let release = gate.path().join("release");
    let hold = format!("echo holding; while [ ! -e {} ]; do sleep 0.1; done", release.display());
    repo.configure(&hold, "");
    let first = repo.commit("holds the runner's only slot");
    let daemon = GitDaemon::serving(repo.path());
    let proxy = Proxy::to(daemon.addr);
    let url = format!("git://{}{}/.git", proxy.addr, repo.path().display());
    let mut options = lone_node(Some(url), Duration::from_secs(1));
    // The job waits for a file of the test's: the sandbox shows it that directory.
    options.extra.extend(["--sandbox-bind".into(), gate.path().display().to_string()]);
    let cluster = Cluster::start(1, options);
    let node = &cluster.nodes[0];
    // Running in the state is not enough: the runner fetches before the command starts,
    // and a fetch after the next commit would bring that commit too.
    let job = wait_until("the first job to run", DEADLINE, || {
        job_of(node, &first).filter(|job| job["state"] == "running")
    });
    let log = format!("/api/v1/jobs/{}/log", job["id"]);
    wait_until("the first job's command to start", DEADLINE, || {
        let (code, text) = http::get(node.addr, &log).ok()?;
        (code == 200 && text.contains("holding")).then_some(())
    });

    // The observer fetches the second commit through the proxy; the runner, busy, will
    // fetch it only once the upstream has gone silent.
    repo.configure("echo Ran 1 test; echo OK", "");
    let second = repo.commit("fetched by the runner from a silent upstream");
    node.notify();
    wait_until("the second job queued", DEADLINE, || job_of(node, &second));
    proxy.go_silent();
    std::fs::write(&release, "").expect("release the first job");

    let job =
        wait_until("the second job to end", DEADLINE, || job_of(node, &second).filter(is_final));
    assert_eq!(job["state"], "error", "{job}");
    let message = job["message"].as_str().unwrap_or_default();
    assert!(message.contains("failed to fetch git://"), "{message}");
    assert_eq!(job_of(node, &first).expect("first job")["state"], "passed");
}

#[test]
fn a_branch_the_state_refuses_is_proposed_once() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    repo.commit("first");
    let cluster = Cluster::start(1, lone_node(Some(repo.url()), Duration::from_secs(1)));
    let node = &cluster.nodes[0];
    wait_for_final_jobs(&cluster, 0, 1, DEADLINE);

    // The branch appears with its commit in one step: created first (`checkout -b`), it
    // pointed at main's commit for a moment, a round could refuse that observation too,
    // and the refusal of the second commit was then a second proposal.
    repo.git(&["checkout", "-q", "--detach"]);
    let refused = repo.commit("on a branch whose name has a control character");
    repo.git(&["branch", REFUSED_BRANCH, &refused]);
    repo.git(&["checkout", "-q", "main"]);
    node.notify();
    wait_until("status to show the refused branch", DEADLINE, || {
        node.status()?["repos"][0]["error"].as_str().map(|_| ())
    });

    // Every round plans the branch again: none may propose it. Rounds run every 200 ms
    // and on every notify; in this window of about 15 polls nothing may be committed.
    let index = applied_index(node);
    let window = Instant::now() + Duration::from_secs(3);
    while Instant::now() < window {
        node.notify();
        assert_eq!(applied_index(node), index, "a refused observation was proposed again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logged = node.log_text().matches("cannot observe repository").count();
    assert_eq!(logged, 1, "the problem is logged once");
    let status = wait_until("a status", DEADLINE, || node.status());
    let error = status["repos"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(r#"branch "x\u{85}y""#), "{error}");
    assert!(error.contains("refused: invalid command: branch contains control characters"));

    // The repository's other branches are still tested.
    let next = repo.commit("on main");
    node.notify();
    wait_until("the next commit on main tested", DEADLINE, || job_of(node, &next).filter(is_final));
    let status = wait_until("a status", DEADLINE, || node.status());
    assert_eq!(status["repos"][0]["error"].as_str(), Some(error.as_str()), "still shown");
}

#[test]
fn every_spelling_of_a_repository_is_one_and_a_relative_path_is_refused() {
    let cluster = Cluster::start(1, lone_node(None, Duration::from_secs(1)));
    let node = &cluster.nodes[0];
    let addr = node.addr.to_string();
    wait_until("a leader", DEADLINE, || node.status()?["leader"].as_object().map(|_| ()));
    let repo = GitRepo::new();
    repo.commit("first");
    let path = repo.url();

    assert!(cli_ok(&["repo", "add", &format!("{path}/"), "--node", &addr]).contains(&path));
    let twice = cli_error(&["repo", "add", &path, "--node", &addr]);
    assert!(twice.contains("repository already watched as 1"), "{twice}");
    for spelling in [format!("file://{path}"), format!("{path}/"), format!("{path}/./")] {
        let body = serde_json::json!({ "url": spelling }).to_string();
        let (code, answer) = http::post(node.addr, "/api/v1/repos", &body).expect("post");
        assert_eq!(code, 409, "{spelling}: {answer}");
    }
    // The CLI resolves a relative path against its own working directory.
    let parent = repo.path().parent().expect("a parent directory");
    let name = repo.path().file_name().expect("a name").to_string_lossy().into_owned();
    let relative = Command::new(binary())
        .args(["repo", "add", &name, "--node", &addr])
        .current_dir(parent)
        .env_remove("EVENTIDE_NODE")
        .output()
        .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&relative.stderr);
    assert!(stderr.contains("repository already watched as 1"), "{stderr}");
    // The API has no working directory to resolve it against.
    let (code, answer) =
        http::post(node.addr, "/api/v1/repos", r#"{"url": "src/app"}"#).expect("post");
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("repository path src/app is relative"), "{answer}");

    let listed: Vec<Value> = repos(node).into_iter().map(|r| r["url"].clone()).collect();
    assert_eq!(listed, vec![Value::from(path.as_str())]);
    assert!(cli_ok(&["repo", "remove", &format!("file://{path}"), "--node", &addr])
        .contains("stopped watching repository 1"));
    assert!(repos(node).is_empty());
}
