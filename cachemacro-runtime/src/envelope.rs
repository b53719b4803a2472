//! The value envelope: what every L2 value looks like in Redis.
//!
//! Format 1, for values that are fresh for their whole life in Redis:
//!
//! ```text
//! offset  size  field
//! 0       2     magic "cm"
//! 2       1     format version (1)
//! 3       1     kind: 1 = value, 2 = tombstone
//! 4       8     value: fingerprint of (type, version, codec), little endian
//!               tombstone: the writer's instance id
//! 12      8     value: when it expires, in milliseconds since the Unix epoch, little endian
//!               tombstone: a sequence number
//! 20      ..    value: the codec's bytes
//! ```
//!
//! Format 2, for values kept past their freshness (`stale_for`, serving stale on failure) or
//! refreshed ahead of expiry, which need to say when they were produced and when they stop
//! being fresh, apart from how long they are kept:
//!
//! ```text
//! 0       2     magic "cm"
//! 2       1     format version (2)
//! 3       1     kind: 1 = value
//! 4       8     fingerprint
//! 12      8     born: when the value was produced (ms since the epoch)
//! 20      8     fresh until (ms since the epoch); Redis keeps the key until it stops being
//!               usable as a stale value (its `PX`)
//! 28      ..    the codec's bytes
//! ```
//!
//! A reader of format 1 only (an older instance during a rolling deploy) sees a format-2
//! value as foreign: a miss it overwrites, never a stale value served as fresh.
//!
//! Format 3, for compressed values (see [`Compression`](crate::Compression)): format 2's
//! header, then how the payload is compressed:
//!
//! ```text
//! 0       28    as format 2 (format version 3)
//! 28      1     algorithm: 1 = LZ4 block, 2 = zstd frame
//! 29      4     the codec bytes' length once decompressed, little endian
//! 33      ..    the compressed codec bytes
//! ```
//!
//! Readers of formats 1 and 2 only see a format-3 value as foreign (a miss they overwrite).
//!
//! The times let a reader fill L1 for what is left of the value's life without asking Redis
//! for the key's TTL (one command per L2 hit instead of two). Clocks of the instances should
//! agree to within a small fraction of your TTLs (NTP does).
//!
//! A value whose magic, version, kind or fingerprint does not match what the reader expects
//! is *foreign*: a miss that the reader's load then overwrites, never a wrong value. A
//! tombstone marks a key removed for a short while (see `remove`), so that a load that began
//! before the removal cannot store the value it read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MAGIC: &[u8; 2] = b"cm";
/// The envelope format of values fresh for their whole life, and of tombstones.
pub(crate) const FORMAT: u8 = 1;
/// The envelope format of values with a stale window or a birth time.
pub(crate) const FORMAT_TIMED: u8 = 2;
/// The envelope format of compressed values.
pub(crate) const FORMAT_COMPRESSED: u8 = 3;
const KIND_VALUE: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
const HEADER: usize = 20;
const HEADER_TIMED: usize = 28;
const HEADER_COMPRESSED: usize = 33;

/// A stable 64-bit hash (FNV-1a): the same in every build and on every machine, unlike
/// `std`'s hashers.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate the parts, so ("ab", "c") differs from ("a", "bc").
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The fingerprint of values of `type_name`, at schema `version`, in `codec`.
pub(crate) fn fingerprint(type_name: &str, version: u32, codec: &str) -> u64 {
    fnv1a(&[
        type_name.as_bytes(),
        &version.to_le_bytes(),
        codec.as_bytes(),
    ])
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// When and for how long a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Life {
    /// When it was produced (ms since the epoch).
    pub(crate) born_ms: u64,
    /// Until when it is fresh.
    pub(crate) fresh_until_ms: u64,
}

impl Life {
    /// A value produced now, fresh for `ttl`.
    pub(crate) fn starting_now(ttl: Duration) -> Self {
        let born_ms = now_ms();
        Self {
            born_ms,
            fresh_until_ms: born_ms.saturating_add(ms(ttl)),
        }
    }
}

/// The header of a value envelope; append the codec's bytes to it, then set the fingerprint
/// with [`set_fingerprint`]. `timed` picks format 2 (a value with a stale window or one
/// refreshed ahead), else format 1.
pub(crate) fn value_header(life: Life, timed: bool, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_TIMED + capacity);
    out.extend_from_slice(MAGIC);
    out.push(if timed { FORMAT_TIMED } else { FORMAT });
    out.push(KIND_VALUE);
    out.extend_from_slice(&0u64.to_le_bytes());
    if timed {
        out.extend_from_slice(&life.born_ms.to_le_bytes());
    }
    out.extend_from_slice(&life.fresh_until_ms.to_le_bytes());
    out
}

/// Sets the fingerprint of the value envelope `bytes` (from [`value_header`]), once the
/// codec that writes the payload is known.
pub(crate) fn set_fingerprint(bytes: &mut [u8], fingerprint: u64) {
    bytes[4..12].copy_from_slice(&fingerprint.to_le_bytes());
}

/// The envelope (format 3) of a value whose codec bytes, `raw_len` long, were compressed
/// with `algorithm` into `packed`.
pub(crate) fn compressed_value(
    life: Life,
    fingerprint: u64,
    algorithm: u8,
    raw_len: usize,
    packed: &[u8],
) -> Vec<u8> {
    // Format 2's header, under format 3's number.
    let mut out = value_header(life, true, HEADER_COMPRESSED - HEADER_TIMED + packed.len());
    out[2] = FORMAT_COMPRESSED;
    set_fingerprint(&mut out, fingerprint);
    out.push(algorithm);
    // Values over 4 GiB are far past any max_value_size: saturate (the reader refuses it).
    out.extend_from_slice(&u32::try_from(raw_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(packed);
    out
}

/// How a payload is compressed (format 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The algorithm byte.
    pub(crate) algorithm: u8,
    /// The codec bytes' length once decompressed.
    pub(crate) raw_len: usize,
}

/// A tombstone unique to this writer and this call: two removals never write equal bytes.
pub(crate) fn tombstone(instance: u64) -> Vec<u8> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(KIND_TOMBSTONE);
    out.extend_from_slice(&instance.to_le_bytes());
    out.extend_from_slice(&SEQUENCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    out
}

/// What a stored byte string is.
#[derive(Debug, PartialEq)]
pub(crate) enum Stored<'a> {
    /// A value with this fingerprint, life and payload. `born_ms` is `None` for format 1
    /// (which does not record it).
    Value {
        fingerprint: u64,
        born_ms: Option<u64>,
        fresh_until_ms: u64,
        payload: &'a [u8],
        /// How `payload` is compressed; `None` when it is the codec's bytes.
        packed: Option<Packed>,
    },
    /// The key was removed a moment ago.
    Tombstone,
    /// Not an envelope this version understands.
    Foreign(&'static str),
}

pub(crate) fn parse(bytes: &[u8]) -> Stored<'_> {
    if bytes.len() < HEADER || &bytes[..2] != MAGIC {
        return Stored::Foreign("not a cachemacro envelope");
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match (bytes[2], bytes[3]) {
        (FORMAT, KIND_VALUE) => Stored::Value {
            fingerprint: word(4),
            born_ms: None,
            fresh_until_ms: word(12),
            payload: &bytes[HEADER..],
            packed: None,
        },
        (FORMAT, KIND_TOMBSTONE) => Stored::Tombstone,
        (FORMAT_TIMED, KIND_VALUE) if bytes.len() >= HEADER_TIMED => Stored::Value {
            fingerprint: word(4),
            born_ms: Some(word(12)),
            fresh_until_ms: word(20),
            payload: &bytes[HEADER_TIMED..],
            packed: None,
        },
        (FORMAT_COMPRESSED, KIND_VALUE) if bytes.len() >= HEADER_COMPRESSED => {
            let mut len = [0u8; 4];
            len.copy_from_slice(&bytes[29..33]);
            Stored::Value {
                fingerprint: word(4),
                born_ms: Some(word(12)),
                fresh_until_ms: word(20),
                payload: &bytes[HEADER_COMPRESSED..],
                packed: Some(Packed {
                    algorithm: bytes[28],
                    raw_len: u32::from_le_bytes(len) as usize,
                }),
            }
        }
        (FORMAT | FORMAT_TIMED | FORMAT_COMPRESSED, _) => {
            Stored::Foreign("an unknown envelope kind")
        }
        _ => Stored::Foreign("an envelope format this version does not read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_tombstones_parse_back() {
        let life = Life::starting_now(Duration::from_secs(10));
        let mut v = value_header(life, false, 3);
        set_fingerprint(&mut v, 42);
        v.extend_from_slice(b"abc");
        let Stored::Value {
            fingerprint,
            born_ms,
            fresh_until_ms,
            payload,
            packed,
        } = parse(&v)
        else {
            panic!("not a value");
        };
        assert_eq!((fingerprint, born_ms, payload), (42, None, &b"abc"[..]));
        assert_eq!(packed, None);
        assert!(fresh_until_ms.abs_diff(now_ms() + 10_000) < 1_000);
        assert_eq!(parse(&tombstone(1)), Stored::Tombstone);
        assert_ne!(tombstone(1), tombstone(1), "every tombstone is unique");
    }

    #[test]
    fn timed_values_carry_their_birth() {
        let life = Life::starting_now(Duration::from_secs(10));
        let mut v = value_header(life, true, 1);
        set_fingerprint(&mut v, 7);
        v.push(b'x');
        assert_eq!(
            parse(&v),
            Stored::Value {
                fingerprint: 7,
                born_ms: Some(life.born_ms),
                fresh_until_ms: life.fresh_until_ms,
                payload: b"x",
                packed: None,
            }
        );
        // A reader of format 1 alone sees it as foreign (checked on the format byte).
        assert_eq!(v[2], FORMAT_TIMED);
    }

    #[test]
    fn compressed_values_say_how() {
        let life = Life::starting_now(Duration::from_secs(10));
        let v = compressed_value(life, 9, 2, 1000, b"zz");
        assert_eq!(
            parse(&v),
            Stored::Value {
                fingerprint: 9,
                born_ms: Some(life.born_ms),
                fresh_until_ms: life.fresh_until_ms,
                payload: b"zz",
                packed: Some(Packed {
                    algorithm: 2,
                    raw_len: 1000
                }),
            }
        );
        assert!(matches!(parse(&v[..30]), Stored::Foreign(_)));
    }

    #[test]
    fn anything_else_is_foreign() {
        assert!(matches!(parse(b""), Stored::Foreign(_)));
        assert!(matches!(parse(b"{\"json\": true}"), Stored::Foreign(_)));
        let mut v = value_header(Life::starting_now(Duration::ZERO), false, 0);
        v[2] = 99;
        assert!(matches!(parse(&v), Stored::Foreign(_)));
        let mut short = value_header(Life::starting_now(Duration::ZERO), true, 0);
        short.truncate(24);
        assert!(matches!(parse(&short), Stored::Foreign(_)));
    }

    #[test]
    fn fingerprints_separate_types_versions_and_codecs() {
        let base = fingerprint("app::User", 0, "bincode1");
        assert_ne!(base, fingerprint("app::User", 1, "bincode1"));
        assert_ne!(base, fingerprint("app::Order", 0, "bincode1"));
        assert_ne!(base, fingerprint("app::User", 0, "json"));
        assert_eq!(base, fingerprint("app::User", 0, "bincode1"));
    }
}
