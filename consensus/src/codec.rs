//! The one place where values become bytes and bytes become values.
//!
//! Every value stored in sled or sent between nodes is `[format version][bincode 2
//! (standard config) of the value]`. Decoding is always bounded: a length prefix that
//! claims more than the limit is refused before anything is allocated, a value nested
//! deeper than [`MAX_DEPTH`] levels is refused before the deeper level is entered (see
//! `depth`), trailing bytes are refused, and an unknown format version is refused. A
//! decode error is a value to log and answer with, never a panic.
//!
//! bincode has no schema evolution: when a stored or sent struct changes, the new shape
//! gets a new format version and the decoder keeps a branch for the old one.

pub mod bytes;
mod depth;

use std::marker::PhantomData;

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use bincode::error::DecodeError;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer};
use serde::Serialize;

pub use self::depth::MAX_DEPTH;
use self::depth::{Depth, TOO_DEEP};

/// The current format version, the first byte of every encoded value.
pub const FORMAT_V1: u8 = 1;

/// The most a message between nodes may decode to (also the HTTP body limit).
pub const MESSAGE_LIMIT: usize = 8 * 1024 * 1024;

/// The most a value read back from the node's own disk may decode to (snapshots of the
/// whole state are the largest; builds doubled the most a state may hold).
pub const STORED_LIMIT: usize = 2 * 1024 * 1024 * 1024;

type Bounded<const N: usize> = Configuration<LittleEndian, Varint, Limit<N>>;

fn bounded<const N: usize>() -> Bounded<N> {
    config::standard().with_limit::<N>()
}

/// Errors from encoding or decoding.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("failed to encode value: {reason}")]
    Encode { reason: String },
    #[error("empty input")]
    Empty,
    #[error("unsupported format version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("failed to decode value: {reason}")]
    Decode { reason: String },
    #[error("{trailing} trailing bytes after the value")]
    TrailingBytes { trailing: usize },
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("value nested deeper than {limit} levels")]
    TooDeep { limit: usize },
}

/// Encodes `value` behind the current format version.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut bytes, config::standard())
        .map_err(|e| CodecError::Encode { reason: e.to_string() })?;
    Ok(bytes)
}

/// Decodes a message received from another node (at most [`MESSAGE_LIMIT`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_bounded::<T, MESSAGE_LIMIT>(bytes)
}

/// Decodes a value the node stored itself (at most [`STORED_LIMIT`]).
pub fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_bounded::<T, STORED_LIMIT>(bytes)
}

fn decode_bounded<T: DeserializeOwned, const N: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if body.len() > N {
        return Err(CodecError::TooLarge { len: body.len(), limit: N });
    }
    match version {
        FORMAT_V1 => {
            let seed = DepthLimited::<T>(PhantomData);
            let (value, used) = bincode::serde::seed_decode_from_slice(seed, body, bounded::<N>())
                .map_err(|error| match error {
                    DecodeError::OtherString(reason) if reason == TOO_DEEP => {
                        CodecError::TooDeep { limit: MAX_DEPTH }
                    }
                    error => CodecError::Decode { reason: error.to_string() },
                })?;
            if used != body.len() {
                return Err(CodecError::TrailingBytes { trailing: body.len() - used });
            }
            Ok(value)
        }
        version => Err(CodecError::UnsupportedVersion { version }),
    }
}

/// Deserializes a `T` through [`Depth`], so that it nests at most [`MAX_DEPTH`] levels.
struct DepthLimited<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for DepthLimited<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(Depth::new(deserializer))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::command::{Command, Observe, ObservedCommit, Outcome, Reply, Verdict};
    use crate::testing::commit_for_test as commit;
    use crate::types::{JobId, RepoId, Timestamp};

    fn sample_commands() -> Vec<Command> {
        vec![
            Command::AddRepo { url: "file:///srv/app.git".into(), at: Timestamp(1) },
            Command::Observe(Observe {
                repo: RepoId(1),
                branch: "main".into(),
                expected_head: None,
                new_head: commit(2),
                commits: vec![ObservedCommit { commit: commit(2), labels: vec!["linux".into()] }],
                skipped: vec![commit(1)],
                at: Timestamp(2),
            }),
            Command::Finish {
                job: JobId(1),
                attempt: 1,
                outcome: Outcome {
                    verdict: Verdict::Failed,
                    exit_code: Some(1),
                    duration_ms: 1234,
                    output_tail: "FAILED (failures=1)\n".into(),
                    summary: None,
                    message: None,
                },
                at: Timestamp(3),
            },
            Command::SetSecret {
                name: "DEPLOY_KEY".into(),
                sealed: crate::auth::Sealed { nonce: [3; 24], ciphertext: vec![4; 40] },
                at: Timestamp(4),
            },
            Command::RemoveSecret { name: "DEPLOY_KEY".into(), at: Timestamp(5) },
            Command::SetRestrictedSecret {
                name: "PYPI_TOKEN".into(),
                sealed: crate::auth::Sealed { nonce: [5; 24], ciphertext: vec![6; 40] },
                branches: vec!["main".into(), "release/*".into()],
                at: Timestamp(6),
            },
        ]
    }

    #[test]
    fn values_round_trip_behind_a_version_byte() {
        for command in sample_commands() {
            let bytes = encode(&command).expect("commands encode");
            assert_eq!(bytes[0], FORMAT_V1);
            let back: Command = decode(&bytes).expect("own encoding decodes");
            assert_eq!(back, command);
        }
    }

    #[test]
    fn unknown_versions_empty_input_and_trailing_bytes_are_refused() {
        let mut bytes = encode(&sample_commands()[0]).expect("commands encode");
        assert!(matches!(decode::<Command>(&[]), Err(CodecError::Empty)));
        bytes.push(0);
        assert!(matches!(
            decode::<Command>(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        ));
        bytes.pop();
        bytes[0] = 9;
        assert!(matches!(
            decode::<Command>(&bytes),
            Err(CodecError::UnsupportedVersion { version: 9 })
        ));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // Version byte, then a varint length of 2^60 for a string: without a limit
        // bincode would try to allocate it and abort the process.
        let mut bytes = vec![FORMAT_V1, 0xfd];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode::<String>(&bytes).is_err());
        assert!(decode_stored::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = "x".repeat(MESSAGE_LIMIT + 1);
        let bytes = encode(&big).expect("strings encode");
        assert!(matches!(decode::<String>(&bytes), Err(CodecError::TooLarge { .. })));
        assert_eq!(decode_stored::<String>(&bytes).expect("within the stored limit"), big);
    }

    /// The codec bytes of a `Command::Batch` nested `levels` deep (variant 9, length 1
    /// per level), innermost an empty batch.
    fn nested_batch(levels: usize) -> Vec<u8> {
        let mut bytes = vec![FORMAT_V1];
        for _ in 0..levels {
            bytes.extend_from_slice(&[9, 1]);
        }
        bytes.extend_from_slice(&[9, 0]);
        bytes
    }

    fn refused_as_nested(result: Result<impl std::fmt::Debug, CodecError>) {
        match result {
            Err(CodecError::Decode { reason }) => {
                assert!(reason.contains("a batch inside a batch"), "{reason}")
            }
            other => panic!("not refused as a nested batch: {other:?}"),
        }
    }

    #[test]
    fn batches_keep_their_encoding() {
        let batch = Command::Batch(vec![
            Command::RemoveRepo { repo: RepoId(3), at: Timestamp(4) },
            Command::RemoveRepo { repo: RepoId(5), at: Timestamp(6) },
        ]);
        let bytes = [FORMAT_V1, 9, 2, 1, 3, 4, 1, 5, 6];
        assert_eq!(encode(&batch).expect("encode"), bytes);
        assert_eq!(decode::<Command>(&bytes).expect("decode"), batch);
        let replies = Reply::Batch(vec![Reply::LimitsSet, Reply::None]);
        let bytes = encode(&replies).expect("encode");
        assert_eq!(decode::<Reply>(&bytes).expect("decode"), replies);
        assert_eq!(nested_batch(0), encode(&Command::Batch(Vec::new())).expect("encode"));
    }

    #[test]
    fn a_batch_inside_a_batch_is_refused_on_the_wire_and_from_disk() {
        let nested = Command::Batch(vec![Command::Batch(Vec::new())]);
        let bytes = encode(&nested).expect("encoding is not where it is refused");
        assert_eq!(bytes, nested_batch(1));
        refused_as_nested(decode::<Command>(&bytes));
        refused_as_nested(decode_stored::<Command>(&bytes));
        let replies = Reply::Batch(vec![Reply::LimitsSet, Reply::Batch(Vec::new())]);
        refused_as_nested(decode::<Reply>(&encode(&replies).expect("encode")));
        // Inside a log entry and an append-entries request, as read back or received.
        let entry = crate::types::Entry {
            log_id: Default::default(),
            payload: crate::types::EntryPayload::Normal(nested.clone()),
        };
        let entry_bytes = encode(&entry).expect("encode");
        refused_as_nested(decode_stored::<crate::types::Entry>(&entry_bytes));
        let request = crate::types::AppendEntriesRequest {
            vote: Default::default(),
            prev_log_id: None,
            entries: vec![entry],
            leader_commit: None,
        };
        refused_as_nested(decode::<crate::types::AppendEntriesRequest>(
            &encode(&request).expect("encode"),
        ));
        // The refusal leaves nothing behind: the next batch on this thread decodes.
        let flat = Command::Batch(vec![Command::Batch(Vec::new())].split_off(1));
        assert_eq!(decode::<Command>(&encode(&flat).expect("encode")).expect("decode"), flat);
        let truncated = &nested_batch(0)[..2];
        assert!(decode::<Command>(truncated).is_err());
        assert!(decode::<Command>(&nested_batch(0)).is_ok());
    }

    #[test]
    fn a_batch_nested_a_million_levels_is_refused_on_a_small_stack() {
        let bytes = nested_batch(1_000_000);
        assert!(bytes.len() < MESSAGE_LIMIT);
        let refused = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                decode::<Command>(&bytes).is_err() && decode_stored::<Command>(&bytes).is_err()
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert!(refused);
    }

    /// An error with a chain of `depth` causes.
    #[derive(Debug)]
    struct Cause(usize, Option<Box<Cause>>);

    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cause {}", self.0)
        }
    }

    impl std::error::Error for Cause {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|cause| cause as &(dyn std::error::Error + 'static))
        }
    }

    fn storage_failure(depth: usize) -> Vec<u8> {
        let cause = (0..depth).fold(None, |inner, n| Some(Box::new(Cause(n, inner))));
        let cause = cause.expect("at least one cause");
        let source = openraft::StorageIOError::new(
            openraft::ErrorSubject::Store,
            openraft::ErrorVerb::Read,
            openraft::AnyError::new(&*cause),
        );
        let error: crate::types::RaftError = openraft::error::RaftError::Fatal(
            openraft::error::Fatal::StorageError(openraft::StorageError::IO { source }),
        );
        let answer: Result<crate::types::VoteResponse, crate::types::RaftError> = Err(error);
        encode(&answer).expect("encode")
    }

    #[test]
    fn error_chains_in_answers_are_bounded_too() {
        // A Raft error a peer answers with carries `AnyError` causes, each an
        // `Option<Box<AnyError>>`: real chains are short, a forged one is refused.
        type Answer = Result<crate::types::VoteResponse, crate::types::RaftError>;
        assert!(matches!(decode::<Answer>(&storage_failure(5)), Ok(Err(_))));
        assert!(matches!(decode::<Answer>(&storage_failure(200)), Err(CodecError::TooDeep { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Command>(&bytes);
            let _ = decode::<crate::types::Entry>(&bytes);
            let _ = decode::<crate::types::AppendEntriesRequest>(&bytes);
        }

        #[test]
        fn truncated_encodings_are_errors(cut in 0usize..1000, which in 0usize..3) {
            let bytes = encode(&sample_commands()[which]).expect("commands encode");
            let cut = cut % bytes.len();
            prop_assert!(decode::<Command>(&bytes[..cut]).is_err());
        }

        #[test]
        fn flipped_bytes_never_panic(index in 0usize..1000, value in any::<u8>()) {
            let mut bytes = encode(&sample_commands()[1]).expect("commands encode");
            let index = index % bytes.len();
            bytes[index] = value;
            let _ = decode::<Command>(&bytes);
        }
    }
}
