//! Codecs turn values into bytes for L2 and back. L1 holds values as they are.
//!
//! The default is [`Bincode`] (bincode 1.3, compact and fast). A user picks another format
//! by implementing [`Codec`] and passing it to
//! [`CacheBuilder::codec`](crate::CacheBuilder::codec). The trait is object-safe through
//! [`erased_serde`], so a `Cache` needs no type parameter for its codec; the dynamic dispatch
//! costs nanoseconds next to the Redis round trip every L2 access pays anyway.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer};
use serde::Serialize;

pub use erased_serde;

/// Why a codec could not encode or decode a value.
#[derive(Debug)]
pub enum CodecError {
    /// The value's encoding is larger than the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Any other failure: a type the format cannot represent, corrupt or foreign bytes.
    Other(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TooLarge { limit } => write!(f, "the value is larger than {limit} bytes"),
            CodecError::Other(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for CodecError {}

/// The deserializing half of a decode: called by the codec with a deserializer over the
/// bytes.
pub type Visit<'a> = dyn for<'de> FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error>
    + 'a;

/// A serialization format for values stored in L2.
///
/// ```
/// use cachemacro_runtime::codec::{erased_serde, Codec, CodecError, Visit};
///
/// /// JSON, for values a person can read in `redis-cli`.
/// struct Json;
///
/// impl Codec for Json {
///     fn name(&self) -> &'static str {
///         "json"
///     }
///
///     fn encode(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         # let _ = (value, out);
///         // serde_json::to_writer(out, value).map_err(|e| CodecError::Other(e.to_string()))
///         # Ok(())
///     }
///
///     fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError> {
///         # let _ = (bytes, visit);
///         // let mut de = serde_json::Deserializer::from_slice(bytes);
///         // visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(|e| CodecError::Other(e.to_string()))?;
///         // de.end().map_err(|e| CodecError::Other(e.to_string()))
///         # Ok(())
///     }
/// }
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The format's name. It is part of every stored value's type fingerprint, so values
    /// written with another codec read as misses, never as garbage.
    fn name(&self) -> &'static str;

    /// Appends the encoding of `value` to `out`.
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;

    /// Decodes `bytes` by handing `visit` a deserializer over them. Fails when `visit` fails
    /// or when bytes are left over.
    fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError>;
}

/// Encodes `value` with `codec`.
pub(crate) fn encode<T: Serialize>(
    codec: &dyn Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    codec.encode(&value as &dyn erased_serde::Serialize, out)
}

/// Decodes a `T` from `bytes` with `codec`.
pub(crate) fn decode<T: DeserializeOwned>(
    codec: &dyn Codec,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let mut out = None;
    codec.decode(bytes, &mut |de| {
        out = Some(erased_serde::deserialize::<T>(de)?);
        Ok(())
    })?;
    out.ok_or_else(|| CodecError::Other("the codec did not decode a value".into()))
}

/// bincode 1.3 with variable-length integers, trailing bytes rejected, and a size limit
/// that also bounds what corrupt bytes can make the decoder allocate.
#[derive(Clone, Copy, Debug)]
pub struct Bincode {
    limit: u64,
}

impl Bincode {
    /// A codec that refuses values larger than `limit` bytes, encoding or decoding.
    pub fn with_limit(limit: u64) -> Self {
        Self { limit }
    }

    fn options(&self) -> impl bincode::Options {
        use bincode::Options;
        bincode::DefaultOptions::new().with_limit(self.limit)
    }
}

impl Default for Bincode {
    /// A limit of 8 MiB.
    fn default() -> Self {
        Self::with_limit(8 << 20)
    }
}

fn bincode_error(limit: u64, err: &bincode::ErrorKind) -> CodecError {
    match err {
        bincode::ErrorKind::SizeLimit => CodecError::TooLarge { limit },
        other => CodecError::Other(other.to_string()),
    }
}

/// Runs an erased visitor inside bincode's own `deserialize_seed`, which checks trailing
/// bytes and reads straight from the slice.
struct Seed<'v, 'a>(&'v mut Visit<'a>);

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(deserializer);
        (self.0)(&mut erased).map_err(serde::de::Error::custom)
    }
}

impl Codec for Bincode {
    fn name(&self) -> &'static str {
        "bincode1"
    }

    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        use bincode::Options;
        self.options()
            .serialize_into(out, value)
            .map_err(|e| bincode_error(self.limit, &e))
    }

    fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError> {
        use bincode::Options;
        self.options()
            .deserialize_seed(Seed(visit), bytes)
            .map_err(|e| bincode_error(self.limit, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
    }

    #[test]
    fn round_trips() {
        let codec = Bincode::default();
        let mut bytes = Vec::new();
        let user = User {
            id: 7,
            name: "Ada".into(),
        };
        encode(&codec, &user, &mut bytes).unwrap();
        assert_eq!(decode::<User>(&codec, &bytes).unwrap(), user);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_errors() {
        let codec = Bincode::default();
        let mut bytes = Vec::new();
        encode(&codec, &(1u8, 2u8), &mut bytes).unwrap();
        assert!(decode::<u8>(&codec, &bytes).is_err(), "trailing byte");
        assert!(decode::<(u8, u8, u8)>(&codec, &bytes).is_err(), "truncated");
    }

    #[test]
    fn a_huge_length_prefix_is_refused_not_allocated() {
        let codec = Bincode::with_limit(1024);
        // A varint length of 2^62 for a Vec<u8>.
        let bytes = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40];
        assert!(decode::<Vec<u8>>(&codec, &bytes).is_err());
        let mut out = Vec::new();
        assert!(matches!(
            encode(&codec, &vec![0u8; 2048], &mut out),
            Err(CodecError::TooLarge { limit: 1024 })
        ));
    }
}
