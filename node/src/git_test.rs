//! Tests of the git operations against real repositories made with the `git` CLI.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::*;

/// A non-bare upstream repository the tests commit to, on branch `main` (shared with the
/// observer's tests).
pub(crate) struct Upstream {
    dir: TempDir,
}

impl Upstream {
    pub(crate) fn new() -> Upstream {
        let upstream = Upstream { dir: tempfile::tempdir().expect("temp dir") };
        upstream.git(&["init", "--quiet", "--initial-branch=main"]);
        upstream
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn url(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// Runs git in the upstream, isolated from the user's configuration.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output").trim().to_owned()
    }

    /// Writes `file` and commits it; returns the new head.
    pub(crate) fn commit(&self, file: &str, contents: &[u8], message: &str) -> CommitId {
        let path = self.path().join(file);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.head()
    }

    pub(crate) fn head(&self) -> CommitId {
        CommitId::try_new(&self.git(&["rev-parse", "HEAD"])).expect("commit id")
    }
}

fn mirror_in(root: &TempDir, url: &str) -> PathBuf {
    mirror_path(root.path(), url)
}

#[test]
fn mirror_paths_are_stable_distinct_and_readable() {
    // Published FNV-1a 64 test vectors: the hash must never change between releases.
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);

    let root = Path::new("/data/mirrors");
    let a = mirror_path(root, "http://example.invalid/team/app.git");
    assert_eq!(a, mirror_path(root, "http://example.invalid/team/app.git"));
    assert_ne!(a, mirror_path(root, "http://example.invalid/other/app.git"));
    assert_eq!(a.parent(), Some(root));
    let name = a.file_name().and_then(|name| name.to_str()).expect("utf-8 name");
    assert!(name.ends_with("-app"), "{name}");

    let cases = [
        ("/srv/repos/web site/", "web_site"),
        ("file:///srv/x.git", "x"),
        ("/", "repo"),
        ("..", "repo"),
        ("/srv/é", "_"),
    ];
    for (url, suffix) in cases {
        assert_eq!(readable_suffix(url), suffix, "{url}");
    }
    let long = format!("/srv/{}", "b".repeat(100));
    assert_eq!(readable_suffix(&long).len(), READABLE_SUFFIX_CHARS);
}

#[test]
fn fetch_lists_heads_and_new_commits_oldest_first() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let second = upstream.commit("a.txt", b"2", "second");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());

    fetch_mirror(&mirror, &upstream.url()).expect("first fetch creates the mirror");
    assert_eq!(
        branch_heads(&mirror).expect("heads"),
        BTreeMap::from([("main".to_owned(), second.clone())])
    );
    assert_eq!(
        new_commits(&mirror, &second, &[]).expect("walk"),
        vec![first.clone(), second.clone()]
    );

    let third = upstream.commit("a.txt", b"3", "third");
    let fourth = upstream.commit("b.txt", b"4", "fourth");
    fetch_mirror(&mirror, &upstream.url()).expect("incremental fetch");
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], fourth);
    assert_eq!(
        new_commits(&mirror, &fourth, std::slice::from_ref(&second)).expect("walk"),
        vec![third, fourth.clone()]
    );
    assert_eq!(new_commits(&mirror, &fourth, std::slice::from_ref(&fourth)).expect("walk"), vec![]);

    // A hidden id the mirror has never seen is ignored rather than an error.
    let unknown = CommitId::try_new(&"e".repeat(40)).expect("commit id");
    assert_eq!(
        new_commits(&mirror, &second, &[unknown.clone(), first]).expect("walk"),
        vec![second]
    );
    let error = new_commits(&mirror, &unknown, &[]).expect_err("unknown head");
    assert!(format!("{error:#}").contains("not found"), "{error:#}");
}

#[test]
fn file_urls_work() {
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    let url = format!("file://{}", upstream.url());
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &url);
    fetch_mirror(&mirror, &url).expect("fetch over file://");
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], head);
}

#[test]
fn force_pushes_and_deleted_branches_follow_upstream() {
    let upstream = Upstream::new();
    let base = upstream.commit("a.txt", b"base", "base");
    let doomed = upstream.commit("a.txt", b"doomed", "doomed");
    upstream.git(&["branch", "feature"]);
    let feature = {
        upstream.git(&["checkout", "--quiet", "feature"]);
        let head = upstream.commit("f.txt", b"f", "feature work");
        upstream.git(&["checkout", "--quiet", "main"]);
        head
    };
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url()).expect("fetch");
    assert_eq!(
        branch_heads(&mirror).expect("heads"),
        BTreeMap::from([
            ("feature".to_owned(), feature.clone()),
            ("main".to_owned(), doomed.clone())
        ])
    );

    // Rewrite main (reset --hard + a new commit) and delete feature.
    upstream.git(&["reset", "--quiet", "--hard", base.as_str()]);
    let rewritten = upstream.commit("a.txt", b"rewritten", "rewritten");
    upstream.git(&["branch", "--quiet", "-D", "feature"]);
    fetch_mirror(&mirror, &upstream.url()).expect("fetch after force push");
    assert_eq!(
        branch_heads(&mirror).expect("heads"),
        BTreeMap::from([("main".to_owned(), rewritten.clone())])
    );
    // Only the commit not reachable from the old head is new.
    assert_eq!(
        new_commits(&mirror, &rewritten, std::slice::from_ref(&doomed)).expect("walk"),
        vec![rewritten]
    );
    // The objects of the rewritten history are still in the mirror.
    assert_eq!(read_file_at(&mirror, &doomed, "a.txt").expect("read").as_deref(), Some("doomed"));
}

#[test]
fn files_and_directories_at_a_commit() {
    let upstream = Upstream::new();
    upstream.commit("tests/test_a.py", b"pass\n", "tests");
    upstream.commit(".eventide.toml", b"[test]\ncommand = \"true\"\n", "config");
    upstream.commit("binary.dat", &[0xff, 0xfe, 0x00], "binary");
    let big = vec![b'x'; MAX_FILE_BYTES + 1];
    let head = upstream.commit("big.txt", &big, "big");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url()).expect("fetch");

    assert_eq!(
        read_file_at(&mirror, &head, ".eventide.toml").expect("read").as_deref(),
        Some("[test]\ncommand = \"true\"\n")
    );
    assert_eq!(
        read_file_at(&mirror, &head, "tests/test_a.py").expect("read").as_deref(),
        Some("pass\n")
    );
    assert_eq!(read_file_at(&mirror, &head, "missing.toml").expect("read"), None);
    assert_eq!(read_file_at(&mirror, &head, "missing/deeper.toml").expect("read"), None);
    assert_eq!(read_file_at(&mirror, &head, "tests").expect("read"), None);
    let error = read_file_at(&mirror, &head, "binary.dat").expect_err("not utf-8");
    assert!(format!("{error:#}").contains("UTF-8"), "{error:#}");
    let error = read_file_at(&mirror, &head, "big.txt").expect_err("too big");
    assert!(format!("{error:#}").contains("more than"), "{error:#}");
}

#[test]
fn symbolic_links_are_not_read_as_files() {
    let upstream = Upstream::new();
    upstream.commit("real.toml", b"x", "real");
    std::os::unix::fs::symlink("real.toml", upstream.path().join("link.toml")).expect("symlink");
    upstream.git(&["add", "--all"]);
    upstream.git(&["commit", "--quiet", "-m", "link"]);
    let head = upstream.head();
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url()).expect("fetch");
    let error = read_file_at(&mirror, &head, "link.toml").expect_err("a link");
    assert!(format!("{error:#}").contains("symbolic link"), "{error:#}");
}

#[test]
fn ensure_commit_fetches_only_when_needed() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());

    ensure_commit(&mirror, &upstream.url(), &first).expect("creates the mirror and fetches");
    let second = upstream.commit("a.txt", b"2", "second");
    ensure_commit(&mirror, &upstream.url(), &first).expect("already there");
    assert!(!has_commit(&mirror, &second), "no fetch happened for a commit it had");
    ensure_commit(&mirror, &upstream.url(), &second).expect("fetched");

    let unknown = CommitId::try_new(&"a".repeat(40)).expect("commit id");
    let error = ensure_commit(&mirror, &upstream.url(), &unknown).expect_err("missing");
    assert_eq!(format!("{error:#}"), format!("commit {unknown} not found in {}", upstream.url()));
}

#[test]
fn checkout_writes_the_tree_without_touching_the_mirror() {
    let upstream = Upstream::new();
    let first = upstream.commit("src/a.txt", b"one", "first");
    upstream.commit("src/a.txt", b"two", "second");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url()).expect("fetch");

    let workspace = tempfile::tempdir().expect("temp dir");
    let dest = workspace.path().join("job-1");
    checkout(&mirror, &first, &dest).expect("checkout");
    assert_eq!(std::fs::read_to_string(dest.join("src/a.txt")).expect("file"), "one");
    assert!(!dest.join(".git").exists());
    assert!(!mirror.join("index").exists(), "checkout must not create an index in the mirror");

    let error = checkout(&mirror, &first, &dest).expect_err("not empty");
    assert!(format!("{error:#}").contains("not empty"), "{error:#}");
}

#[test]
fn an_unreachable_upstream_is_an_error_naming_the_url() {
    let mirrors = tempfile::tempdir().expect("temp dir");
    let url = "/does/not/exist/anywhere.git";
    let mirror = mirror_in(&mirrors, url);
    let error = fetch_mirror(&mirror, url).expect_err("no such repository");
    assert!(format!("{error:#}").starts_with(&format!("failed to fetch {url}")), "{error:#}");
    assert!(branch_heads(&mirror).expect("the empty mirror exists").is_empty());
}

#[test]
fn an_interrupted_mirror_directory_is_initialized_in_place() {
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    std::fs::create_dir_all(&mirror).expect("mkdir");
    fetch_mirror(&mirror, &upstream.url()).expect("fetch into the empty directory");
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], head);
}

/// A server that accepts connections and then never answers (`silent`), or answers an
/// endless HTTP header one byte at a time (`trickling`). Dropping it closes everything.
struct HostileServer {
    addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HostileServer {
    fn silent() -> HostileServer {
        HostileServer::start(None)
    }

    fn trickling(every: Duration) -> HostileServer {
        HostileServer::start(Some(every))
    }

    fn start(trickle: Option<Duration>) -> HostileServer {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let stopped = stopped.clone();
                std::thread::spawn(move || {
                    if trickle.is_some() {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Endless: ");
                    }
                    // Pacing of the hostile server, not a synchronisation.
                    let pause = trickle.unwrap_or(Duration::from_millis(20));
                    while !stopped.load(Ordering::Relaxed) {
                        if trickle.is_some() && stream.write_all(b"a").is_err() {
                            return;
                        }
                        std::thread::sleep(pause);
                    }
                });
            }
        });
        HostileServer { addr, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/x.git", self.addr)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// libgit2's socket timeout for this test process: one value, set before the first
/// fetch over a socket.
fn short_socket_timeout() -> Duration {
    const TIMEOUT: Duration = Duration::from_millis(500);
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| set_socket_timeout(TIMEOUT).expect("set the socket timeout"));
    TIMEOUT
}

#[test]
fn a_server_that_never_answers_fails_the_fetch_at_the_socket_timeout() {
    let timeout = short_socket_timeout();
    let server = HostileServer::silent();
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &server.url());
    let started = Instant::now();
    let error = fetch_within(&mirror, &server.url(), Duration::from_secs(60), |_| false)
        .expect_err("a silent server");
    let message = format!("{error:#}");
    assert!(message.starts_with(&format!("failed to fetch {}", server.url())), "{message}");
    assert!(message.contains("timed out"), "libgit2's timeout, not the deadline: {message}");
    assert!(started.elapsed() < timeout * 20, "took {:?}", started.elapsed());
}

#[test]
fn a_server_that_trickles_is_cut_at_the_deadline_and_blocks_no_other_fetch_for_long() {
    short_socket_timeout();
    let server = HostileServer::trickling(Duration::from_millis(50));
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &server.url());
    let deadline = Duration::from_secs(1);
    let started = Instant::now();
    let error =
        fetch_within(&mirror, &server.url(), deadline, |_| false).expect_err("a trickling server");
    let elapsed = started.elapsed();
    assert!(format!("{error:#}").contains("fetch deadline of 1s"), "{error:#}");
    assert!(elapsed >= deadline && elapsed < deadline * 5, "took {elapsed:?}");

    // The fetch left behind still runs: another fetch of the mirror fails at once.
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    let again = Instant::now();
    let error = fetch_within(&mirror, &upstream.url(), Duration::from_secs(60), |_| false)
        .expect_err("the mirror is still being fetched");
    assert!(format!("{error:#}").contains("still stuck"), "{error:#}");
    assert!(again.elapsed() < deadline, "refused at once, took {:?}", again.elapsed());

    // Once the server lets go, the thread ends and the mirror fetches again.
    drop(server);
    let until = Instant::now() + Duration::from_secs(30);
    while let Err(error) =
        fetch_within(&mirror, &upstream.url(), Duration::from_secs(60), |_| false)
    {
        assert!(Instant::now() < until, "the stuck fetch never ended: {error:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], head);
}

#[test]
fn a_fetch_that_waited_for_another_is_skipped_when_that_one_brought_the_commit() {
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url()).expect("fetch");
    // A url that cannot be fetched: only the skip lets this succeed.
    let wanted = head.clone();
    fetch_within(&mirror, "/does/not/exist", Duration::from_secs(60), move |mirror| {
        has_commit(mirror, &wanted)
    })
    .expect("skipped");
}

#[test]
fn fetch_limits_are_checked_against_each_other() {
    let second = Duration::from_secs(1);
    assert!(FetchLimits::try_new(second, second * 60).is_ok());
    assert!(
        FetchLimits::try_new(FetchLimits::DEFAULT.timeout, FetchLimits::DEFAULT.deadline).is_ok()
    );
    let cases = [
        (Duration::ZERO, second, "--fetch-timeout"),
        (second, FetchLimits::MAX + second, "--fetch-deadline"),
        (second * 2, second, "must not be shorter"),
    ];
    for (timeout, deadline, expected) in cases {
        let error = FetchLimits::try_new(timeout, deadline).expect_err(expected).to_string();
        assert!(error.contains(expected), "{error}");
    }
}
