//! Inputs that broke a decoder or an RPC handler under `cargo fuzz` (see `fuzz/` and
//! `scripts/fuzz.sh`), and hand-made malformed ones, replayed in the normal test suite.
//!
//! `fuzz_corpus/codec/` holds values as stored or sent: every decoder must refuse or
//! decode them without panicking, both as they are and without their first byte (a
//! crash file from the fuzzer starts with a type selector). `fuzz_corpus/raft_rpc/` holds
//! request bodies posted to every Raft route of a live single-node cluster, which must
//! still be running afterwards. Files named `malformed-*` must be refused: by every
//! decoder, and with a 400 by every route.
//!
//! - `raft_rpc/malformed-append-with-the-receivers-own-vote.bin`: an append-entries
//!   request whose vote names the receiving leader tripped an assertion in openraft
//!   (`internal_rpc` target); such requests are now refused.
//! - `raft_rpc/malformed-append-with-an-uncommitted-vote.bin`: an append-entries request
//!   with an uncommitted vote tripped another (`vote must be committed`); refused too.
//! - `*/malformed-batch-inside-a-batch.bin`, `*/malformed-batch-nested-10000-deep.bin`
//!   (issue 10): a `Batch` nested a million levels deep overflowed the decoding
//!   thread's stack and killed the node; a batch inside a batch is now refused while
//!   decoding, and every value's nesting is bounded.
//! - `raft_rpc/malformed-vote-at-term-u64-max.bin`, `malformed-append-at-term-u64-max.bin`
//!   (issue 10): openraft took the term and overflowed computing `term + 1`.
//! - `raft_rpc/malformed-append-with-a-gap-after-prev-log-id.bin`: entries that do not
//!   follow `prev_log_id` trip an assertion in openraft.
//! - `raft_rpc/malformed-snapshot-chunk-at-2-pow-40.bin` (issue 10): the node tried to
//!   allocate the chunk's offset (1 TiB) and aborted.
//! - `raft_rpc/malformed-final-snapshot-chunk-of-garbage.bin` (issue 10): one final
//!   snapshot chunk (offset 0, `done`) whose data is no snapshot, under a vote above the
//!   node's (term 1000, node 2), made the store fail to install it; openraft takes any
//!   storage error as fatal and Raft stopped on that node for good. The assembled
//!   snapshot is now decoded before the final chunk reaches openraft.

use std::collections::BTreeMap;
use std::path::PathBuf;

use eventide_consensus::codec::{self, CodecError};
use eventide_consensus::network::{
    WriteError, APPEND_PATH, CODEC_CONTENT_TYPE, SNAPSHOT_PATH, VOTE_PATH, WRITE_PATH,
};
use eventide_consensus::testing::{fuzz_corpus_for_test, LocalNode};
use eventide_consensus::types::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, InstallSnapshotRequest, LogId, RaftError,
    SnapshotMeta, StoredMembership, Vote, VoteRequest, VoteResponse,
};
use eventide_consensus::{Command, NodeId, RaftTiming, Reply, State};

fn corpus(target: &str) -> Vec<(String, Vec<u8>, bool)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    fuzz_corpus_for_test(&dir)
}

/// Decodes `bytes` as every type the codec decodes; returns the names of those that
/// accepted it. Both decoders must agree with the message limit being the smaller one.
fn accepted_by(bytes: &[u8]) -> Vec<&'static str> {
    fn one<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
        let message: Result<T, CodecError> = codec::decode(bytes);
        let stored: Result<T, CodecError> = codec::decode_stored(bytes);
        assert!(message.is_err() || stored.is_ok());
        stored.is_ok()
    }
    type Check = (&'static str, fn(&[u8]) -> bool);
    let checks: [Check; 13] = [
        ("Command", one::<Command>),
        ("Entry", one::<Entry>),
        ("AppendEntriesRequest", one::<AppendEntriesRequest>),
        ("VoteRequest", one::<VoteRequest>),
        ("InstallSnapshotRequest", one::<InstallSnapshotRequest>),
        ("State", one::<State>),
        ("snapshot payload", one::<(Option<LogId>, StoredMembership, State)>),
        ("SnapshotMeta", one::<SnapshotMeta>),
        ("Vote", one::<Vote>),
        ("Option<LogId>", one::<Option<LogId>>),
        ("append reply", one::<Result<AppendEntriesResponse, RaftError>>),
        ("vote reply", one::<Result<VoteResponse, RaftError>>),
        ("write reply", one::<Result<Reply, WriteError>>),
    ];
    checks.iter().filter(|(_, check)| check(bytes)).map(|(name, _)| *name).collect()
}

#[test]
fn codec_corpus_is_refused_or_decoded_without_panicking() {
    for (name, bytes, refused) in corpus("codec") {
        let accepted = accepted_by(&bytes);
        if refused {
            assert!(accepted.is_empty(), "{name} was accepted as {accepted:?}");
        }
        if let Some((_, rest)) = bytes.split_first() {
            let _ = accepted_by(rest);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_routes_answer_malformed_bodies_with_400() {
    let config = std::sync::Arc::new(RaftTiming::default().to_config("fuzz").expect("timing"));
    let node = LocalNode::start_for_test(1, config).await;
    // A cluster of one: the node leads, as the fuzz target's node does.
    node.raft.initialize(BTreeMap::from([(node.id, node.info())])).await.expect("initialize");
    node.wait_for_leader(None).await;
    let client = reqwest::Client::new();
    for (name, bytes, refused) in corpus("raft_rpc") {
        for path in [APPEND_PATH, VOTE_PATH, SNAPSHOT_PATH, WRITE_PATH] {
            let response = client
                .post(format!("http://{}{path}", node.addr))
                .header(reqwest::header::CONTENT_TYPE, CODEC_CONTENT_TYPE)
                .body(bytes.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name} to {path}: no answer: {e}"));
            let status = response.status();
            let text = response.text().await.expect("a body");
            assert!(!status.is_server_error(), "{name} to {path}: {status} {text}");
            if refused {
                assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{name} to {path}: {text}");
                assert!(text.starts_with("malformed request"), "{name} to {path}: {text}");
            }
        }
    }
    let running = node.raft.metrics().borrow().running_state.clone();
    assert!(running.is_ok(), "raft stopped: {running:?}");
    node.kill().await;
}

/// The body of `raft_rpc/malformed-final-snapshot-chunk-of-garbage.bin`: what it is,
/// spelled out, so that the file can be checked and rebuilt.
fn forged_final_chunk(vote: Vote, offset: u64) -> InstallSnapshotRequest {
    let meta = SnapshotMeta { snapshot_id: "forged".into(), ..SnapshotMeta::default() };
    InstallSnapshotRequest { vote, meta, offset, data: b"not a snapshot".to_vec(), done: true }
}

async fn post_snapshot_chunk(addr: &str, request: &InstallSnapshotRequest) -> (u16, String) {
    let body = codec::encode(request).expect("encode");
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{SNAPSHOT_PATH}"))
        .header(reqwest::header::CONTENT_TYPE, CODEC_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .expect("an answer");
    (response.status().as_u16(), response.text().await.expect("a body"))
}

#[test]
fn the_forged_final_snapshot_chunk_in_the_corpus_is_what_it_says() {
    let (_, bytes, _) = corpus("raft_rpc")
        .into_iter()
        .find(|(name, _, _)| name.contains("final-snapshot-chunk-of-garbage"))
        .expect("in the corpus");
    let forged = forged_final_chunk(Vote::new_committed(1000, NodeId(2)), 0);
    assert_eq!(bytes, codec::encode(&forged).expect("encode"));
}

/// Issue 10: a forged final snapshot chunk, alone or after a first chunk that was taken,
/// is refused with 400, and Raft keeps running and committing on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_snapshot_chunk_that_does_not_decode_is_refused_and_raft_keeps_running() {
    let config = std::sync::Arc::new(RaftTiming::default().to_config("fuzz").expect("timing"));
    let node = LocalNode::start_for_test(1, config).await;
    node.raft.initialize(BTreeMap::from([(node.id, node.info())])).await.expect("initialize");
    node.wait_for_leader(None).await;
    let term = node.raft.metrics().borrow().current_term;
    let vote = Vote::new_committed(1000, NodeId(2));

    let (status, text) = post_snapshot_chunk(&node.addr, &forged_final_chunk(vote, 0)).await;
    assert_eq!((status, text.starts_with("malformed request")), (400, true), "{text}");

    // The same garbage streamed: a first chunk is taken, the final one refused.
    let mut first = forged_final_chunk(vote, 0);
    first.done = false;
    let (status, text) = post_snapshot_chunk(&node.addr, &first).await;
    assert_eq!(status, 200, "a first chunk is taken: {text}");
    let (status, text) =
        post_snapshot_chunk(&node.addr, &forged_final_chunk(vote, first.data.len() as u64)).await;
    assert_eq!((status, text.starts_with("malformed request")), (400, true), "{text}");

    // Nothing reached the store nor changed the vote: the node still leads, and commits.
    let metrics = node.raft.metrics().borrow().clone();
    assert!(metrics.running_state.is_ok(), "raft stopped: {:?}", metrics.running_state);
    assert_eq!((metrics.current_leader, metrics.current_term), (Some(node.id), term));
    let written = node.raft.client_write(Command::Batch(Vec::new())).await.expect("a commit");
    node.wait_applied(written.log_id.index).await;
    node.kill().await;
}
