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
//!   what it was actually sent;
//! - a snapshot is one the store can install: the whole snapshot a final chunk completes
//!   decodes and agrees with its meta ([`check_snapshot`](crate::store::check_snapshot)),
//!   since openraft stops Raft on the node for good when the store fails to install it.

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

/// The snapshot streamed to this node, byte for byte as openraft's own stream holds it,
/// so that the snapshot a final chunk completes can be checked before openraft installs
/// it.
///
/// Why a copy: openraft 0.9 writes each chunk it takes into the `Cursor<Vec<u8>>` that
/// `begin_receiving_snapshot` returned and, on the final chunk, hands it to the store's
/// `install_snapshot`; the route never sees those bytes, and any error of
/// `install_snapshot` is fatal to Raft on the node. A store that declined to install
/// without an error would leave openraft believing a state the store does not hold, so
/// the check must come before openraft is handed the final chunk, on bytes the route
/// holds itself. The copy costs as much memory as the snapshot, at most
/// [`MAX_SNAPSHOT_BYTES`], only while one is being streamed.
///
/// The copy follows openraft's stream (`Chunked::receive_snapshot`): a chunk openraft
/// takes (its vote is at least the node's) of the snapshot being streamed is written at
/// its offset; one of another snapshot at offset 0 starts a new stream, at a later offset
/// it is refused by openraft and writes nothing; a final chunk ends the stream. A chunk
/// is written here before openraft is handed it ([`SnapshotReceived::write`]), and its
/// write undone if openraft did not take it ([`SnapshotReceived::settle`]).
///
/// A chunk of the snapshot being streamed may start anywhere up to the end received so
/// far (a leader resends a chunk it got no answer for), never past it.
#[derive(Debug, Default)]
pub(super) struct SnapshotReceived {
    stream: Stream,
}

#[derive(Debug, Default)]
enum Stream {
    /// openraft is streaming no snapshot.
    #[default]
    None,
    Receiving {
        id: String,
        data: Vec<u8>,
    },
    /// A final chunk of `id` was refused by openraft's vote check, before or after
    /// openraft took it: its answer does not say which, so whether openraft still streams
    /// `id`, and what it holds of it, is unknown. Chunks of `id` are refused until another
    /// snapshot starts a stream (a leader sends a snapshot taken later under another id).
    Unknown {
        id: String,
    },
}

/// A chunk written by [`SnapshotReceived::write`], with what undoes it.
#[derive(Debug)]
pub(super) struct Written {
    done: bool,
    undo: Undo,
}

#[derive(Debug)]
enum Undo {
    /// openraft writes nothing of this chunk.
    NotWritten,
    /// The chunk started a stream; this was the stream before.
    Started(Stream),
    /// The chunk was written into the stream: its length before, and the bytes from
    /// `offset` it overwrote.
    Overwrote { len: usize, offset: usize, bytes: Vec<u8> },
}

impl SnapshotReceived {
    /// The checks of a chunk against what was received of its snapshot.
    pub(super) fn check(&self, request: &InstallSnapshotRequest) -> Result<(), Problem> {
        match &self.stream {
            Stream::Receiving { id, data }
                if *id == request.meta.snapshot_id
                    && request.offset > u64::try_from(data.len()).unwrap_or(u64::MAX) =>
            {
                Err("the snapshot chunk starts past the end of what was sent")
            }
            Stream::Unknown { id } if *id == request.meta.snapshot_id => {
                Err("the snapshot's stream was interrupted; it must start again under another id")
            }
            _ => Ok(()),
        }
    }

    /// Writes a chunk that passed [`snapshot_request`] and [`check`](Self::check) as
    /// openraft will if it takes it.
    pub(super) fn write(&mut self, request: &InstallSnapshotRequest) -> Written {
        let done = request.done;
        // Both checks bound the offset by what was received and by MAX_SNAPSHOT_BYTES.
        let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
        let end = offset.saturating_add(request.data.len());
        let undo = match &mut self.stream {
            Stream::Receiving { id, data } if *id == request.meta.snapshot_id => {
                let len = data.len();
                let bytes = data.get(offset..end.min(len)).map(<[u8]>::to_vec).unwrap_or_default();
                write_at(data, offset, &request.data);
                Undo::Overwrote { len, offset, bytes }
            }
            _ if request.offset != 0 => Undo::NotWritten,
            stream => {
                let id = request.meta.snapshot_id.clone();
                let data = request.data.clone();
                Undo::Started(std::mem::replace(stream, Stream::Receiving { id, data }))
            }
        };
        Written { done, undo }
    }

    /// The whole snapshot a final chunk just [written](Self::write) completes, as openraft
    /// would hand it to the store; `None` for a chunk that is not final, or that openraft
    /// writes nothing of.
    pub(super) fn assembled(&self, written: &Written) -> Option<&[u8]> {
        match (&self.stream, &written.undo) {
            (_, Undo::NotWritten) => None,
            (Stream::Receiving { data, .. }, _) if written.done => Some(data),
            _ => None,
        }
    }

    /// Takes back a written chunk that openraft was not handed, or did not take.
    pub(super) fn undo(&mut self, written: Written) {
        match written.undo {
            Undo::NotWritten => {}
            Undo::Started(before) => self.stream = before,
            Undo::Overwrote { len, offset, bytes } => {
                if let Stream::Receiving { data, .. } = &mut self.stream {
                    data.truncate(len);
                    if let Some(overwritten) = data.get_mut(offset..offset + bytes.len()) {
                        overwritten.copy_from_slice(&bytes);
                    }
                }
            }
        }
    }

    /// Settles a written chunk once openraft answered: `taken` is whether openraft's vote
    /// check let it through (for a final chunk it did not, see [`Stream::Unknown`]).
    pub(super) fn settle(&mut self, written: Written, taken: bool) {
        match (&written.undo, written.done, taken) {
            (Undo::NotWritten, _, _) | (_, false, true) => {}
            (_, true, true) => self.stream = Stream::None,
            (_, false, false) => self.undo(written),
            (_, true, false) => {
                if let Stream::Receiving { id, .. } = &mut self.stream {
                    self.stream = Stream::Unknown { id: std::mem::take(id) };
                }
            }
        }
    }
}

/// Writes `chunk` into `data` at `offset` as a `Cursor<Vec<u8>>` does: over what is
/// there, extending it, padding with zeros up to `offset`.
fn write_at(data: &mut Vec<u8>, offset: usize, chunk: &[u8]) {
    let end = offset.saturating_add(chunk.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset..end].copy_from_slice(chunk);
}

#[cfg(test)]
#[path = "plausible_test.rs"]
mod tests;
