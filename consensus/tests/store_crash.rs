//! Crash safety: every append and vote the store has acknowledged survives a SIGKILL.
//!
//! The test runs itself twice. The parent spawns this same test binary as a child (with
//! the store directory in an environment variable); the child appends entries and saves
//! votes in a loop, printing an acknowledgement only after `LogFlushed` has fired or
//! `save_vote` has returned. The parent reads the acknowledgements, kills the child with
//! SIGKILL in the middle of its writes, reopens the store and checks that every
//! acknowledged entry and the last acknowledged vote are there, with no hole in the log.
//! Several rounds run on the same directory, each child continuing the log.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use eventide_consensus::store;
use eventide_consensus::types::{Entry, LogId, Vote};
use eventide_consensus::{Command, NodeId, Timestamp};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use tempfile::TempDir;

/// Set in the child: the store directory to write to.
const CHILD_DIR_VAR: &str = "EVENTIDE_TEST_STORE_CRASH_DIR";
/// This test's own name, for the child's libtest filter.
const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";
const ROUNDS: usize = 3;
/// Acknowledged appends the parent waits for before it kills the child.
const ACKS_PER_ROUND: usize = 300;
/// A child whose parent vanished stops by itself after this many appends.
const CHILD_MAX_APPENDS: u64 = 200_000;
/// How long the parent lets the child run on after the acknowledgements it waited for,
/// per round, so that the kill lands at different points of an append or a flush.
const KILL_DELAYS: [Duration; ROUNDS] =
    [Duration::ZERO, Duration::from_micros(150), Duration::from_millis(1)];
/// How long the parent waits for any line from the child.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn acknowledged_writes_survive_sigkill() {
    match std::env::var_os(CHILD_DIR_VAR) {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, NodeId(1)), index)
}

/// The entry the child writes at `index`; the parent rebuilds it to compare.
fn entry(index: u64) -> Entry {
    let url = format!("file:///srv/crash/{index}/{}", "x".repeat(index as usize % 200));
    let command = Command::AddRepo { url, at: Timestamp(index) };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// Appends (one to three entries at a time) and votes until killed.
fn child(dir: &Path) {
    runtime().block_on(async {
        let (mut log_store, _state_machine) = store::open(dir).expect("the child opens the store");
        let log_state = log_store.get_log_state().await.expect("log state");
        let mut next = log_state.last_log_id.map_or(1, |log_id| log_id.index + 1);
        let vote = log_store.read_vote().await.expect("vote");
        let mut term = vote.map_or(0, |vote| vote.leader_id().term);
        let stop = next + CHILD_MAX_APPENDS;
        let mut stdout = std::io::stdout();
        while next < stop {
            let last = next + next % 3;
            log_store.blocking_append((next..=last).map(entry)).await.expect("append");
            writeln!(stdout, "appended {last}").expect("write to the parent");
            stdout.flush().expect("flush to the parent");
            if last % 5 == 0 {
                term += 1;
                log_store.save_vote(&Vote::new(term, NodeId(1))).await.expect("save vote");
                writeln!(stdout, "vote {term}").expect("write to the parent");
                stdout.flush().expect("flush to the parent");
            }
            next = last + 1;
        }
    });
}

/// What the child has acknowledged so far.
#[derive(Default)]
struct Acknowledged {
    last_index: u64,
    last_term: u64,
    appends: usize,
}

impl Acknowledged {
    fn record(&mut self, line: &str) {
        if let Some(index) = line.strip_prefix("appended ") {
            let index: u64 = index.parse().expect("an index");
            assert!(index > self.last_index, "appends are acknowledged in order");
            self.last_index = index;
            self.appends += 1;
        } else if let Some(term) = line.strip_prefix("vote ") {
            self.last_term = term.parse().expect("a term");
        }
        // Anything else is the test harness talking.
    }
}

fn spawn_child(dir: &Path) -> (Child, Receiver<String>) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Process::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, received)
}

fn parent() {
    let dir = TempDir::new().expect("temp dir");
    let mut acknowledged = Acknowledged::default();
    for (round, kill_delay) in (1..).zip(KILL_DELAYS) {
        let started = Instant::now();
        let (mut child, lines) = spawn_child(dir.path());
        let target = acknowledged.appends + ACKS_PER_ROUND;
        while acknowledged.appends < target {
            match lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => acknowledged.record(&line),
                Err(error) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("round {round}: child stopped acknowledging ({error:?}), {status:?}");
                }
            }
        }
        std::thread::sleep(kill_delay);
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        // Lines the child printed before it died were acknowledged too.
        loop {
            match lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => acknowledged.record(&line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the child's stdout never closed"),
            }
        }
        let last = verify(dir.path(), &acknowledged);
        eprintln!(
            "round {round}: {} entries acknowledged, {} on disk, vote term {} acknowledged, {:?}",
            acknowledged.last_index,
            last,
            acknowledged.last_term,
            started.elapsed()
        );
    }
}

/// Reopens the store and checks it against what was acknowledged; returns the last index.
fn verify(dir: &Path, acknowledged: &Acknowledged) -> u64 {
    runtime().block_on(async {
        let (mut log_store, _state_machine) = store::open(dir).expect("reopen after the crash");
        let log_state = log_store.get_log_state().await.expect("log state");
        assert_eq!(log_state.last_purged_log_id, None);
        let last = log_state.last_log_id.expect("a non-empty log").index;
        assert!(
            last >= acknowledged.last_index,
            "acknowledged entry {} lost; the log ends at {last}",
            acknowledged.last_index
        );
        let entries = log_store.try_get_log_entries(1..=last).await.expect("read the log");
        assert_eq!(entries.len() as u64, last, "the log has a hole");
        for (position, stored) in entries.iter().enumerate() {
            assert_eq!(stored, &entry(position as u64 + 1), "entry {} differs", position + 1);
        }
        let vote = log_store.read_vote().await.expect("read the vote");
        if acknowledged.last_term > 0 {
            let term = vote.expect("an acknowledged vote").leader_id().term;
            assert!(
                term >= acknowledged.last_term,
                "acknowledged vote {} lost; found {term}",
                acknowledged.last_term
            );
        }
        last
    })
}
