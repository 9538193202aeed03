//! Each rule of `plausible`, with what a correct peer sends next to what it never does.

use super::*;
use crate::command::Command;
use crate::types::{Entry, EntryPayload, SnapshotMeta, StoredMembership};

const ME: NodeId = NodeId(1);
const LEADER: NodeId = NodeId(2);

fn leader(term: u64) -> Vote {
    Vote::new_committed(term, LEADER)
}

fn id(term: u64, index: u64) -> LogId {
    LogId::new(*leader(term).leader_id(), index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry { log_id: id(term, index), payload: EntryPayload::Normal(Command::Batch(Vec::new())) }
}

fn append(vote: Vote, prev: Option<LogId>, entries: Vec<Entry>) -> AppendEntriesRequest {
    AppendEntriesRequest { vote, prev_log_id: prev, entries, leader_commit: prev }
}

fn chunk(id: &str, offset: u64, len: usize) -> InstallSnapshotRequest {
    let meta = SnapshotMeta { snapshot_id: id.into(), ..SnapshotMeta::default() };
    InstallSnapshotRequest { vote: leader(3), meta, offset, data: vec![0; len], done: false }
}

#[test]
fn votes_need_a_plausible_term_another_node_and_a_commit_from_a_leader() {
    let cases = [
        (leader(7), Sender::Leader, Ok(())),
        (Vote::new(7, LEADER), Sender::Candidate, Ok(())),
        (leader(MAX_TERM), Sender::Leader, Ok(())),
        (leader(MAX_TERM + 1), Sender::Leader, Err("the term is implausibly large")),
        (Vote::new(u64::MAX, LEADER), Sender::Candidate, Err("the term is implausibly large")),
        (Vote::new_committed(7, ME), Sender::Leader, Err("the vote names the receiving node")),
        (Vote::new(7, LEADER), Sender::Leader, Err("a leader's vote must be committed")),
    ];
    for (vote, sender, expected) in cases {
        assert_eq!(self::vote(ME, &vote, sender), expected, "{vote} from {sender:?}");
    }
}

#[test]
fn a_candidates_last_log_id_is_no_later_than_its_term() {
    let request = |last| VoteRequest::new(Vote::new(5, LEADER), last);
    assert_eq!(vote_request(ME, &request(None)), Ok(()));
    assert_eq!(vote_request(ME, &request(Some(id(4, 10)))), Ok(()));
    assert_eq!(vote_request(ME, &request(Some(id(5, 10)))), Ok(()));
    assert_eq!(
        vote_request(ME, &request(Some(id(6, 10)))),
        Err("a log id's term is later than the sender's term")
    );
    assert_eq!(
        vote_request(ME, &request(Some(id(4, u64::MAX)))),
        Err("a log index is implausibly large")
    );
}

#[test]
fn append_entries_follow_prev_log_id_one_index_at_a_time_with_terms_in_order() {
    let cases: Vec<(AppendEntriesRequest, Result<(), Problem>)> = vec![
        (append(leader(3), None, Vec::new()), Ok(())),
        (append(leader(3), None, vec![entry(1, 0), entry(1, 1), entry(3, 2)]), Ok(())),
        (append(leader(3), Some(id(2, 9)), vec![entry(2, 10), entry(3, 11)]), Ok(())),
        (append(leader(3), Some(id(3, MAX_LOG_INDEX - 1)), vec![entry(3, MAX_LOG_INDEX)]), Ok(())),
        (
            append(leader(3), None, vec![entry(1, 1)]),
            Err("the entries do not follow prev_log_id one index at a time"),
        ),
        (
            append(leader(3), Some(id(2, 9)), vec![entry(2, 10), entry(2, 12)]),
            Err("the entries do not follow prev_log_id one index at a time"),
        ),
        (
            append(leader(3), Some(id(2, 9)), vec![entry(2, 9)]),
            Err("the entries do not follow prev_log_id one index at a time"),
        ),
        (
            append(leader(3), Some(id(2, 9)), vec![entry(3, 10), entry(2, 11)]),
            Err("the terms of the entries go backwards"),
        ),
        (
            append(leader(3), Some(id(3, 9)), vec![entry(2, 10)]),
            Err("the terms of the entries go backwards"),
        ),
        (
            append(leader(3), Some(id(4, 9)), Vec::new()),
            Err("a log id's term is later than the sender's term"),
        ),
        (
            append(leader(3), Some(id(3, 9)), vec![entry(4, 10)]),
            Err("a log id's term is later than the sender's term"),
        ),
        (
            append(leader(3), Some(id(3, u64::MAX)), Vec::new()),
            Err("a log index is implausibly large"),
        ),
        (
            append(leader(3), Some(id(3, MAX_LOG_INDEX)), vec![entry(3, MAX_LOG_INDEX + 1)]),
            Err("a log index is implausibly large"),
        ),
        (append(leader(u64::MAX), None, Vec::new()), Err("the term is implausibly large")),
        (append(Vote::new(3, LEADER), None, Vec::new()), Err("a leader's vote must be committed")),
    ];
    for (request, expected) in cases {
        assert_eq!(append_request(ME, &request), expected, "{request:?}");
    }
    let mut commit_later = append(leader(3), Some(id(3, 9)), Vec::new());
    commit_later.leader_commit = Some(id(4, 9));
    assert_eq!(
        append_request(ME, &commit_later),
        Err("a log id's term is later than the sender's term")
    );
}

#[test]
fn snapshot_chunks_stay_within_the_largest_snapshot() {
    let end = MAX_SNAPSHOT_BYTES;
    let cases = [
        (chunk("s", 0, 3), Ok(())),
        (chunk("s", end - 3, 3), Ok(())),
        (chunk("s", end - 2, 3), Err("the snapshot chunk ends past the largest snapshot accepted")),
        (chunk("s", 1 << 40, 1), Err("the snapshot chunk ends past the largest snapshot accepted")),
        (
            chunk("s", u64::MAX, 1),
            Err("the snapshot chunk ends past the largest snapshot accepted"),
        ),
        (
            chunk(&"x".repeat(MAX_SNAPSHOT_ID_BYTES + 1), 0, 1),
            Err("the snapshot id is implausibly long"),
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(snapshot_request(ME, &request), expected, "{request}");
    }
}

#[test]
fn a_snapshots_log_ids_are_no_later_than_the_senders_term() {
    let mut request = chunk("s", 0, 1);
    request.meta.last_log_id = Some(id(3, 50));
    request.meta.last_membership = StoredMembership::new(Some(id(2, 40)), Default::default());
    assert_eq!(snapshot_request(ME, &request), Ok(()));
    request.meta.last_log_id = Some(id(4, 50));
    assert_eq!(
        snapshot_request(ME, &request),
        Err("a log id's term is later than the sender's term")
    );
    request.meta.last_log_id = Some(id(3, 30));
    assert_eq!(
        snapshot_request(ME, &request),
        Err("the snapshot's membership is later than its last log id")
    );
    request.meta.last_log_id = None;
    assert_eq!(
        snapshot_request(ME, &request),
        Err("the snapshot's membership is later than its last log id")
    );
}

fn bytes(id: &str, offset: u64, data: &[u8], done: bool) -> InstallSnapshotRequest {
    InstallSnapshotRequest { data: data.to_vec(), done, ..chunk(id, offset, 0) }
}

/// A chunk openraft takes: checked, written and settled as taken.
fn take(received: &mut SnapshotReceived, request: &InstallSnapshotRequest) {
    assert_eq!(received.check(request), Ok(()), "{request}");
    let written = received.write(request);
    received.settle(written, true);
}

/// The snapshot a final chunk completes, without openraft being handed it.
fn assembled(received: &mut SnapshotReceived, request: &InstallSnapshotRequest) -> Option<Vec<u8>> {
    let written = received.write(request);
    let data = received.assembled(&written).map(<[u8]>::to_vec);
    received.undo(written);
    data
}

#[test]
fn chunks_of_the_current_snapshot_start_no_later_than_what_was_received() {
    let past = Err("the snapshot chunk starts past the end of what was sent");
    let mut received = SnapshotReceived::default();
    // Nothing received: openraft itself refuses a later chunk of a stream it lacks.
    assert_eq!(received.check(&chunk("a", 100, 10)), Ok(()));
    take(&mut received, &chunk("a", 0, 10));
    assert_eq!(received.check(&chunk("a", 10, 10)), Ok(()), "the next chunk");
    assert_eq!(received.check(&chunk("a", 11, 10)), past, "a gap");
    assert_eq!(received.check(&chunk("a", 1 << 29, 1)), past, "far past");
    take(&mut received, &chunk("a", 10, 10));
    assert_eq!(received.check(&chunk("a", 10, 10)), Ok(()), "a resent chunk");
    assert_eq!(received.check(&chunk("a", 20, 10)), Ok(()));
    assert_eq!(received.check(&chunk("b", 20, 10)), Ok(()), "not the stream");
    // A resent chunk does not move the end back, nor does one at 0 of the same stream
    // (openraft writes it into the stream it has).
    take(&mut received, &chunk("a", 5, 1));
    take(&mut received, &chunk("a", 0, 1));
    assert_eq!(received.check(&chunk("a", 20, 10)), Ok(()));
    // A chunk at 0 of another snapshot starts another stream.
    take(&mut received, &chunk("b", 0, 4));
    assert_eq!(received.check(&chunk("b", 5, 1)), past);
    assert_eq!(received.check(&chunk("a", 20, 1)), Ok(()), "no longer the stream");
}

#[test]
fn the_snapshot_a_final_chunk_completes_is_what_openraft_assembles() {
    let mut received = SnapshotReceived::default();
    // A snapshot in one final chunk.
    assert_eq!(assembled(&mut received, &bytes("a", 0, b"whole", true)), Some(b"whole".to_vec()));
    // In chunks, one resent, and one at 0 again over what was there.
    take(&mut received, &bytes("a", 0, b"abc", false));
    take(&mut received, &bytes("a", 3, b"def", false));
    take(&mut received, &bytes("a", 3, b"def", false));
    take(&mut received, &bytes("a", 0, b"A", false));
    assert_eq!(assembled(&mut received, &bytes("a", 6, b"g", true)), Some(b"Abcdefg".to_vec()));
    // A final chunk inside what was received leaves the tail: openraft's stream keeps it.
    assert_eq!(assembled(&mut received, &bytes("a", 1, b"B", true)), Some(b"ABcdef".to_vec()));
    // Another snapshot at 0 starts over; at a later offset openraft writes nothing.
    assert_eq!(assembled(&mut received, &bytes("b", 0, b"xy", true)), Some(b"xy".to_vec()));
    assert_eq!(assembled(&mut received, &bytes("b", 6, b"xy", true)), None);
    // Not final: nothing to check yet.
    assert_eq!(assembled(&mut received, &bytes("a", 6, b"g", false)), None);
    // Every write above was undone: the stream is as the taken chunks left it.
    assert_eq!(assembled(&mut received, &bytes("a", 6, b"", true)), Some(b"Abcdef".to_vec()));
}

#[test]
fn a_chunk_openraft_does_not_take_leaves_the_stream_as_it_was() {
    let mut received = SnapshotReceived::default();
    take(&mut received, &bytes("a", 0, b"abc", false));
    // Refused by openraft's vote check: not written.
    for request in [bytes("a", 1, b"XYZW", false), bytes("b", 0, b"other", false)] {
        let written = received.write(&request);
        received.settle(written, false);
    }
    assert_eq!(assembled(&mut received, &bytes("a", 3, b"d", true)), Some(b"abcd".to_vec()));
    // A final chunk openraft takes ends the stream: a later chunk of it is not written.
    take(&mut received, &bytes("a", 3, b"d", true));
    assert_eq!(received.check(&bytes("a", 5, b"e", true)), Ok(()));
    assert_eq!(assembled(&mut received, &bytes("a", 5, b"e", true)), None);
}

#[test]
fn a_final_chunk_refused_by_openraft_leaves_its_stream_unknown_until_another_starts() {
    let unknown =
        Err("the snapshot's stream was interrupted; it must start again under another id");
    let mut received = SnapshotReceived::default();
    take(&mut received, &bytes("a", 0, b"abc", false));
    let written = received.write(&bytes("a", 3, b"d", true));
    received.settle(written, false);
    assert_eq!(received.check(&bytes("a", 0, b"abcd", true)), unknown);
    assert_eq!(received.check(&bytes("a", 3, b"d", true)), unknown);
    // Another snapshot not taken does not settle it; one taken does.
    let written = received.write(&bytes("b", 0, b"x", false));
    received.settle(written, false);
    assert_eq!(received.check(&bytes("a", 0, b"abcd", true)), unknown);
    take(&mut received, &bytes("b", 0, b"x", false));
    assert_eq!(received.check(&bytes("a", 0, b"abcd", true)), Ok(()));
    assert_eq!(assembled(&mut received, &bytes("a", 0, b"abcd", true)), Some(b"abcd".to_vec()));
}

#[test]
fn answers_with_implausible_terms_are_dropped() {
    assert_eq!(answered_vote(&leader(9)), Ok(()));
    assert_eq!(answered_vote(&leader(u64::MAX)), Err("the answer's term is implausibly large"));
    assert_eq!(append_answer(&AppendEntriesResponse::Success), Ok(()));
    assert_eq!(append_answer(&AppendEntriesResponse::PartialSuccess(Some(id(3, 4)))), Ok(()));
    assert!(append_answer(&AppendEntriesResponse::HigherVote(leader(u64::MAX))).is_err());
    assert!(append_answer(&AppendEntriesResponse::PartialSuccess(Some(id(3, u64::MAX)))).is_err());
    assert_eq!(vote_answer(&VoteResponse::new(leader(4), Some(id(4, 8)), true)), Ok(()));
    assert!(vote_answer(&VoteResponse::new(leader(u64::MAX), None, false)).is_err());
    assert!(vote_answer(&VoteResponse::new(leader(4), Some(id(u64::MAX, 8)), false)).is_err());
}
