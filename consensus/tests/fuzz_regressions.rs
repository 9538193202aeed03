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
use eventide_consensus::{Command, RaftTiming, Reply, State};

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
