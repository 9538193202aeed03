//! What a correct Raft peer can send: pure checks of decoded Raft requests (and of the
//! votes in answers), so that the server refuses, with 400, what openraft does not
//! expect from a peer and would trip on.
//!
//! openraft trusts its peers: a term of `u64::MAX` makes it compute `term + 1` (a panic
//! in a debug build, a wrap to 0 in release), entries that do not follow `prev_log_id`
//! trip its debug assertions, and a snapshot chunk is written wherever its offset says,
//! so a chunk at 2^40 makes the node allocate a terabyte. Every rule here is one that
//! Raft itself guarantees for the messages of a correct peer:
//!
//! - terms and log indexes grow by one per election or entry, so they stay far below
//!   [`MAX_TERM`] and [`MAX_LOG_INDEX`] (half of `u64::MAX`: one election per
//!   microsecond would take 290,000 years to get there, and `+ 1` never overflows);
//! - a log id was written by a leader whose term is at most the sender's;
//! - the entries of an append follow `prev_log_id` one index at a time, and their terms
//!   never go backwards;
//! - a snapshot is at most [`MAX_SNAPSHOT_BYTES`] (what the store can decode), and its
//!   chunks come in order: one never starts past the end of what this node has been
//!   sent of that snapshot ([`SnapshotReceived`]), so what a node writes is bounded by
//!   what it was actually sent.

use crate::codec::STORED_LIMIT;
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, LogId, NodeId, Vote,
    VoteRequest, VoteResponse,
};

/// The largest term a peer may name (see the module doc).
pub const MAX_TERM: u64 = u64::MAX / 2;
/// The largest log index a peer may name (see the module doc).
pub const MAX_LOG_INDEX: u64 = u64::MAX / 2;
/// The largest snapshot a node accepts: a version byte and at most the codec's stored
/// limit, since a larger one could not be decoded once received.
pub const MAX_SNAPSHOT_BYTES: u64 = STORED_LIMIT as u64 + 1;
/// The longest snapshot id accepted (the store's ids are a few dozen bytes).
pub const MAX_SNAPSHOT_ID_BYTES: usize = 1024;

/// Why a request is implausible, for the log line and the 400 answer.
pub(super) type Problem = &'static str;

/// Who sends a Raft request: a leader (append, snapshot) or a candidate (vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sender {
    Leader,
    Candidate,
}

/// The checks of the vote every request carries, received by node `me`:
/// - a term of at most [`MAX_TERM`];
/// - not naming this very node: Raft never sends one over the network (a node votes for
///   itself and leads itself in process); a leader handed its own vote in an append
///   takes the follower's path while it leads, which trips openraft's assertions;
/// - committed, from a leader: a leader's vote is committed by definition.
pub(super) fn vote(me: NodeId, vote: &Vote, sender: Sender) -> Result<(), Problem> {
    if vote.leader_id().term > MAX_TERM {
        Err("the term is implausibly large")
    } else if vote.leader_id().voted_for() == Some(me) {
        Err("the vote names the receiving node")
    } else if sender == Sender::Leader && !vote.is_committed() {
        Err("a leader's vote must be committed")
    } else {
        Ok(())
    }
}

/// A log id the sender holding `vote` may name.
fn log_id(vote: &Vote, log_id: &LogId) -> Result<(), Problem> {
    if log_id.index > MAX_LOG_INDEX {
        Err("a log index is implausibly large")
    } else if log_id.leader_id.term > vote.leader_id().term {
        Err("a log id's term is later than the sender's term")
    } else {
        Ok(())
    }
}

fn maybe_log_id(vote: &Vote, id: Option<&LogId>) -> Result<(), Problem> {
    id.map_or(Ok(()), |id| log_id(vote, id))
}

pub(super) fn vote_request(me: NodeId, request: &VoteRequest) -> Result<(), Problem> {
    self::vote(me, &request.vote, Sender::Candidate)?;
    maybe_log_id(&request.vote, request.last_log_id.as_ref())
}

pub(super) fn append_request(me: NodeId, request: &AppendEntriesRequest) -> Result<(), Problem> {
    let vote = &request.vote;
    self::vote(me, vote, Sender::Leader)?;
    maybe_log_id(vote, request.prev_log_id.as_ref())?;
    maybe_log_id(vote, request.leader_commit.as_ref())?;
    // Indexes are at most MAX_LOG_INDEX, so `+ 1` cannot overflow.
    let mut next_index = request.prev_log_id.map_or(0, |id| id.index + 1);
    let mut last_term = request.prev_log_id.map_or(0, |id| id.leader_id.term);
    for entry in &request.entries {
        log_id(vote, &entry.log_id)?;
        if entry.log_id.index != next_index {
            return Err("the entries do not follow prev_log_id one index at a time");
        }
        if entry.log_id.leader_id.term < last_term {
            return Err("the terms of the entries go backwards");
        }
        next_index = entry.log_id.index + 1;
        last_term = entry.log_id.leader_id.term;
    }
    Ok(())
}

/// The checks of a snapshot chunk that need no memory of earlier chunks.
pub(super) fn snapshot_request(
    me: NodeId,
    request: &InstallSnapshotRequest,
) -> Result<(), Problem> {
    let vote = &request.vote;
    self::vote(me, vote, Sender::Leader)?;
    let meta = &request.meta;
    maybe_log_id(vote, meta.last_log_id.as_ref())?;
    let membership = meta.last_membership.log_id().as_ref();
    maybe_log_id(vote, membership)?;
    if membership.map(|id| id.index) > meta.last_log_id.map(|id| id.index) {
        return Err("the snapshot's membership is later than its last log id");
    }
    if meta.snapshot_id.len() > MAX_SNAPSHOT_ID_BYTES {
        return Err("the snapshot id is implausibly long");
    }
    let end = u64::try_from(request.data.len())
        .ok()
        .and_then(|len| request.offset.checked_add(len))
        .filter(|&end| end <= MAX_SNAPSHOT_BYTES);
    if end.is_none() {
        return Err("the snapshot chunk ends past the largest snapshot accepted");
    }
    Ok(())
}

/// The vote in a peer's answer: its term must be plausible too, or openraft would adopt
/// it and overflow on its next election.
pub(super) fn answered_vote(vote: &Vote) -> Result<(), Problem> {
    if vote.leader_id().term > MAX_TERM {
        Err("the answer's term is implausibly large")
    } else {
        Ok(())
    }
}

/// The vote and last log id in a peer's answer to a vote request.
pub(super) fn vote_answer(answer: &VoteResponse) -> Result<(), Problem> {
    answered_vote(&answer.vote)?;
    match answer.last_log_id {
        Some(id) if id.index > MAX_LOG_INDEX || id.leader_id.term > MAX_TERM => {
            Err("the answer's log id is implausibly large")
        }
        _ => Ok(()),
    }
}

/// The vote and log id in a peer's answer to an append.
pub(super) fn append_answer(answer: &AppendEntriesResponse) -> Result<(), Problem> {
    match answer {
        AppendEntriesResponse::HigherVote(vote) => answered_vote(vote),
        AppendEntriesResponse::PartialSuccess(Some(id))
            if id.index > MAX_LOG_INDEX || id.leader_id.term > MAX_TERM =>
        {
            Err("the answer's log id is implausibly large")
        }
        _ => Ok(()),
    }
}

/// Where a snapshot chunk lies, kept while openraft takes the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    id: String,
    offset: u64,
    end: u64,
}

impl Chunk {
    /// The chunk of a request that passed [`snapshot_request`] (so its end fits a u64).
    pub(super) fn of(request: &InstallSnapshotRequest) -> Chunk {
        let len = u64::try_from(request.data.len()).unwrap_or(u64::MAX);
        Chunk {
            id: request.meta.snapshot_id.clone(),
            offset: request.offset,
            end: request.offset.saturating_add(len),
        }
    }
}

/// How much of the snapshot being streamed to this node it has been sent, mirroring
/// openraft's own stream: a chunk openraft takes at offset 0 starts a stream, and one it
/// takes at a later offset extends it. A chunk of that snapshot may start anywhere up to
/// the end received so far (a leader resends a chunk it got no answer for), never past
/// it. A chunk of another snapshot at a later offset is left to openraft, which answers
/// that it is not its current stream without writing anything (and the leader starts
/// over at offset 0).
#[derive(Debug, Default)]
pub(super) struct SnapshotReceived {
    current: Option<(String, u64)>,
}

impl SnapshotReceived {
    pub(super) fn check(&self, chunk: &Chunk) -> Result<(), Problem> {
        match &self.current {
            Some((id, end)) if chunk.offset > *end && *id == chunk.id => {
                Err("the snapshot chunk starts past the end of what was sent")
            }
            _ => Ok(()),
        }
    }

    /// Remembers a chunk openraft took (wrote into its stream).
    pub(super) fn record(&mut self, chunk: Chunk) {
        match &mut self.current {
            _ if chunk.offset == 0 => self.current = Some((chunk.id, chunk.end)),
            Some((id, end)) if *id == chunk.id => *end = (*end).max(chunk.end),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "plausible_test.rs"]
mod tests;
