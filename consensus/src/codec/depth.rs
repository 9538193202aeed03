//! A serde adapter that bounds how deeply a decoded value nests.
//!
//! serde's derived `Deserialize` recurses once per level of nesting, and bincode counts
//! nothing but bytes: two bytes per level are enough to nest a recursive type (an
//! `Option<Box<Self>>`, a `Vec<Self>`) a million levels deep in a 2 MB body, and the
//! decoding thread overflows its stack, which aborts the process. Every decode therefore
//! goes through [`Depth`], which counts the compound values (sequences, maps, structs,
//! enums, options, newtypes) on the path from the root to the value being decoded and
//! refuses the input once that path would be longer than [`MAX_DEPTH`], before the
//! deeper level is entered.
//!
//! `Depth` wraps each piece of the serde protocol in turn (the deserializer, the visitor
//! it is handed, the sequence, map and enum accesses the visitor is given, and the seeds
//! those accesses deserialize), carrying the remaining depth down; scalars pass through.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The most compound values on the path from a decoded value's root to any of its parts.
///
/// The deepest value a node sends or stores legitimately nests about 12 levels (a
/// `Finish` inside a batch inside an append-entries request: request, entries, entry,
/// payload, command, batch, command, variant, outcome, summary, names); a Raft error
/// carries a chain of causes two levels per cause. 32 leaves room for both and keeps
/// the stack a decode can use small (a few hundred KiB in a debug build).
pub const MAX_DEPTH: usize = 32;

/// The message of the error that refuses a value nested deeper than [`MAX_DEPTH`].
pub(super) const TOO_DEEP: &str = "value nested deeper than the limit";

/// Carries the depth left to `inner`, one of the pieces of the serde protocol.
pub(super) struct Depth<T> {
    inner: T,
    remaining: usize,
}

impl<T> Depth<T> {
    pub(super) fn new(inner: T) -> Depth<T> {
        Depth { inner, remaining: MAX_DEPTH }
    }

    fn wrap<U>(&self, inner: U) -> Depth<U> {
        Depth { inner, remaining: self.remaining }
    }

    /// The depth left inside a compound value entered at this level.
    fn deeper<E: de::Error>(&self) -> Result<usize, E> {
        self.remaining.checked_sub(1).ok_or_else(|| E::custom(TOO_DEEP))
    }
}

/// Forwards `deserialize_*` methods, wrapping the visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                let visitor = self.wrap(visitor);
                self.inner.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Depth<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(), deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Forwards `visit_*` methods of scalars unchanged.
macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
                self.inner.$method(value)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Depth<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.expecting(formatter)
    }

    forward_visit! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
        visit_str(&str), visit_borrowed_str(&'de str), visit_string(String),
        visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>),
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let remaining = self.deeper()?;
        self.inner.visit_some(Depth { inner: deserializer, remaining })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let remaining = self.deeper()?;
        self.inner.visit_newtype_struct(Depth { inner: deserializer, remaining })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let remaining = self.deeper()?;
        self.inner.visit_seq(Depth { inner: seq, remaining })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let remaining = self.deeper()?;
        self.inner.visit_map(Depth { inner: map, remaining })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let remaining = self.deeper()?;
        self.inner.visit_enum(Depth { inner: data, remaining })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Depth<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let deserializer = self.wrap(deserializer);
        self.inner.deserialize(deserializer)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Depth<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Depth<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Depth<A> {
    type Error = A::Error;
    type Variant = Depth<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let remaining = self.remaining;
        let (value, variant) = self.inner.variant_seed(Depth { inner: seed, remaining })?;
        Ok((value, Depth { inner: variant, remaining }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Depth<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::codec::{self, CodecError, MAX_DEPTH};

    /// A recursive value: each link is two levels (the struct and the `Some`), the last
    /// one level.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Link {
        next: Option<Box<Link>>,
    }

    /// The codec bytes of `links` links: a `Some` tag per link but the last.
    fn chain(links: usize) -> Vec<u8> {
        let mut bytes = vec![codec::FORMAT_V1];
        bytes.resize(links, 1);
        bytes.push(0);
        bytes
    }

    #[test]
    fn values_up_to_the_limit_decode_and_deeper_ones_are_refused() {
        assert_eq!(MAX_DEPTH, 32);
        // Some + 16 links = 1 + 31 levels: exactly the limit.
        let mut at_limit = vec![codec::FORMAT_V1, 1];
        at_limit.extend_from_slice(&chain(16)[1..]);
        let decoded: Option<Link> = codec::decode(&at_limit).expect("32 levels decode");
        assert!(decoded.is_some());
        assert_eq!(codec::encode(&decoded).expect("encode"), at_limit);
        let mut past_limit = vec![codec::FORMAT_V1, 1];
        past_limit.extend_from_slice(&chain(17)[1..]);
        assert!(matches!(
            codec::decode::<Option<Link>>(&past_limit),
            Err(CodecError::TooDeep { limit: MAX_DEPTH })
        ));
        assert!(matches!(
            codec::decode_stored::<Option<Link>>(&past_limit),
            Err(CodecError::TooDeep { .. })
        ));
    }

    #[test]
    fn a_million_levels_are_refused_on_a_small_stack() {
        // 1 MB of `Some` tags: without the bound, decoding recursed once per level and
        // overflowed any stack. With it, 64 KiB of stack is plenty.
        let bytes = chain(1_000_000);
        let decoded = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || matches!(codec::decode::<Link>(&bytes), Err(CodecError::TooDeep { .. })))
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert!(decoded);
    }

    #[test]
    fn human_readability_is_the_formats() {
        // SocketAddr and similar types pick their encoding by it: bincode is binary.
        let addr: std::net::SocketAddr = "10.1.2.3:7800".parse().expect("addr");
        let bytes = codec::encode(&addr).expect("encode");
        assert_eq!(bytes.len(), 1 + 1 + 4 + 3, "{bytes:?}");
        assert_eq!(codec::decode::<std::net::SocketAddr>(&bytes).expect("decode"), addr);
    }
}
