//! HTTP limits end to end (issue 10): a half-sent request or an idle kept-alive
//! connection is closed after the header timeout while long answers (a long-polled
//! claim, a followed log) go on; half-sent connections beyond the public share of the
//! connection cap are refused at once while internal RPC keeps the cluster testing
//! commits, even with few file descriptors; and `results` pages past the API's 1000 jobs
//! per request.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use eventide_tests::repo::GitRepo;
use eventide_tests::{
    cli, free_addr, http, prometheus, wait_for_final_jobs, wait_until, Cluster, Node, Options,
    DEADLINE,
};
use serde_json::Value;

/// The first line of a request, and nothing more.
const HALF_SENT: &[u8] = b"GET / HTTP/1.1\r\n";

fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(HALF_SENT).expect("send a request line");
    stream
}

/// Waits until the peer closes `stream`; returns how long that took, or `None` if it is
/// still open after `deadline`.
fn time_to_close(stream: &mut TcpStream, deadline: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buffer = [0u8; 4096];
    while start.elapsed() < deadline {
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// True while the peer has not closed `stream` (nothing to read, no end of stream).
fn is_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    open
}

fn metrics(node: &Node) -> prometheus::Exposition {
    let (code, text) = http::get(node.addr, "/metrics").expect("metrics answer");
    assert_eq!(code, 200, "{text}");
    prometheus::parse(&text).expect("valid exposition")
}

fn cli_ok(args: &[&str]) -> String {
    let output = cli(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn half_sent_and_idle_connections_are_closed_but_long_answers_go_on() {
    let timeout = Duration::from_secs(2);
    let repo = GitRepo::new();
    repo.configure("true", "");
    repo.commit("first");
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    options.env = vec![("EVENTIDE_HTTP_HEADER_TIMEOUT".into(), "2s".into())];
    let cluster = Cluster::start(1, options);
    let node = &cluster.nodes[0];
    wait_for_final_jobs(&cluster, 0, 1, DEADLINE);

    // The runner's claim is now long-polled (up to 10 s) while nothing is queued.
    let mut stream = half_sent(node.addr);
    let closed = time_to_close(&mut stream, DEADLINE).expect("a half-sent request is closed");
    assert!(
        closed >= timeout - Duration::from_millis(500) && closed <= timeout * 3,
        "a half-sent request was closed after {closed:?}, the header timeout is {timeout:?}"
    );

    // A kept-alive connection is closed once it idles for the timeout after an answer.
    let mut stream = TcpStream::connect(node.addr).expect("connect");
    let request = format!("GET /api/v1/status HTTP/1.1\r\nHost: {}\r\n\r\n", node.addr);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = [0u8; 1024];
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    let read = stream.read(&mut answer).expect("an answer");
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&answer));
    let closed = time_to_close(&mut stream, DEADLINE).expect("an idle connection is closed");
    assert!(closed <= timeout * 3, "an idle connection was closed after {closed:?}");

    // A followed log streams for longer than the timeout, to the end of the job.
    repo.configure("echo begin; sleep 6; echo end", "");
    repo.commit("slow");
    node.notify();
    let slow = wait_until("the slow job to run", DEADLINE, || {
        let jobs = node.jobs("state=running")?;
        jobs.first()?["id"].as_u64()
    });
    let started = Instant::now();
    let log = cli_ok(&["log", &slow.to_string(), "--follow", "--node", &node.addr.to_string()]);
    assert!(log.contains("begin") && log.contains("end"), "{log}");
    assert!(started.elapsed() > timeout, "the log was followed for {:?}", started.elapsed());
    let jobs = wait_for_final_jobs(&cluster, 0, 2, DEADLINE);
    assert_eq!(jobs[0]["state"], "passed", "{}", jobs[0]);

    // No claim failed: long polls outlast the header timeout.
    let claim_errors =
        metrics(node).value("eventide_internal_rpc_errors_total", &[("rpc", "claim")]);
    assert!(claim_errors.unwrap_or(0.0) == 0.0, "claims failed: {claim_errors:?}");
    assert!(node.log_text().contains("http server started"), "the limits are logged");
}

/// The connection cap of the flooded cluster: 48 public connections, 16 kept internal.
const CAP: usize = 64;
const PUBLIC_SHARE: usize = 48;
/// Open files each node may have: the flood alone would exhaust them without the cap.
const OPEN_FILES: usize = 256;
/// Half-sent connections sent to each node.
const FLOOD: usize = 300;

#[test]
fn internal_rpc_goes_on_while_half_sent_connections_flood_every_node() {
    let marks = tempfile::tempdir().expect("temp dir");
    let repo = GitRepo::new();
    repo.configure("true", "");
    repo.commit("first");
    let mut options = Options::watching(repo.url());
    // The job marks a file of the test's: the sandbox shows it that directory.
    options.extra.extend(["--sandbox-bind".into(), marks.path().display().to_string()]);
    // Environment variables, not flags: a node without the cap still starts (and fails).
    options.env = vec![
        ("EVENTIDE_HTTP_MAX_CONNECTIONS".into(), CAP.to_string()),
        ("EVENTIDE_HTTP_HEADER_TIMEOUT".into(), "30s".into()),
    ];
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let launcher = vec!["prlimit".into(), format!("--nofile={OPEN_FILES}"), "--".into()];
    let cluster = Cluster::start_at(&addrs, vec![launcher; 3], options);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);

    let flood: Vec<Vec<TcpStream>> =
        addrs.iter().map(|&addr| (0..FLOOD).map(|_| half_sent(addr)).collect()).collect();
    for node in &cluster.nodes {
        // A public request is refused at once; a request to an internal route is served
        // (its decoder refuses the garbage with 400).
        let started = Instant::now();
        let answer = http::get(node.addr, "/api/v1/status");
        assert!(
            !matches!(answer, Ok((200, _))) && started.elapsed() < Duration::from_secs(3),
            "{}: a public request got {answer:?} after {:?}",
            node.name,
            started.elapsed()
        );
        let started = Instant::now();
        let answer =
            http::post_raw(node.addr, "/internal/raft/vote", "application/x-eventide-codec", b"x");
        assert!(
            matches!(answer, Ok((400, _))) && started.elapsed() < Duration::from_secs(3),
            "{}: an internal request got {answer:?} after {:?}",
            node.name,
            started.elapsed()
        );
    }

    // A commit is observed, dispatched and run while the flood holds the public share
    // (no notify: that is a public request).
    let marker = marks.path().join("ran");
    repo.configure(&format!("touch {}", marker.display()), "");
    let commit = repo.commit("during the flood");
    wait_until("the commit's job to run during the flood", DEADLINE, || {
        marker.exists().then_some(())
    });
    for (node, streams) in cluster.nodes.iter().zip(&flood) {
        let held = streams.iter().filter(|s| is_open(s)).count();
        assert!(
            (PUBLIC_SHARE / 2..=PUBLIC_SHARE).contains(&held),
            "{} holds {held} half-sent connections: the flood must still fill the public share",
            node.name
        );
    }
    drop(flood);

    // Fresh public requests work again, the job passed, every node is alive and counted
    // what it refused.
    let jobs = wait_for_final_jobs(&cluster, leader, 2, DEADLINE);
    let tested: Vec<&Value> = jobs.iter().filter(|j| j["commit"] == commit.as_str()).collect();
    assert_eq!(tested.len(), 1, "{jobs:#?}");
    assert_eq!(tested[0]["state"], "passed", "{}", tested[0]);
    for node in &cluster.nodes {
        let refused = metrics(node);
        let reserved =
            refused.value("eventide_http_refused_connections_total", &[("reason", "reserved")]);
        let full = refused.value("eventide_http_refused_connections_total", &[("reason", "full")]);
        let total = reserved.unwrap_or(0.0) + full.unwrap_or(0.0);
        assert!(
            reserved.unwrap_or(0.0) >= 1.0 && total >= (FLOOD - CAP) as f64,
            "{}: refused {reserved:?} in the reserve and {full:?} over the cap",
            node.name
        );
        let log = node.log_text();
        assert!(log.contains("refused public http requests"), "{} logs the refusals", node.name);
        assert!(!log.contains("panicked"), "{} panicked", node.name);
    }
}

#[test]
fn results_pages_past_the_api_limit_and_all_prints_every_job() {
    let repo = GitRepo::new();
    repo.configure("true", "");
    let commit = repo.commit("first");
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    // No runner: jobs are made by reruns and cancelled at once, so nothing runs.
    options.extra.extend(["--runner-slots".into(), "0".into()]);
    let cluster = Cluster::start(1, options);
    let node = &cluster.nodes[0];
    let first = wait_until("the first job", DEADLINE, || node.jobs("")?.first()?["id"].as_u64());
    let cancel = |id: u64| {
        let (code, body) =
            http::post(node.addr, &format!("/api/v1/jobs/{id}/cancel"), "").expect("cancel");
        assert_eq!(code, 200, "cancel {id}: {body}");
    };
    cancel(first);
    let total = 1_150;
    let rerun = format!("{{\"commit\": \"{commit}\"}}");
    for _ in 1..total {
        let (code, body) = http::post(node.addr, "/api/v1/rerun", &rerun).expect("rerun");
        assert_eq!(code, 201, "{body}");
        let job: Value = serde_json::from_str(&body).expect("a job");
        cancel(job["id"].as_u64().expect("a job id"));
    }

    let addr = node.addr.to_string();
    let ids = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["results", "--node", &addr, "--json"];
        all.extend_from_slice(args);
        let jobs: Vec<Value> = serde_json::from_str(&cli_ok(&all)).expect("one json array");
        jobs.iter().map(|j| j["id"].as_u64().expect("a job id")).collect()
    };
    let many = ids(&["--limit", "5000"]);
    assert_eq!(many.len(), total, "--limit 5000 lists every job");
    assert!(many.windows(2).all(|w| w[0] > w[1]), "newest first, each job once");
    assert_eq!(ids(&["--limit", "1001"]), many[..1001], "a limit just past one page");
    assert_eq!(ids(&["--all"]), many, "--all lists every job");
    let table = cli_ok(&["results", "--node", &addr, "--all"]);
    assert_eq!(table.lines().filter(|l| l.contains("cancelled")).count(), total, "{table}");
}
