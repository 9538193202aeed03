use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::*;

/// How long a test waits for a condition before failing.
const PATIENCE: Duration = Duration::from_secs(10);

/// A workspace and a log file in a fresh temp dir.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("work")).expect("work dir");
        Fixture { dir }
    }

    fn workdir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("job.log")
    }

    fn spec(&self, command: &str) -> ExecSpec {
        ExecSpec {
            command: command.to_owned(),
            workdir: self.workdir(),
            env: vec![("PATH".to_owned(), test_path())],
            timeout: PATIENCE,
            log_path: self.log_path(),
            tail_bytes: 64 * 1024,
            file_cap_bytes: 16 * 1024 * 1024,
            isolation: JobIsolation::default(),
            preamble: Vec::new(),
        }
    }

    fn log(&self) -> Vec<u8> {
        std::fs::read(self.log_path()).expect("log file")
    }
}

fn test_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
}

/// Runs with a cancel channel whose sender is dropped: never cancelled.
async fn run(spec: ExecSpec) -> ExecResult {
    let (_, cancel) = watch::channel(false);
    execute(spec, cancel).await.expect("execute")
}

/// Waits for `path` to hold a pid (the job writes it).
async fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Ok(pid) = text.trim().parse() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// True once `pid` is dead. A killed process that nobody reaped yet (its parent may be a
/// container init that does not reap) is a zombie: dead, though `kill(pid, 0)` finds it.
fn process_is_gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

async fn assert_gone(pid: i32) {
    let deadline = Instant::now() + PATIENCE;
    while !process_is_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn exit_zero_returns_output_and_writes_log() {
    let fixture = Fixture::new();
    let result = run(fixture.spec("echo hello")).await;
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_tail, "hello\n");
    assert_eq!(result.output_bytes, 6);
    assert_eq!(fixture.log(), b"hello\n");
}

#[tokio::test]
async fn exit_code_is_reported_with_tail() {
    let fixture = Fixture::new();
    let result = run(fixture.spec("echo 'test_one FAILED'; exit 3")).await;
    assert_eq!(result.end, ExecEnd::Exited(3));
    assert_eq!(result.output_tail, "test_one FAILED\n");
}

#[tokio::test]
async fn signal_is_reported() {
    let fixture = Fixture::new();
    let result = run(fixture.spec("kill -TERM $$")).await;
    assert_eq!(result.end, ExecEnd::Signalled(libc::SIGTERM));
}

#[tokio::test]
async fn stdout_and_stderr_share_one_stream_in_order() {
    let fixture = Fixture::new();
    let result = run(fixture.spec("echo out1; echo err1 >&2; echo out2; echo err2 >&2")).await;
    assert_eq!(result.output_tail, "out1\nerr1\nout2\nerr2\n");
    assert_eq!(fixture.log(), b"out1\nerr1\nout2\nerr2\n");
}

#[tokio::test]
async fn environment_is_exactly_the_given_one() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec("env");
    spec.env.push(("EVENTIDE_TEST_VALUE".to_owned(), "a b=c".to_owned()));
    let given: BTreeSet<String> = spec.env.iter().map(|(name, _)| name.clone()).collect();
    let inherited: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| !given.contains(name))
        .collect();
    assert!(!inherited.is_empty(), "the test process should have variables of its own");

    let result = run(spec).await;
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert!(result.output_tail.lines().any(|line| line == "EVENTIDE_TEST_VALUE=a b=c"));
    // The shell itself may export these.
    let from_shell = ["PWD", "OLDPWD", "SHLVL", "_"];
    let seen: BTreeSet<String> = result
        .output_tail
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
        .filter(|name| !from_shell.contains(&name.as_str()))
        .collect();
    assert_eq!(seen, given);
    for name in &inherited {
        if !from_shell.contains(&name.as_str()) {
            assert!(!seen.contains(name), "{name} leaked into the job");
        }
    }
}

#[tokio::test]
async fn runs_in_the_workdir() {
    let fixture = Fixture::new();
    std::fs::write(fixture.workdir().join("marker.txt"), "in the checkout\n").expect("write");
    let result = run(fixture.spec("pwd -P; cat marker.txt")).await;
    let workdir = fixture.workdir().canonicalize().expect("canonical workdir");
    assert_eq!(result.output_tail, format!("{}\nin the checkout\n", workdir.display()));
}

#[tokio::test]
async fn missing_workdir_is_an_error() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec("true");
    spec.workdir = fixture.dir.path().join("absent");
    let (_, cancel) = watch::channel(false);
    assert!(execute(spec, cancel).await.is_err());
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let fixture = Fixture::new();
    let mut spec = fixture
        .spec("sleep 1000 & echo $! > bg.pid; sh -c 'echo $$ > fg.pid; exec sleep 1000'; echo no");
    spec.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = run(spec).await;
    assert_eq!(result.end, ExecEnd::TimedOut);
    assert!(result.duration >= Duration::from_secs(1));
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(result.output_tail, "");
    assert_gone(read_pid(&fixture.workdir().join("bg.pid")).await).await;
    assert_gone(read_pid(&fixture.workdir().join("fg.pid")).await).await;
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let fixture = Fixture::new();
    let spec = fixture.spec("echo $$ > shell.pid; echo ready; sleep 1000 & echo $! > bg.pid; wait");
    let (cancel_sender, cancel) = watch::channel(false);
    let job = tokio::spawn(execute(spec, cancel));
    let shell = read_pid(&fixture.workdir().join("shell.pid")).await;
    let background = read_pid(&fixture.workdir().join("bg.pid")).await;
    cancel_sender.send(true).expect("job listens");
    let result = tokio::time::timeout(PATIENCE, job).await.expect("cancel is prompt");
    let result = result.expect("join").expect("execute");
    assert_eq!(result.end, ExecEnd::Cancelled);
    assert_eq!(result.output_tail, "ready\n");
    assert_gone(shell).await;
    assert_gone(background).await;
}

#[tokio::test]
async fn cancelled_before_start_ends_at_once() {
    let fixture = Fixture::new();
    let (_sender, cancel) = watch::channel(true);
    let result = execute(fixture.spec("sleep 1000"), cancel).await.expect("execute");
    assert_eq!(result.end, ExecEnd::Cancelled);
}

#[tokio::test]
async fn forked_daemon_dies_with_the_job() {
    let fixture = Fixture::new();
    let result = run(fixture.spec("(sleep 1000 & echo $! > daemon.pid); echo started")).await;
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_tail, "started\n");
    assert!(result.duration < PATIENCE);
    assert_gone(read_pid(&fixture.workdir().join("daemon.pid")).await).await;
}

#[tokio::test]
async fn escaped_process_holding_the_pipe_does_not_hang_the_job() {
    let fixture = Fixture::new();
    // `setsid` leaves the job's process group but keeps the pipe as stdout.
    let spec = fixture.spec(
        "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & \
         while [ ! -s escaped.pid ]; do :; done; echo started",
    );
    let started = Instant::now();
    let result = run(spec).await;
    let elapsed = started.elapsed();
    let escaped = read_pid(&fixture.workdir().join("escaped.pid")).await;
    // SAFETY: sends SIGKILL to the process this test made escape; signals touch no memory.
    unsafe { libc::kill(escaped, libc::SIGKILL) };
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_tail, "started\n");
    assert!(elapsed >= DRAIN_DEADLINE, "returned before the drain deadline: {elapsed:?}");
    assert!(elapsed < DRAIN_DEADLINE + PATIENCE, "hung on the pipe: {elapsed:?}");
}

#[tokio::test]
async fn output_flood_is_capped_on_disk_and_in_memory() {
    const FLOOD: u64 = 50_000_000;
    const CAP: u64 = 1024 * 1024;
    let fixture = Fixture::new();
    let mut spec = fixture.spec(&format!("yes | head -c {FLOOD}; printf 'the end\\n'"));
    spec.file_cap_bytes = CAP;
    let started = Instant::now();
    let result = run(spec).await;
    let elapsed = started.elapsed();
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_bytes, FLOOD + 8);
    assert!(elapsed < Duration::from_secs(30), "flood took {elapsed:?}");

    let mut expected_log = b"y\n".repeat(CAP as usize / 2);
    expected_log.extend_from_slice(b"[eventide: output truncated after 1048576 bytes]\n");
    assert!(fixture.log() == expected_log, "log is not the capped output plus one marker");

    let tail = result.output_tail;
    assert_eq!(tail.len(), 64 * 1024);
    let (before, end) = tail.split_at(tail.len() - "the end\n".len());
    assert_eq!(end, "the end\n");
    assert!(before == "y\n".repeat(before.len() / 2), "the tail is not the end of the output");
}

#[tokio::test]
async fn invalid_utf8_becomes_replacement_characters() {
    let fixture = Fixture::new();
    let result = run(fixture.spec(r"printf '\377\376ok\200\n'")).await;
    assert_eq!(result.output_tail, "\u{FFFD}\u{FFFD}ok\u{FFFD}\n");
    assert_eq!(result.output_bytes, 6);
    assert_eq!(fixture.log(), b"\xff\xfeok\x80\n");
}

#[tokio::test]
async fn binary_garbage_keeps_the_tail_bounded() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec("head -c 300000 /dev/urandom");
    spec.tail_bytes = 1000;
    let result = run(spec).await;
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_bytes, 300_000);
    assert!(result.output_tail.len() <= 1000);
    assert_eq!(fixture.log().len(), 300_000);
}

#[tokio::test]
async fn tail_starts_at_a_char_boundary() {
    // "xx", then é (2 bytes) and € (3 bytes): 7 bytes.
    for (tail_bytes, expected) in [(4, "€"), (5, "é€"), (6, "xé€"), (7, "xxé€"), (100, "xxé€")]
    {
        let fixture = Fixture::new();
        let mut spec = fixture.spec(r"printf 'xx\303\251\342\202\254'");
        spec.tail_bytes = tail_bytes;
        let result = run(spec).await;
        assert_eq!(result.output_tail, expected, "tail_bytes {tail_bytes}");
    }
}

#[test]
fn tail_memory_stays_bounded_and_keeps_the_end() {
    let limit = 64 * 1024;
    let mut tail = Tail::new(limit);
    let mut stream = Vec::new();
    for (index, size) in
        [1, 1000, 70_000, 3, 65_535, 65_536, 200_000, 17].iter().cycle().take(400).enumerate()
    {
        let chunk: Vec<u8> = (0..*size).map(|byte| (byte + index) as u8).collect();
        tail.push(&chunk);
        stream.extend_from_slice(&chunk);
        assert!(tail.bytes.capacity() <= 2 * limit, "capacity {}", tail.bytes.capacity());
        assert_eq!(tail.last(), &stream[stream.len().saturating_sub(limit)..]);
    }
}

#[test]
fn tail_text_never_exceeds_its_limit() {
    let mut tail = Tail::new(10);
    tail.push(&[0xFF; 10]);
    // Each invalid byte becomes a 3-byte U+FFFD; the text keeps whole characters only.
    assert_eq!(tail.text(10), "\u{FFFD}".repeat(3));
    let mut empty = Tail::new(0);
    empty.push(b"anything");
    assert_eq!(empty.text(8), "");
}

#[test]
fn file_cap_adds_one_marker_on_its_own_line() {
    let mut log = Vec::new();
    let mut sink = OutputSink::new(&mut log, 5, 100);
    sink.accept(b"abc");
    sink.accept(b"defgh");
    sink.accept(b"ijk");
    assert!(sink.file.is_none(), "nothing more is written once capped");
    assert_eq!(sink.total, 11);
    assert_eq!(sink.tail.text(sink.total), "abcdefghijk");
    drop(sink);
    assert_eq!(log, b"abcde\n[eventide: output truncated after 5 bytes]\n");

    let mut log = Vec::new();
    let mut sink = OutputSink::new(&mut log, 4, 100);
    sink.accept(b"abc\n");
    sink.accept(b"more");
    drop(sink);
    assert_eq!(log, b"abc\n[eventide: output truncated after 4 bytes]\n");

    let mut log = Vec::new();
    let mut sink = OutputSink::new(&mut log, 4, 100);
    sink.accept(b"ab\n");
    sink.accept(b"c");
    drop(sink);
    assert_eq!(log, b"ab\nc", "output of exactly the cap is not marked");
}

/// A log file on a full disk.
struct FullDisk;

impl Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("no space left"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn failing_log_keeps_the_tail() {
    let mut sink = OutputSink::new(FullDisk, 100, 100);
    sink.accept(b"first ");
    sink.accept(b"second");
    assert!(sink.file.is_none());
    assert_eq!(sink.total, 12);
    assert_eq!(sink.tail.text(sink.total), "first second");
    assert_eq!(sink.write_error.as_deref(), Some("no space left"), "the first error is kept");
}

#[test]
fn a_masked_sink_keeps_no_value_in_the_file_or_the_tail_however_it_is_cut() {
    let mask = Mask::new([&b"t0ps3cret"[..]]);
    let mut log = Vec::new();
    let mut sink = OutputSink::new(&mut log, 1024, 100).masked(mask);
    for chunk in [&b"token: t0p"[..], b"s3", b"cret\nagain t0ps3cr", b"et"] {
        sink.accept(chunk);
    }
    let sink = sink.finish();
    assert_eq!(sink.tail.text(sink.total), "token: ***\nagain ***");
    assert_eq!(sink.total, 20, "the masked output's length");
    drop(sink);
    assert_eq!(log, b"token: ***\nagain ***");
}

#[tokio::test]
async fn a_value_printed_in_two_halves_is_masked_in_the_log_and_the_tail() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec("printf 'value: t0p'; sleep 0.2; printf 's3cret\\n'; echo done");
    spec.preamble = vec!["secret TOKEN: given".to_owned()];
    let (_, cancel) = watch::channel(false);
    let mask = Mask::new([&b"t0ps3cret"[..]]);
    let result = execute_masked(spec, mask, cancel).await.expect("execute");
    assert_eq!(result.end, ExecEnd::Exited(0));
    assert_eq!(result.output_tail, "value: ***\ndone\n");
    let log = String::from_utf8(fixture.log()).expect("text");
    assert_eq!(log, "eventide: secret TOKEN: given\nvalue: ***\ndone\n");
}

#[tokio::test]
async fn the_live_log_never_shows_the_start_of_a_value_that_may_follow() {
    let fixture = Fixture::new();
    let gate = fixture.dir.path().join("gate");
    let command = format!(
        "printf 'value: t0p'; while [ ! -e {} ]; do sleep 0.02; done; printf 's3cret\\n'",
        gate.display()
    );
    let spec = fixture.spec(&command);
    let (_cancel, cancel) = watch::channel(false);
    let mask = Mask::new([&b"t0ps3cret"[..]]);
    let job = tokio::spawn(execute_masked(spec, mask, cancel));
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read(fixture.log_path()).unwrap_or_default() != b"value: " {
        assert!(Instant::now() < deadline, "the log never showed the text before the value");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The job waits at its gate: what may start the value is still held back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fixture.log(), b"value: ");
    std::fs::write(&gate, "").expect("open the gate");
    let result = job.await.expect("joins").expect("execute");
    assert_eq!(result.output_tail, "value: ***\n");
    assert_eq!(fixture.log(), b"value: ***\n");
}
