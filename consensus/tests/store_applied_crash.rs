//! Reads never go back in time across a crash (issue 10): once the state machine has
//! applied an entry, and so could have shown its effect, the committed log id that covers
//! it survives a SIGKILL, so that the restarted node re-applies at least that far.
//!
//! As in `store_crash.rs`, the test runs itself twice. The child does what openraft does
//! for each entry (append it, save the committed id, apply it), prints an acknowledgement
//! once `apply` has returned, and after its last entry waits to be killed. The parent kills
//! it with SIGKILL as soon as the last acknowledgement arrives, reopens the store and
//! checks the committed id. Several rounds continue the same log.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use eventide_consensus::store;
use eventide_consensus::types::{Entry, LogId};
use eventide_consensus::{Command, NodeId, Timestamp};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

/// Set in the child: the store directory to write to.
const CHILD_DIR_VAR: &str = "EVENTIDE_TEST_APPLIED_CRASH_DIR";
/// This test's own name, for the child's libtest filter.
const TEST_NAME: &str = "an_applied_entry_is_reapplied_after_sigkill";
const ROUNDS: usize = 4;
/// Entries each child appends, commits and applies.
const ENTRIES_PER_ROUND: u64 = 20;
/// How long the parent waits for the child's last acknowledgement.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn an_applied_entry_is_reapplied_after_sigkill() {
    match std::env::var_os(CHILD_DIR_VAR) {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, NodeId(1)), index)
}

fn entry(index: u64) -> Entry {
    let command = Command::AddRepo { url: format!("file:///srv/{index}"), at: Timestamp(index) };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// Appends, commits and applies one entry at a time, acknowledging each once applied,
/// then waits to be killed.
fn child(dir: &Path) {
    runtime().block_on(async {
        let (mut log_store, mut state_machine) = store::open(dir).expect("open the store");
        let log_state = log_store.get_log_state().await.expect("log state");
        let first = log_state.last_log_id.map_or(1, |log_id| log_id.index + 1);
        let mut stdout = std::io::stdout();
        for index in first..first + ENTRIES_PER_ROUND {
            log_store.blocking_append([entry(index)]).await.expect("append");
            log_store.save_committed(Some(log_id(index))).await.expect("save committed");
            state_machine.apply([entry(index)]).await.expect("apply");
            writeln!(stdout, "applied {index}").expect("write to the parent");
            stdout.flush().expect("flush to the parent");
        }
        // Alive, but writing nothing more, until the parent kills it.
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

fn parent() {
    let dir = TempDir::new().expect("temp dir");
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut lost = Vec::new();
    for round in 1..=ROUNDS as u64 {
        let mut child = Process::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_VAR, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let last = round * ENTRIES_PER_ROUND;
        let started = Instant::now();
        let mut lines = BufReader::new(stdout).lines();
        // Killed the moment the last entry is acknowledged: its committed id was written
        // microseconds ago, long before sled's own background flush.
        loop {
            assert!(started.elapsed() < ROUND_TIMEOUT, "round {round}: the child is stuck");
            let line = lines.next().expect("the child's output").expect("a line");
            if line == format!("applied {last}") {
                break;
            }
        }
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        let committed = runtime().block_on(async {
            let (mut log_store, _state_machine) = store::open(dir.path()).expect("reopen");
            log_store.read_committed().await.expect("read committed")
        });
        let committed = committed.map_or(0, |log_id| log_id.index);
        eprintln!("round {round}: entry {last} applied, committed {committed} on disk");
        if committed < last {
            lost.push(format!("round {round}: applied {last}, committed on disk {committed}"));
        }
    }
    assert!(lost.is_empty(), "applied entries a restart would not re-apply: {lost:?}");
}
