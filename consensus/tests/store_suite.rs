//! The sled store against openraft's storage conformance suite, plus what the suite does
//! not check: snapshots carry the CI state exactly, and a reopened store gives back what
//! was written.

use std::collections::BTreeMap;

use eventide_consensus::codec;
use eventide_consensus::store::{self, LogStore, StateMachineStore};
use eventide_consensus::testing::commit_for_test as commit;
use eventide_consensus::types::{Entry, LogId, StorageError, Vote};
use eventide_consensus::{
    Command, JobId, NodeId, NodeInfo, Observe, ObservedCommit, Outcome, Reply, RepoId, State,
    Timestamp, TypeConfig, Verdict,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    AnyError, CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder,
    StorageIOError,
};
use tempfile::TempDir;

/// Builds a fresh, empty store in its own temporary directory for each suite case.
struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        let (log_store, state_machine) =
            store::open(dir.path()).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(SledStoreBuilder).expect("the sled store passes openraft's suite");
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, NodeId(1)), index)
}

fn normal(index: u64, command: Command) -> Entry {
    Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(command) }
}

fn membership(index: u64) -> Entry {
    let nodes = BTreeMap::from([
        (NodeId(1), NodeInfo::new("127.0.0.1:7801", "one")),
        (NodeId(2), NodeInfo::new("127.0.0.1:7802", "two")),
    ]);
    let config = vec![nodes.keys().copied().collect()];
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::new(config, nodes)),
    }
}

/// A small history touching every part of the state: a repository, a cursor, queued,
/// running and finished jobs. Entry indexes start at 1.
fn history() -> Vec<Entry> {
    let at = Timestamp;
    let outcome = Outcome {
        verdict: Verdict::Failed,
        exit_code: Some(1),
        duration_ms: 1234,
        output_tail: "FAILED (failures=1)\n".into(),
        summary: None,
        message: None,
    };
    let commands = vec![
        Command::AddRepo { url: "file:///srv/app.git".into(), at: at(1) },
        Command::Observe(Observe {
            repo: RepoId(1),
            branch: "main".into(),
            expected_head: None,
            new_head: commit(3),
            commits: (1..=3)
                .map(|n| ObservedCommit { commit: commit(n), labels: vec!["linux".into()] })
                .collect(),
            skipped: Vec::new(),
            at: at(2),
        }),
        Command::Assign { job: JobId(1), runner: NodeId(2), attempt: 1, at: at(3) },
        Command::Finish { job: JobId(1), attempt: 1, outcome, at: at(4) },
        Command::Assign { job: JobId(2), runner: NodeId(1), attempt: 1, at: at(5) },
    ];
    let mut entries = vec![membership(1)];
    entries.extend(commands.into_iter().enumerate().map(|(i, c)| normal(i as u64 + 2, c)));
    entries
}

fn encoded_state(state_machine: &StateMachineStore) -> Vec<u8> {
    state_machine.read(|state| codec::encode(state).expect("the state encodes"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

#[test]
fn a_snapshot_restores_the_state_exactly() {
    runtime().block_on(async {
        let leader_dir = TempDir::new().expect("temp dir");
        let (_, mut leader) = store::open(leader_dir.path()).expect("open the leader store");
        let replies = leader.apply(history()).await.expect("apply the history");
        assert_eq!(replies.len(), history().len());
        assert_eq!(replies[0], Reply::None, "membership entries answer None");
        assert!(replies.iter().all(|reply| reply.refusal().is_none()), "{replies:?}");
        let expected = encoded_state(&leader);
        assert_ne!(expected, codec::encode(&State::default()).expect("the state encodes"));

        let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 6)));
        assert_eq!(snapshot.meta.last_membership.log_id(), &Some(log_id(1, 1)));
        assert_eq!(snapshot.snapshot.get_ref()[0], codec::FORMAT_V1);

        let follower_dir = TempDir::new().expect("temp dir");
        let (_, mut follower) = store::open(follower_dir.path()).expect("open the follower store");
        let mut received = follower.begin_receiving_snapshot().await.expect("begin receiving");
        *received = *snapshot.snapshot;
        follower.install_snapshot(&snapshot.meta, received).await.expect("install");

        assert_eq!(encoded_state(&follower), expected);
        assert_eq!(follower.last_applied(), Some(log_id(1, 6)));
        assert_eq!(
            follower.applied_state().await.expect("applied state"),
            leader.applied_state().await.expect("applied state")
        );
        let current = follower.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert_eq!(current.meta, snapshot.meta);
    });
}

#[test]
fn a_snapshot_that_disagrees_with_its_meta_is_refused() {
    runtime().block_on(async {
        let dir = TempDir::new().expect("temp dir");
        let (_, mut state_machine) = store::open(dir.path()).expect("open");
        state_machine.apply(history()).await.expect("apply");
        let snapshot =
            state_machine.get_snapshot_builder().await.build_snapshot().await.expect("build");

        let other_dir = TempDir::new().expect("temp dir");
        let (_, mut other) = store::open(other_dir.path()).expect("open");
        let mut meta = snapshot.meta.clone();
        meta.last_log_id = Some(log_id(1, 99));
        let result = other.install_snapshot(&meta, snapshot.snapshot.clone()).await;
        assert!(result.is_err(), "a payload for another log id must be refused");

        let mut garbage = snapshot.snapshot.clone();
        garbage.get_mut().truncate(10);
        let result = other.install_snapshot(&snapshot.meta, garbage).await;
        assert!(result.is_err(), "a truncated payload must be refused, not panic");
        assert_eq!(other.last_applied(), None, "a refused snapshot changes nothing");
        assert!(other.get_current_snapshot().await.expect("read").is_none());
    });
}

#[test]
fn a_reopened_store_gives_back_log_vote_committed_and_state() {
    let dir = TempDir::new().expect("temp dir");
    let entries = history();
    let (expected_state, snapshot_meta) = runtime().block_on(async {
        let (mut log_store, mut state_machine) = store::open(dir.path()).expect("open");
        log_store.blocking_append(entries.clone()).await.expect("append");
        log_store.save_vote(&Vote::new_committed(3, NodeId(1))).await.expect("save vote");
        log_store.save_committed(Some(log_id(1, 6))).await.expect("save committed");
        // Snapshot after the first four entries, then apply the rest: after reopening, the
        // state comes from the snapshot plus the re-applied committed entries.
        state_machine.apply(entries[..4].to_vec()).await.expect("apply");
        let snapshot =
            state_machine.get_snapshot_builder().await.build_snapshot().await.expect("build");
        log_store.purge(log_id(1, 2)).await.expect("purge");
        state_machine.apply(entries[4..].to_vec()).await.expect("apply");
        (encoded_state(&state_machine), snapshot.meta)
    });

    runtime().block_on(async {
        let (mut log_store, mut state_machine) = store::open(dir.path()).expect("reopen");
        assert_eq!(
            log_store.read_vote().await.expect("vote"),
            Some(Vote::new_committed(3, NodeId(1)))
        );
        assert_eq!(log_store.read_committed().await.expect("committed"), Some(log_id(1, 6)));
        let log_state = log_store.get_log_state().await.expect("log state");
        assert_eq!(log_state.last_purged_log_id, Some(log_id(1, 2)));
        assert_eq!(log_state.last_log_id, Some(log_id(1, 6)));
        let kept = log_store.try_get_log_entries(0..100).await.expect("entries");
        assert_eq!(kept, entries[2..].to_vec());

        assert_eq!(state_machine.last_applied(), Some(log_id(1, 4)), "the snapshot's point");
        let current = state_machine.get_current_snapshot().await.expect("read").expect("kept");
        assert_eq!(current.meta, snapshot_meta);

        // What openraft does on start: re-apply the committed entries after the snapshot.
        let after_snapshot = log_store.try_get_log_entries(5..7).await.expect("entries");
        state_machine.apply(after_snapshot).await.expect("re-apply");
        assert_eq!(encoded_state(&state_machine), expected_state);
        assert_eq!(state_machine.last_applied(), Some(log_id(1, 6)));
    });
}

#[test]
fn truncate_removes_the_suffix_and_append_continues() {
    runtime().block_on(async {
        let dir = TempDir::new().expect("temp dir");
        let (mut log_store, _) = store::open(dir.path()).expect("open");
        let entries = history();
        log_store.blocking_append(entries.clone()).await.expect("append");
        log_store.truncate(log_id(1, 4)).await.expect("truncate");
        let state = log_store.get_log_state().await.expect("log state");
        assert_eq!(state.last_log_id, Some(log_id(1, 3)));

        let replacement = Entry { log_id: log_id(2, 4), payload: EntryPayload::Blank };
        log_store.blocking_append([replacement.clone()]).await.expect("append");
        let all = log_store.try_get_log_entries(1..=4).await.expect("entries");
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], replacement);
    });
}
