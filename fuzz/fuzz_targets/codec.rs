//! Every top-level type the codec decodes, from arbitrary bytes.
//!
//! The first input byte picks the type; the rest is what arrives on the wire or is read
//! back from sled. A decode must end in `Ok` or `Err`, never a panic or an abort (an
//! unbounded allocation aborts). A value that decodes must encode again, and that
//! encoding must decode to a value that encodes to the same bytes. A decoded `State`
//! (from a snapshot) is also queried and has a decoded command applied to it, as a
//! follower does after installing a snapshot. A decoded batch never holds a batch, and
//! nothing decoded nests deeper than the codec's depth limit (both would have recursed
//! once per level of the input, overflowing the stack on a deep one).

#![no_main]

use std::collections::BTreeSet;

use eventide_consensus::codec::{self, CodecError};
use eventide_consensus::network::WriteError;
use eventide_consensus::types::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, EntryPayload, InstallSnapshotError,
    InstallSnapshotRequest, InstallSnapshotResponse, LogId, RaftError, SnapshotMeta,
    StoredMembership, Vote, VoteRequest, VoteResponse,
};
use eventide_consensus::{Command, JobFilter, NodeId, Reply, State};
use eventide_node::protocol::admit::{AdmitRequest, AdmitResponse};
use eventide_node::protocol::dispatch::{
    ClaimRequest, ClaimResponse, FinishAndClaimRequest, FinishAndClaimResponse, RenewRequest,
    RenewResponse,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decodes `bytes` as `T` the way both decoders do, and checks the round trip of
/// whatever decodes.
fn check<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let message: Result<T, CodecError> = codec::decode(bytes);
    let stored: Result<T, CodecError> = codec::decode_stored(bytes);
    // The message limit is the smaller one: what it accepts, the stored decoder accepts.
    assert!(message.is_err() || stored.is_ok(), "decode accepted what decode_stored refused");
    let value = stored.ok()?;
    let first = codec::encode(&value).expect("a decoded value encodes");
    let again: T = codec::decode_stored(&first).expect("an encoding decodes");
    let second = codec::encode(&again).expect("a decoded value encodes");
    assert_eq!(first, second, "encoding is not stable across a round trip");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 24 {
        0 => {
            if let Some(command) = check::<Command>(bytes) {
                assert_unnested(&command);
                // A command any proposer could have sent, applied to an empty state.
                let mut state = State::default();
                let _ = state.apply(&command);
            }
        }
        1 => drop(check::<Entry>(bytes)),
        2 => drop(check::<AppendEntriesRequest>(bytes)),
        3 => drop(check::<VoteRequest>(bytes)),
        4 => drop(check::<InstallSnapshotRequest>(bytes)),
        5 => {
            if let Some(state) = check::<State>(bytes) {
                exercise(state, None);
            }
        }
        6 => {
            // The layout of a snapshot's data (`store::snapshot::Payload`).
            if let Some((_, _, state)) = check::<(Option<LogId>, StoredMembership, State)>(bytes) {
                exercise(state, None);
            }
        }
        7 => drop(check::<SnapshotMeta>(bytes)),
        8 => drop(check::<Vote>(bytes)),
        9 => drop(check::<Option<LogId>>(bytes)),
        10 => drop(check::<Result<AppendEntriesResponse, RaftError>>(bytes)),
        11 => drop(check::<Result<VoteResponse, RaftError>>(bytes)),
        12 => {
            drop(check::<Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>>(bytes))
        }
        13 => {
            if let Some(Ok(Reply::Batch(replies))) = check::<Result<Reply, WriteError>>(bytes) {
                assert!(!replies.iter().any(|r| matches!(r, Reply::Batch(_))), "a nested reply");
            }
        }
        14 => drop(check::<ClaimRequest>(bytes)),
        15 => drop(check::<ClaimResponse>(bytes)),
        16 => drop(check::<RenewRequest>(bytes)),
        17 => drop(check::<RenewResponse>(bytes)),
        18 => drop(check::<AdmitRequest>(bytes)),
        19 => drop(check::<AdmitResponse>(bytes)),
        20 => {
            if let Some(request) = check::<AppendEntriesRequest>(bytes) {
                for entry in &request.entries {
                    if let EntryPayload::Normal(command) = &entry.payload {
                        assert_unnested(command);
                    }
                }
            }
        }
        21 => drop(check::<FinishAndClaimRequest>(bytes)),
        22 => drop(check::<FinishAndClaimResponse>(bytes)),
        _ => {
            // A snapshot state and a command behind it, split by a length byte.
            let Some((&split, rest)) = bytes.split_first() else { return };
            let split = usize::from(split).min(rest.len());
            let (state, command) = rest.split_at(split);
            if let Some(state) = check::<State>(state) {
                exercise(state, check::<Command>(command));
            }
        }
    }
});

/// A decoded batch holds no batch.
fn assert_unnested(command: &Command) {
    if let Command::Batch(commands) = command {
        assert!(!commands.iter().any(|c| matches!(c, Command::Batch(_))), "a nested batch");
    }
}

/// Reads a decoded state through every query a node serves, then applies `command`.
fn exercise(mut state: State, command: Option<Command>) {
    let _ = state.queue_counts();
    let _ = state.running_jobs();
    let _ = state.jobs(&JobFilter::default());
    let _ = state.next_claimable(&BTreeSet::new());
    let _ = state.running_on(NodeId(1));
    let _ = state.limits().problem();
    let repos: Vec<_> = state.repos().map(|repo| repo.id).collect();
    for repo in repos {
        let _ = state.cursors(repo).count();
    }
    if let Some(command) = command {
        let _ = state.apply(&command);
        let _ = state.queue_counts();
    }
}
