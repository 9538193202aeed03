//! Tests of the git operations against real repositories made with the `git` CLI.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::*;

/// The commits a walk of `mirror` finds from `head`, hiding `hide`.
fn new_commits(mirror: &Path, head: &CommitId, hide: &[CommitId]) -> anyhow::Result<Vec<CommitId>> {
    Mirror::open(mirror)?.new_commits(head, hide)
}

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

/// No credentials.
fn none() -> RemoteAuth {
    RemoteAuth::default()
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

    fetch_mirror(&mirror, &upstream.url(), &none()).expect("first fetch creates the mirror");
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("incremental fetch");
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
    fetch_mirror(&mirror, &url, &none()).expect("fetch over file://");
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch after force push");
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
    assert_eq!(
        Mirror::open(&mirror)
            .expect("open")
            .read_file_at(&doomed, "a.txt")
            .expect("read")
            .as_deref(),
        Some("doomed")
    );
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");
    let opened = Mirror::open(&mirror).expect("open");

    assert_eq!(
        opened.read_file_at(&head, ".eventide.toml").expect("read").as_deref(),
        Some("[test]\ncommand = \"true\"\n")
    );
    assert_eq!(
        opened.read_file_at(&head, "tests/test_a.py").expect("read").as_deref(),
        Some("pass\n")
    );
    assert_eq!(opened.read_file_at(&head, "missing.toml").expect("read"), None);
    assert_eq!(opened.read_file_at(&head, "missing/deeper.toml").expect("read"), None);
    assert_eq!(opened.read_file_at(&head, "tests").expect("read"), None);
    let error = opened.read_file_at(&head, "binary.dat").expect_err("not utf-8");
    assert!(format!("{error:#}").contains("UTF-8"), "{error:#}");
    let error = opened.read_file_at(&head, "big.txt").expect_err("too big");
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");
    let error =
        Mirror::open(&mirror).expect("open").read_file_at(&head, "link.toml").expect_err("a link");
    assert!(format!("{error:#}").contains("symbolic link"), "{error:#}");
}

#[test]
fn ensure_commit_fetches_only_when_needed() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());

    ensure_commit(&mirror, &upstream.url(), &none(), &first)
        .expect("creates the mirror and fetches");
    let second = upstream.commit("a.txt", b"2", "second");
    ensure_commit(&mirror, &upstream.url(), &none(), &first).expect("already there");
    assert!(!has_commit(&mirror, &second), "no fetch happened for a commit it had");
    ensure_commit(&mirror, &upstream.url(), &none(), &second).expect("fetched");

    let unknown = CommitId::try_new(&"a".repeat(40)).expect("commit id");
    let error = ensure_commit(&mirror, &upstream.url(), &none(), &unknown).expect_err("missing");
    assert_eq!(format!("{error:#}"), format!("commit {unknown} not found in {}", upstream.url()));
}

/// How many jobs the opened mirror `opened` has served, if it is one a job keeps.
fn uses(opened: &Mirror) -> Option<u32> {
    opened.kept.as_ref().map(|keep| keep.uses)
}

#[test]
fn a_mirror_a_job_opened_serves_the_next_and_finds_what_a_later_fetch_brought() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    let opened = ensure_commit(&mirror, &upstream.url(), &none(), &first).expect("fetched");
    assert_eq!(uses(&opened), Some(1));
    drop(opened);
    let opened = mirror_with_commit(&mirror, &first).expect("has it");
    assert_eq!(uses(&opened), Some(2), "the one the last job left");
    drop(opened);

    // Another process fetches a new commit into the mirror; the opened one finds it.
    let second = upstream.commit("a.txt", b"2", "second");
    let fetched = Command::new("git")
        .arg("--git-dir")
        .arg(&mirror)
        .args(["fetch", "--quiet", &upstream.url(), "+refs/heads/*:refs/heads/*"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs");
    assert!(fetched.success());
    let opened = mirror_with_commit(&mirror, &second).expect("has the new commit");
    assert_eq!(uses(&opened), Some(3));
    let checkout = tempfile::tempdir().expect("temp dir");
    opened.checkout(&second, &checkout.path().join("w")).expect("checked out");
    assert_eq!(std::fs::read(checkout.path().join("w/a.txt")).expect("read"), b"2");

    // Two jobs at once get two; a commit neither has gets none and leaves none.
    let (a, b) = (mirror_with_commit(&mirror, &first), mirror_with_commit(&mirror, &first));
    assert_eq!((a.as_ref().and_then(uses), b.as_ref().and_then(uses)), (Some(1), Some(1)));
    drop((opened, a, b));
    let unknown = CommitId::try_new(&"b".repeat(40)).expect("commit id");
    assert!(mirror_with_commit(&mirror, &unknown).is_none());
    assert_eq!(lock(opened_mirrors()).get(&mirror).map(Vec::len), Some(2));

    // Worn out, it is opened again.
    keep_opened(
        Keep { mirror: mirror.clone(), uses: OPENED_USES },
        open_mirror(&mirror).expect("open"),
    );
    assert_eq!(lock(opened_mirrors()).get(&mirror).map(Vec::len), Some(2));
}

#[test]
fn a_fetch_waits_for_another_process_holding_the_mirror_and_skips_what_it_brought() {
    let upstream = Upstream::new();
    let first = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    let short = FetchLimits::try_new(Duration::from_millis(200), Duration::from_millis(300))
        .expect("limits");

    // Another process (another open file description of the lock: flock tells them
    // apart even within one process) holds the mirror past this fetch's deadline.
    let held = lock_across_processes(&mirror, Instant::now()).expect("lock").expect("free");
    let started = Instant::now();
    let error = fetch_within(&mirror, &upstream.url(), &none(), short, |_| false)
        .expect_err("the lock is held");
    assert!(started.elapsed() >= Duration::from_millis(300), "gave up at its deadline");
    let message = format!("{error:#}");
    assert!(message.contains("another process's fetch of the mirror"), "{message}");
    assert!(!has_commit(&mirror, &first), "nothing was fetched");
    assert!(
        lock_across_processes(&mirror, Instant::now()).expect("lock").is_none(),
        "still held by the first holder"
    );
    drop(held);

    // Free again: the fetch runs; the holder's fetch having brought the commit, the next
    // one fetches nothing (a newer commit upstream stays out of the mirror).
    let long = FetchLimits::DEFAULT;
    fetch_within(&mirror, &upstream.url(), &none(), long, |_| false).expect("fetched");
    assert!(has_commit(&mirror, &first));
    let second = upstream.commit("a.txt", b"2", "second");
    fetch_within(&mirror, &upstream.url(), &none(), long, |m| has_commit(m, &first))
        .expect("nothing to do");
    assert!(!has_commit(&mirror, &second), "skipped: the commit it wanted was there");
    assert!(lock_path_of(&mirror).is_file(), "the lock file stays beside the mirror");
}

#[test]
fn checkout_writes_the_tree_without_touching_the_mirror() {
    let upstream = Upstream::new();
    let first = upstream.commit("src/a.txt", b"one", "first");
    upstream.commit("src/a.txt", b"two", "second");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");

    let workspace = tempfile::tempdir().expect("temp dir");
    let dest = workspace.path().join("job-1");
    Mirror::open(&mirror).expect("open").checkout(&first, &dest).expect("checkout");
    assert_eq!(std::fs::read_to_string(dest.join("src/a.txt")).expect("file"), "one");
    assert!(!dest.join(".git").exists());
    assert!(!mirror.join("index").exists(), "checkout must not create an index in the mirror");

    let error =
        Mirror::open(&mirror).expect("open").checkout(&first, &dest).expect_err("not empty");
    assert!(format!("{error:#}").contains("not empty"), "{error:#}");
}

#[test]
fn an_unreachable_upstream_is_an_error_naming_the_url() {
    let mirrors = tempfile::tempdir().expect("temp dir");
    let url = "/does/not/exist/anywhere.git";
    let mirror = mirror_in(&mirrors, url);
    let error = fetch_mirror(&mirror, url, &none()).expect_err("no such repository");
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
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch into the empty directory");
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], head);
}

/// A server that accepts connections and then never answers (`silent`), or answers an
/// endless body one byte at a time (`trickling`: fast enough for curl's low-speed limit,
/// which counts body bytes only, and never done). Dropping it closes everything.
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
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: \
                              application/x-git-upload-pack-advertisement\r\n\r\n",
                        );
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

/// Limits short enough for a test of a hostile server.
fn short_limits(deadline: Duration) -> FetchLimits {
    FetchLimits { timeout: Duration::from_secs(1), deadline }
}

#[test]
fn a_server_that_never_answers_fails_the_fetch_at_the_timeout() {
    let limits = short_limits(Duration::from_secs(60));
    let server = HostileServer::silent();
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &server.url());
    let started = Instant::now();
    let error = fetch_within(&mirror, &server.url(), &none(), limits, |_| false)
        .expect_err("a silent server");
    let message = format!("{error:#}");
    assert!(message.starts_with(&format!("failed to fetch {}", server.url())), "{message}");
    assert!(message.contains("timed out"), "git's timeout, not the deadline: {message}");
    assert!(started.elapsed() < limits.timeout * 20, "took {:?}", started.elapsed());
}

#[test]
fn a_server_that_trickles_is_killed_at_the_deadline_and_blocks_no_later_fetch() {
    let server = HostileServer::trickling(Duration::from_millis(50));
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &server.url());
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let error = fetch_within(&mirror, &server.url(), &none(), short_limits(deadline), |_| false)
        .expect_err("a trickling server");
    let elapsed = started.elapsed();
    assert!(format!("{error:#}").contains("fetch deadline of 2s"), "{error:#}");
    assert!(elapsed >= deadline && elapsed < deadline * 5, "took {elapsed:?}");

    // The killed fetch left nothing running: the mirror fetches again at once.
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    fetch_within(&mirror, &upstream.url(), &none(), short_limits(deadline), |_| false)
        .expect("the mirror is free again");
    assert_eq!(branch_heads(&mirror).expect("heads")["main"], head);
}

#[test]
fn a_fetch_waits_for_the_running_one_only_until_its_deadline() {
    let server = HostileServer::trickling(Duration::from_millis(50));
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &server.url());
    let (url, held) = (server.url(), mirror.clone());
    let first = std::thread::spawn(move || {
        fetch_within(&held, &url, &none(), short_limits(Duration::from_secs(4)), |_| false)
    });
    // Until the first fetch holds the mirror, a second one would simply run.
    let until = Instant::now() + Duration::from_secs(10);
    while !*lock(&mirror_fetches(&mirror).busy) {
        assert!(Instant::now() < until, "the first fetch never started");
        std::thread::yield_now();
    }
    let started = Instant::now();
    let error = fetch_within(
        &mirror,
        &server.url(),
        &none(),
        short_limits(Duration::from_millis(300)),
        |_| false,
    )
    .expect_err("the mirror stays busy");
    assert!(format!("{error:#}").contains("earlier fetch of the mirror"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    first.join().expect("first fetch").expect_err("cut at its deadline");
}

#[test]
fn a_fetch_that_waited_for_another_is_skipped_when_that_one_brought_the_commit() {
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"1", "first");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");
    // A url that cannot be fetched: only the skip lets this succeed.
    let wanted = head.clone();
    fetch_within(&mirror, "/does/not/exist", &none(), FetchLimits::DEFAULT, move |mirror| {
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

// ---- The transport's pure rules ----

use std::ffi::OsString;

use super::transport::{
    child_environment, classify, plan, scp_like, scrub, tail, Remote, STDERR_TAIL_BYTES,
};
use eventide_consensus::auth::Zeroizing;

fn secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    Some(Zeroizing::new(text.as_bytes().to_vec()))
}

fn config_of(plan: &transport::Plan) -> Vec<(String, String)> {
    plan.config.iter().map(|(key, value)| (key.clone(), value.as_str().to_owned())).collect()
}

/// The config every fetch gets, whatever the remote.
fn base_config(timeout_seconds: &str) -> Vec<(String, String)> {
    [
        ("credential.helper", ""),
        ("core.askPass", ""),
        ("http.sslVerify", "true"),
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", timeout_seconds),
        ("gc.autoDetach", "false"),
        ("maintenance.autoDetach", "false"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .to_vec()
}

#[test]
fn a_token_becomes_a_basic_auth_header_in_the_config_and_nowhere_else() {
    let auth = RemoteAuth { token: secret("s3cret-token\n"), ..RemoteAuth::default() };
    let dir = Path::new("/data/m.credentials");
    let plan =
        plan("https://git.example.com/a.git", &auth, dir, None, None, Duration::from_millis(1500))
            .expect("plan");
    let mut expected = base_config("2");
    // base64("x-access-token:s3cret-token")
    expected.push((
        "http.extraHeader".to_owned(),
        "Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu".to_owned(),
    ));
    assert_eq!(config_of(&plan), expected);
    assert!(plan.ssh_command.is_none());
    assert!(plan.files.is_empty());
    let secrets: Vec<&str> = plan.secrets.iter().map(|secret| secret.as_str()).collect();
    assert!(secrets.contains(&"s3cret-token"), "the trimmed token is scrubbed");

    let named = RemoteAuth {
        username: Some("oauth2".to_owned()),
        token: secret("t"),
        ..RemoteAuth::default()
    };
    let plan = plan_of("https://gitlab.example.com/a.git", &named).expect("plan");
    // base64("oauth2:t")
    assert_eq!(
        config_of(&plan).last().map(|(_, value)| value.clone()),
        Some("Authorization: Basic b2F1dGgyOnQ=".to_owned())
    );
}

fn plan_of(url: &str, auth: &RemoteAuth) -> anyhow::Result<transport::Plan> {
    plan(url, auth, Path::new("/data/m.credentials"), None, None, Duration::from_secs(30))
}

#[test]
fn a_ca_file_is_added_to_the_system_bundle() {
    let auth = RemoteAuth { ca_file: Some("/etc/eventide/ca.pem".into()), ..RemoteAuth::default() };
    let dir = Path::new("/data/m.credentials");
    let plan = plan(
        "https://git.example.com/a.git",
        &auth,
        dir,
        Some(b"SYSTEM".to_vec()),
        Some(b"EXTRA\n".to_vec()),
        Duration::from_secs(30),
    )
    .expect("plan");
    let mut expected = base_config("30");
    expected.push(("http.sslCAInfo".to_owned(), "/data/m.credentials/ca.pem".to_owned()));
    assert_eq!(config_of(&plan), expected);
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].name, "ca.pem");
    assert_eq!(plan.files[0].contents.as_slice(), b"SYSTEM\nEXTRA\n");
}

#[test]
fn an_ssh_remote_gets_a_strict_batch_ssh_command_and_private_files() {
    let auth = RemoteAuth {
        ssh_key: secret(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
        ),
        known_hosts: secret("[h]:2222 ssh-ed25519 AAAA"),
        ..RemoteAuth::default()
    };
    let plan = plan_of("ssh://git@h:2222/a.git", &auth).expect("plan");
    assert_eq!(config_of(&plan), base_config("30"));
    assert_eq!(
        plan.ssh_command.as_deref(),
        Some(
            "ssh -i '/data/m.credentials/key' -o IdentitiesOnly=yes -o 'BatchMode=yes' \
             -o 'StrictHostKeyChecking=yes' -o 'UpdateHostKeys=no' -o 'LogLevel=ERROR' \
             -o 'UserKnownHostsFile=\"/data/m.credentials/known_hosts\" ~/.ssh/known_hosts \
             /etc/ssh/ssh_known_hosts' -o 'ConnectTimeout=30' -o 'ServerAliveInterval=30' \
             -o 'ServerAliveCountMax=1'"
        )
    );
    let files: Vec<(&str, &[u8])> =
        plan.files.iter().map(|file| (file.name, file.contents.as_slice())).collect();
    assert_eq!(
        files,
        vec![
            (
                "key",
                &b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"[..]
            ),
            ("known_hosts", &b"[h]:2222 ssh-ed25519 AAAA\n"[..]),
        ]
    );

    // Without a key or known_hosts, ssh still never prompts and checks host keys.
    let plan = plan_of("git@h:a.git", &RemoteAuth::default()).expect("plan");
    let command = plan.ssh_command.expect("an ssh command");
    assert!(!command.contains("-i "), "{command}");
    assert!(command.contains("'UserKnownHostsFile=~/.ssh/known_hosts /etc/ssh/ssh_known_hosts'"));
    assert!(plan.files.is_empty());
}

#[test]
fn the_child_environment_keeps_only_path_home_and_proxies_of_the_node() {
    let auth = RemoteAuth { token: secret("t"), ..RemoteAuth::default() };
    let plan = plan_of("https://h/a.git", &auth).expect("plan");
    let node = [
        ("PATH", "/usr/bin"),
        ("HOME", "/home/eventide"),
        ("https_proxy", "http://proxy:3128"),
        ("GIT_DIR", "/elsewhere"),
        ("GIT_SSL_CAINFO", "/etc/ssl/certs/ca-certificates.crt"),
        ("GIT_ASKPASS", "/usr/bin/ask"),
        ("SSH_AUTH_SOCK", "/run/agent"),
        ("EVENTIDE_SECRET", "cluster secret"),
    ];
    let inherited = |name: &str| {
        node.iter().find(|(key, _)| *key == name).map(|(_, value)| OsString::from(value))
    };
    let environment: Vec<(String, String)> = child_environment(&plan, inherited)
        .into_iter()
        .map(|(name, value)| (name, value.to_string_lossy().into_owned()))
        .collect();
    let names: Vec<&str> = environment.iter().map(|(name, _)| name.as_str()).collect();
    let mut expected = vec!["PATH", "HOME", "https_proxy", "LC_ALL", "GIT_TERMINAL_PROMPT"];
    expected.extend(["GIT_ALLOW_PROTOCOL", "GIT_CONFIG_COUNT"]);
    let pairs: Vec<String> = (0..plan.config.len())
        .flat_map(|index| [format!("GIT_CONFIG_KEY_{index}"), format!("GIT_CONFIG_VALUE_{index}")])
        .collect();
    expected.extend(pairs.iter().map(String::as_str));
    assert_eq!(names, expected);
    let value = |name: &str| {
        environment.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
    };
    assert_eq!(value("GIT_CONFIG_COUNT"), Some(plan.config.len().to_string()));
    assert_eq!(value("GIT_TERMINAL_PROMPT").as_deref(), Some("0"));
    let last = plan.config.len() - 1;
    assert_eq!(value(&format!("GIT_CONFIG_KEY_{last}")).as_deref(), Some("http.extraHeader"));

    let plan = plan_of("ssh://h/a.git", &RemoteAuth::default()).expect("plan");
    let environment = child_environment(&plan, inherited);
    let ssh: Vec<&str> = environment
        .iter()
        .filter(|(name, _)| name.starts_with("GIT_SSH"))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(ssh, ["GIT_SSH_COMMAND", "GIT_SSH_VARIANT"]);
}

#[test]
fn credentials_that_do_not_fit_the_url_are_refused_without_quoting_them() {
    let token = RemoteAuth { token: secret("tok-abc"), ..RemoteAuth::default() };
    let bad_token = RemoteAuth { token: secret("tok\r\nX: y"), ..RemoteAuth::default() };
    let key = RemoteAuth { ssh_key: secret("KEY-xyz"), ..RemoteAuth::default() };
    let cases: [(&str, &RemoteAuth, &str); 6] = [
        ("http://h/a.git", &token, "refusing to send the token over plain http"),
        ("ssh://h/a.git", &token, "not an https url"),
        ("https://h/a.git", &key, "not an ssh url"),
        ("/srv/a.git", &key, "neither an https nor an ssh url"),
        ("https://h/a.git", &bad_token, "the token contains control characters"),
        (
            "https://h/a.git",
            &RemoteAuth { token: secret(" \n"), ..RemoteAuth::default() },
            "the token is empty",
        ),
    ];
    for (url, auth, expected) in cases {
        let error = format!("{:#}", plan_of(url, auth).err().expect(expected));
        assert!(error.contains(expected), "{url}: {error}");
        for value in ["tok-abc", "KEY-xyz", "X: y"] {
            assert!(!error.contains(value), "{url}: the error quotes a secret: {error}");
        }
    }
}

#[test]
fn remotes_are_told_apart_by_their_url() {
    let http = |host: &str, secure| Remote::Http { host: host.to_owned(), secure };
    let ssh = |host: &str, port| Remote::Ssh { host: host.to_owned(), port };
    let cases = [
        ("https://git.example.com/a.git", http("git.example.com", true)),
        ("http://127.0.0.1:8080/a.git", http("127.0.0.1", false)),
        ("ssh://git@host:2222/a.git", ssh("host", 2222)),
        ("ssh://host/a.git", ssh("host", 22)),
        ("git@github.com:team/app.git", ssh("github.com", 22)),
        ("host:app.git", ssh("host", 22)),
        ("/srv/app.git", Remote::Other),
        ("file:///srv/app.git", Remote::Other),
        ("git://host/app.git", Remote::Other),
        ("./a:b", Remote::Other),
    ];
    for (url, expected) in cases {
        assert_eq!(Remote::of(url), expected, "{url}");
    }
    assert_eq!(scp_like("git@host:team/a.git"), Some(("host", "team/a.git")));
    assert_eq!(scp_like("a/b:c"), None);
}

#[test]
fn git_errors_are_explained_in_terms_of_what_to_fix() {
    let timeout = Duration::from_secs(30);
    let https = "https://git.example.com/a.git";
    let ssh = "ssh://git@git.example.com:2222/a.git";
    let cases = [
        (
            https,
            "fatal: could not read Username for 'https://git.example.com': terminal prompts disabled",
            "authentication to git.example.com failed (HTTP 401): check the token",
        ),
        (
            https,
            "fatal: unable to access 'https://git.example.com/a.git/': The requested URL returned error: 403",
            "authentication to git.example.com failed (HTTP 403): check the token and what it may read",
        ),
        (
            https,
            "fatal: unable to access 'https://git.example.com/a.git/': server certificate verification failed. CAfile: none CRLfile: none",
            "the certificate of git.example.com was not trusted: give the CA that signed it with --ca-file (or add it to the system's CA store)",
        ),
        (
            https,
            "fatal: unable to access 'x': SSL certificate problem: unable to get local issuer certificate",
            "the certificate of git.example.com was not trusted: give the CA that signed it with --ca-file (or add it to the system's CA store)",
        ),
        (
            https,
            "error: RPC failed; curl 28 Operation too slow. Less than 1 bytes/sec transferred the last 30 seconds",
            "the server git.example.com sent nothing for 30s: timed out",
        ),
        (
            ssh,
            "No ED25519 host key is known for [git.example.com]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\nfatal: Could not read from remote repository.",
            "host key of git.example.com:2222 is not known: add it with `ssh-keyscan -p 2222 git.example.com | eventide-node secret set NAME` and `eventide-node repo set URL --known-hosts NAME`, or to ~/.ssh/known_hosts on every node",
        ),
        (
            ssh,
            "git@git.example.com: Permission denied (publickey).\r\nfatal: Could not read from remote repository.",
            "ssh key refused by git.example.com: git@git.example.com: Permission denied (publickey).",
        ),
        (
            "/srv/theirs.git",
            "fatal: detected dubious ownership in repository at '/srv/theirs.git'",
            "the repository at /srv/theirs.git belongs to another user: git refuses it unless \
             the node user's git config trusts it (git config --global --add safe.directory PATH)",
        ),
        (
            "/srv/missing.git",
            "fatal: '/srv/missing.git' does not appear to be a git repository",
            "repository not found at the remote: check the url and the credentials",
        ),
    ];
    for (url, stderr, expected) in cases {
        assert_eq!(classify(stderr, url, timeout).as_deref(), Some(expected), "{stderr}");
    }
    assert_eq!(classify("fatal: something new", https, timeout), None);
}

#[test]
fn stderr_is_bounded_and_scrubbed() {
    let secrets = [Zeroizing::new("tok-123".to_owned())];
    assert_eq!(
        scrub("a tok-123 b\n> Authorization: Basic eHl6\nok", &secrets),
        "a [redacted] b\n> authorization: [redacted]\nok"
    );
    let long = format!("{}\nlast line\n", "x".repeat(3 * STDERR_TAIL_BYTES));
    assert_eq!(tail(long.as_bytes()), "last line\n");
    assert_eq!(tail(b"short\n"), "short\n");
    let lines = "line\n".repeat(STDERR_TAIL_BYTES);
    let kept = tail(lines.as_bytes());
    assert!(kept.len() < STDERR_TAIL_BYTES && kept.starts_with("line\n"), "{}", kept.len());
}

#[test]
fn secret_files_are_private_and_removed_with_their_directory() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("temp dir");
    let path = transport::private_dir_of(&data.path().join("0123-app"));
    assert_eq!(path, data.path().join("0123-app.credentials"));
    // A leftover of a crashed fetch is replaced.
    std::fs::create_dir_all(path.join("stale")).expect("leftover");
    let dir = transport::PrivateDir::create(path.clone()).expect("create");
    assert!(!path.join("stale").exists());
    let key = transport::PrivateFile { name: "key", contents: Zeroizing::new(b"k\n".to_vec()) };
    dir.write(&key).expect("write");
    let mode =
        |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("key")), 0o600);
    drop(dir);
    assert!(!path.exists(), "removed when dropped");
}

#[test]
fn remote_auth_debug_shows_no_value() {
    let auth = RemoteAuth {
        username: Some("oauth2".to_owned()),
        token: secret("tok-123"),
        ssh_key: secret("KEY-456"),
        known_hosts: None,
        ca_file: None,
    };
    let shown = format!("{auth:?}");
    assert!(!shown.contains("tok-123") && !shown.contains("KEY-456"), "{shown}");
    assert!(shown.contains("token: \"set\"") && shown.contains("known_hosts: \"none\""), "{shown}");
}

// ---- Fetches from real https and ssh servers (nginx, sshd: scripts/setup.sh) ----

#[allow(dead_code)]
#[path = "../../tests/src/gitserver.rs"]
mod gitserver;

use gitserver::{HttpsGitServer, SshGitServer, HTTPS_USERNAME};

fn https_auth(server: &HttpsGitServer, token: &str, ca: bool) -> RemoteAuth {
    RemoteAuth {
        username: Some(HTTPS_USERNAME.to_owned()),
        token: secret(token),
        ca_file: ca.then(|| server.ca_path()),
        ..RemoteAuth::default()
    }
}

#[test]
fn https_fetches_with_the_token_and_the_ca_and_fails_clearly_without() {
    let server = HttpsGitServer::start();
    let repos = tempfile::tempdir().expect("temp dir");
    let (bare, head) = gitserver::bare_repository(repos.path(), "app");
    let url = server.serve("app.git", &bare);
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &url);

    fetch_mirror(&mirror, &url, &https_auth(&server, server.token(), true))
        .unwrap_or_else(|error| panic!("fetch over https: {error:#}\n{}", server.log()));
    assert_eq!(branch_heads(&mirror).expect("heads")["main"].as_str(), head);
    assert!(!transport::private_dir_of(&mirror).exists(), "the CA bundle copy is removed");

    let error = fetch_mirror(&mirror, &url, &https_auth(&server, "wrong-token", true))
        .expect_err("a wrong token");
    let message = format!("{error:#}");
    assert_eq!(
        message,
        format!(
            "failed to fetch {url}: authentication to 127.0.0.1 failed (HTTP 401): check the token"
        )
    );
    assert!(!transport::private_dir_of(&mirror).exists(), "removed on error too");

    let error = fetch_mirror(&mirror, &url, &https_auth(&server, server.token(), false))
        .expect_err("no CA");
    let message = format!("{error:#}");
    assert!(
        message.contains("certificate of 127.0.0.1 was not trusted")
            && message.contains("--ca-file"),
        "{message}"
    );
    assert!(!message.contains(server.token()), "{message}");
}

#[test]
fn ssh_fetches_with_the_key_and_known_hosts_and_fails_clearly_without() {
    let server = SshGitServer::start();
    let repos = tempfile::tempdir().expect("temp dir");
    let (bare, head) = gitserver::bare_repository(repos.path(), "app");
    let url = server.serve("app.git", &bare);
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &url);
    let auth = |key: Vec<u8>, known: bool| RemoteAuth {
        ssh_key: Some(Zeroizing::new(key)),
        known_hosts: known.then(|| Zeroizing::new(server.known_hosts_line().into_bytes())),
        ..RemoteAuth::default()
    };

    fetch_mirror(&mirror, &url, &auth(server.client_key(), true))
        .unwrap_or_else(|error| panic!("fetch over ssh: {error:#}\n{}", server.log()));
    assert_eq!(branch_heads(&mirror).expect("heads")["main"].as_str(), head);
    assert!(!transport::private_dir_of(&mirror).exists(), "the key file is removed");

    let other = repos.path().join("other_key");
    gitserver::generate_key(&other);
    let wrong = std::fs::read(&other).expect("other key");
    let error = fetch_mirror(&mirror, &url, &auth(wrong, true)).expect_err("a wrong key");
    let message = format!("{error:#}");
    assert!(
        message.starts_with(&format!("failed to fetch {url}: ssh key refused by 127.0.0.1: ")),
        "{message}"
    );
    assert!(message.contains("Permission denied (publickey)"), "{message}");
    assert!(!transport::private_dir_of(&mirror).exists(), "removed on error too");

    let error = fetch_mirror(&mirror, &url, &auth(server.client_key(), false))
        .expect_err("an unknown host key");
    let port = server.port();
    assert_eq!(
        format!("{error:#}"),
        format!(
            "failed to fetch {url}: host key of 127.0.0.1:{port} is not known: add it with \
             `ssh-keyscan -p {port} 127.0.0.1 | eventide-node secret set NAME` and \
             `eventide-node repo set URL --known-hosts NAME`, or to ~/.ssh/known_hosts on \
             every node"
        )
    );
}

#[test]
fn commit_info_is_the_subject_and_the_author() {
    let upstream = Upstream::new();
    let head = upstream.commit("a.txt", b"a\n", "\n  Parse dates  \n\nThe body.\n");
    let mirrors = tempfile::tempdir().expect("temp dir");
    let mirror = mirror_in(&mirrors, &upstream.url());
    fetch_mirror(&mirror, &upstream.url(), &none()).expect("fetch");
    let (subject, author) = Mirror::open(&mirror).expect("open").commit_info(&head).expect("info");
    assert_eq!(subject, "Parse dates");
    assert_eq!(author, "t <t@example.invalid>");
    let missing = CommitId::try_new(&"ab".repeat(20)).expect("an id");
    assert!(Mirror::open(&mirror).expect("open").commit_info(&missing).is_err());
}
