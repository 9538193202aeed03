//! `#[serde(with = "eventide_consensus::codec::bytes")]` on a `Vec<u8>` field: the bytes
//! are written as one byte string and read back in one piece. bincode writes a byte
//! string exactly as it writes a sequence of `u8` (its length, then the bytes), so the
//! encoding does not change and nodes with and without it read each other; only the
//! work does: a sequence is read one element at a time, through every layer of the
//! decoder (the depth guard included), which made a 1 MiB chunk cost a million calls.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(data)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(Bytes)
}

struct Bytes;

impl<'de> Visitor<'de> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    /// Formats that have no byte strings give a sequence.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::codec::{self, CodecError};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsSequence {
        offset: u64,
        data: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsBytes {
        offset: u64,
        #[serde(with = "super")]
        data: Vec<u8>,
    }

    #[test]
    fn a_byte_string_is_encoded_as_the_sequence_was_and_each_reads_the_other() {
        let data: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let old = AsSequence { offset: 7, data: data.clone() };
        let new = AsBytes { offset: 7, data };
        let old_bytes = codec::encode(&old).expect("encode");
        assert_eq!(codec::encode(&new).expect("encode"), old_bytes);
        assert_eq!(codec::decode::<AsBytes>(&old_bytes).expect("decode"), new);
        let empty = AsBytes { offset: 0, data: Vec::new() };
        let empty_bytes = codec::encode(&empty).expect("encode");
        assert_eq!(codec::decode::<AsSequence>(&empty_bytes).expect("decode").data, b"");
        assert_eq!(codec::decode::<AsBytes>(&empty_bytes).expect("decode"), empty);
    }

    #[test]
    fn a_length_past_the_input_or_the_limit_is_refused_without_allocating_it() {
        let mut claimed =
            codec::encode(&AsBytes { offset: 1, data: vec![1, 2, 3] }).expect("encode");
        // [version][offset 1][length 3][1 2 3]: claim u64::MAX bytes instead of 3 (253
        // is bincode's marker of a varint in the next 8 bytes).
        claimed.truncate(2);
        claimed.push(253);
        claimed.extend(u64::MAX.to_le_bytes());
        claimed.extend([1, 2, 3]);
        assert!(matches!(codec::decode::<AsBytes>(&claimed), Err(CodecError::Decode { .. })));
        let past_the_end = {
            let mut bytes =
                codec::encode(&AsBytes { offset: 1, data: vec![9; 10] }).expect("encode");
            bytes.truncate(bytes.len() - 1);
            bytes
        };
        assert!(codec::decode::<AsBytes>(&past_the_end).is_err());
    }
}
