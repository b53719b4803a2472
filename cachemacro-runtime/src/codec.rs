//! Codecs turn values into bytes for L2 and back. L1 holds values as they are.
//!
//! The default is [`Bincode`] (bincode 1.3, compact and fast). [`Json`] is the other one
//! shipped: readable in `redis-cli`, and self-describing. A user picks one, or their own, by
//! implementing [`Codec`] and passing it to [`CacheBuilder::codec`](crate::CacheBuilder::codec).
//! The trait is object-safe through [`erased_serde`], so a `Cache` needs no type parameter
//! for its codec; the dynamic dispatch costs nanoseconds next to the Redis round trip every
//! L2 access pays anyway.
//!
//! # Types bincode cannot read back
//!
//! Bincode writes no field names or type tags, so a type whose serde attributes make the
//! written fields depend on the value (`#[serde(skip_serializing_if = ...)]`), or whose
//! reading needs to look at the data first (`#[serde(flatten)]`, `#[serde(untagged)]`,
//! `deserialize_any`), encodes fine and then never decodes. Such a type works anyway: before
//! a value is stored with a codec that is not self-describing, the cache reads it back; when
//! that fails, the type's values are stored as [`Json`] from then on (logged once per type),
//! and the envelope's fingerprint records which codec wrote each value, so every instance
//! reads both.

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
/// A codec over any serde format takes a few lines; this one writes JSON through
/// `serde_json` (the crate ships the same as [`Json`]):
///
/// ```
/// use cachemacro::codec::{erased_serde, Codec, CodecError, Visit};
///
/// /// JSON, for values a person can read in `redis-cli`.
/// struct MyJson;
///
/// impl Codec for MyJson {
///     fn name(&self) -> &'static str {
///         "my-json"
///     }
///
///     fn encode(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         serde_json::to_writer(out, value).map_err(|e| CodecError::Other(e.to_string()))
///     }
///
///     fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError> {
///         let mut de = serde_json::Deserializer::from_slice(bytes);
///         visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
///             .map_err(|e| CodecError::Other(e.to_string()))?;
///         de.end().map_err(|e| CodecError::Other(e.to_string()))
///     }
///
///     fn is_self_describing(&self) -> bool {
///         true
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// let cache = cachemacro::Cache::builder().codec(MyJson).build().await?;
/// # Ok(()) }
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The format's name. It is part of every stored value's type fingerprint, so values
    /// written with another codec read as misses, never as garbage (except values written
    /// as [`Json`], which every cache reads).
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

    /// The size of `value`'s encoding, ignoring any limit, when the codec can tell without
    /// encoding it (used to report the size of a value that is too large). Default: `None`.
    fn encoded_size(&self, value: &dyn erased_serde::Serialize) -> Option<u64> {
        let _ = value;
        None
    }

    /// Whether the format records field names and types, so that serde attributes such as
    /// `skip_serializing_if`, `flatten` and `untagged` read back. When it does not (the
    /// default, `false`), the cache checks that each value reads back before it stores it,
    /// and stores the types that do not as [`Json`].
    fn is_self_describing(&self) -> bool {
        false
    }
}

/// JSON (`serde_json`): readable in `redis-cli`, self-describing, about twice bincode's
/// size for a typical struct. The cache also falls back to it for the types the configured
/// codec cannot read back (see the [module documentation](self)). Maps need keys that JSON
/// can write as strings (strings, integers, `bool`, `char`, unit enums).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

fn json_error(err: serde_json::Error) -> CodecError {
    CodecError::Other(err.to_string())
}

impl Codec for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(json_error)
    }

    fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
            .map_err(|e| CodecError::Other(e.to_string()))?;
        de.end().map_err(json_error)
    }

    fn is_self_describing(&self) -> bool {
        true
    }
}

/// The codecs of one cache: the configured one, and [`Json`] for the types it cannot read
/// back.
pub(crate) struct Formats {
    primary: std::sync::Arc<dyn Codec>,
    /// The configured codec again when it is [`Bincode`], called directly: a value then
    /// goes through serde without [`erased_serde`]'s dynamic dispatch, which costs about
    /// three times bincode's own decode. Same options, same bytes, same errors.
    native: Option<Bincode>,
    fallback: Json,
    /// The types (by fingerprint under the configured codec) stored as JSON.
    fallback_types: std::sync::RwLock<std::collections::HashSet<u64>>,
}

impl Formats {
    /// The formats of a cache whose configured codec is `primary`; `native` is the same
    /// codec when it is [`Bincode`] (see [`native_bincode`]).
    pub(crate) fn new(primary: std::sync::Arc<dyn Codec>, native: Option<Bincode>) -> Self {
        Self {
            primary,
            native,
            fallback: Json,
            fallback_types: Default::default(),
        }
    }

    /// The configured codec.
    pub(crate) fn primary(&self) -> &dyn Codec {
        &*self.primary
    }

    /// The fingerprint values of `T` at `version` carry when written by the configured
    /// codec, and when written as JSON.
    pub(crate) fn fingerprints<T>(&self, version: u32) -> (u64, u64) {
        let name = std::any::type_name::<T>();
        let fingerprints = (
            crate::envelope::fingerprint(name, version, self.primary.name()),
            crate::envelope::fingerprint(name, version, self.fallback.name()),
        );
        crate::conflicts::remember_fingerprint::<T>(fingerprints.0, version);
        crate::conflicts::remember_fingerprint::<T>(fingerprints.1, version);
        fingerprints
    }

    /// Appends `value`'s encoding to `out` and returns the fingerprint to put in its
    /// envelope: with the configured codec when the value reads back, else as JSON.
    pub(crate) fn encode<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
        version: u32,
        out: &mut Vec<u8>,
    ) -> Result<u64, CodecError> {
        let (primary_fp, fallback_fp) = self.fingerprints::<T>(version);
        let known_fallback = self
            .fallback_types
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&primary_fp);
        if known_fallback {
            encode(&self.fallback, value, out)?;
            return Ok(fallback_fp);
        }
        let start = out.len();
        match self.encode_primary(value, out) {
            Ok(()) => {
                if self.primary.is_self_describing()
                    || self.decode_primary::<T>(&out[start..]).is_ok()
                {
                    return Ok(primary_fp);
                }
            }
            Err(err @ CodecError::TooLarge { .. }) => return Err(err),
            // A format without field names cannot write some shapes at all (a flattened
            // struct is a map of unknown length): JSON can.
            Err(CodecError::Other(_)) if !self.primary.is_self_describing() => {}
            Err(err) => return Err(err),
        }
        // It does not read back: this type goes to JSON from now on.
        out.truncate(start);
        encode(&self.fallback, value, out)?;
        let first = self
            .fallback_types
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(primary_fp);
        if first {
            tracing::warn!(
                target: "cachemacro",
                r#type = std::any::type_name::<T>(),
                codec = self.primary.name(),
                "cache: values of this type do not read back with the configured codec (serde attributes such as skip_serializing_if, flatten or untagged need a self-describing format); storing them as JSON"
            );
        }
        Ok(fallback_fp)
    }

    /// Decodes a `T` written with the fingerprint `fingerprint`: `None` when neither codec
    /// writes `T` at `version` with that fingerprint (another type, version or codec).
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        fingerprint: u64,
        version: u32,
        payload: &[u8],
    ) -> Option<Result<T, CodecError>> {
        let (primary_fp, fallback_fp) = self.fingerprints::<T>(version);
        if fingerprint == primary_fp {
            Some(self.decode_primary(payload))
        } else if fingerprint == fallback_fp {
            Some(decode(&self.fallback, payload))
        } else {
            None
        }
    }

    /// Encodes with the configured codec, directly when it is [`Bincode`].
    fn encode_primary<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match &self.native {
            Some(bincode) => bincode.encode_typed(value, out),
            None => encode(&*self.primary, value, out),
        }
    }

    /// Decodes with the configured codec, directly when it is [`Bincode`].
    fn decode_primary<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match &self.native {
            Some(bincode) => bincode.decode_typed(bytes),
            None => decode(&*self.primary, bytes),
        }
    }
}

/// `codec` itself when it is [`Bincode`], for [`Formats::new`].
pub(crate) fn native_bincode<C: Codec>(codec: &C) -> Option<Bincode> {
    (codec as &dyn std::any::Any)
        .downcast_ref::<Bincode>()
        .copied()
}

/// The size of `value` in `codec`, ignoring limits, when the codec can tell.
pub(crate) fn encoded_size<T: Serialize>(codec: &dyn Codec, value: &T) -> Option<usize> {
    codec
        .encoded_size(&value as &dyn erased_serde::Serialize)
        .and_then(|size| usize::try_from(size).ok())
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

    /// [`Codec::encode`] for a `T` known here.
    fn encode_typed<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        use bincode::Options;
        self.options()
            .serialize_into(out, value)
            .map_err(|e| bincode_error(self.limit, &e))
    }

    /// [`Codec::decode`] into a `T` known here: the same options, so trailing bytes are
    /// rejected here too.
    fn decode_typed<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        use bincode::Options;
        self.options()
            .deserialize(bytes)
            .map_err(|e| bincode_error(self.limit, &e))
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
        self.encode_typed(value, out)
    }

    fn decode(&self, bytes: &[u8], visit: &mut Visit<'_>) -> Result<(), CodecError> {
        use bincode::Options;
        self.options()
            .deserialize_seed(Seed(visit), bytes)
            .map_err(|e| bincode_error(self.limit, &e))
    }

    fn encoded_size(&self, value: &dyn erased_serde::Serialize) -> Option<u64> {
        use bincode::Options;
        bincode::DefaultOptions::new().serialized_size(value).ok()
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
    fn bincode_called_directly_reads_and_refuses_what_the_erased_path_does() {
        let codec = Bincode::with_limit(64);
        let formats = Formats::new(std::sync::Arc::new(codec), native_bincode(&codec));
        assert!(
            formats.native.is_some(),
            "the default codec is called directly"
        );
        let user = User {
            id: 7,
            name: "Ada".into(),
        };
        let (mut erased, mut direct) = (Vec::new(), Vec::new());
        encode(&codec, &user, &mut erased).unwrap();
        formats.encode_primary(&user, &mut direct).unwrap();
        assert_eq!(erased, direct, "the same bytes");
        assert_eq!(formats.decode_primary::<User>(&erased).unwrap(), user);

        let mut trailing = erased.clone();
        trailing.push(0);
        assert!(formats.decode_primary::<User>(&trailing).is_err());
        assert!(formats
            .decode_primary::<User>(&erased[..erased.len() - 1])
            .is_err());
        let too_large = User {
            id: 1,
            name: "x".repeat(100),
        };
        assert!(matches!(
            formats.encode_primary(&too_large, &mut Vec::new()),
            Err(CodecError::TooLarge { limit: 64 })
        ));
        let mut large = Vec::new();
        encode(&Bincode::default(), &too_large, &mut large).unwrap();
        assert_eq!(
            formats.decode_primary::<User>(&large).is_err(),
            decode::<User>(&codec, &large).is_err()
        );

        let json = Formats::new(std::sync::Arc::new(Json), native_bincode(&Json));
        assert!(
            json.native.is_none(),
            "another codec goes through its trait"
        );
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
