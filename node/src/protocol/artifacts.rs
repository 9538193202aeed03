//! Copying artifacts between nodes: a producing runner puts each file on another node,
//! and a runner (or an API server) reads it from a node that holds it, in chunks small
//! enough for one signed message each. The content is named by its SHA-256, so the side
//! that assembles a file checks it whole before keeping it.

use serde::{Deserialize, Serialize};

pub const PUT_PATH: &str = "/internal/artifacts/put";
pub const READ_PATH: &str = "/internal/artifacts/read";

/// The most bytes one chunk carries (well under the codec's message limit).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// A piece of an artifact for the receiver to store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutChunk {
    /// Lowercase hex of the whole content's SHA-256.
    pub sha256: String,
    /// The whole content's size.
    pub size: u64,
    /// Where this chunk starts; chunks come in order, from 0.
    pub offset: u64,
    #[serde(with = "eventide_consensus::codec::bytes")]
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutResponse {
    /// Take the next chunk from here.
    Continue { offset: u64 },
    /// The receiver holds the whole artifact, checked.
    Stored,
    /// The receiver will not store it (disk full, size over its limit, wrong content).
    Refused { reason: String },
}

/// Asks for up to [`CHUNK_BYTES`] of an artifact from `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub sha256: String,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResponse {
    /// The bytes from the offset asked (empty past the end) and the whole size.
    Data {
        size: u64,
        #[serde(with = "eventide_consensus::codec::bytes")]
        data: Vec<u8>,
    },
    /// This node holds no such artifact.
    Missing,
}

/// Whether `text` can name an artifact's content: 64 lowercase hex digits (so it is also
/// a safe file name).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
