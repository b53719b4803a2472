//! The value envelope: what every L2 value looks like in Redis.
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
//! The expiry lets a reader fill L1 for what is left of the value's life without asking
//! Redis for the key's TTL (one command per L2 hit instead of two). Clocks of the instances
//! should agree to within a small fraction of your TTLs (NTP does).
//!
//! A value whose magic, version, kind or fingerprint does not match what the reader expects
//! is *foreign*: a miss that the reader's load then overwrites, never a wrong value. A
//! tombstone marks a key removed for a short while (see `remove`), so that a load that began
//! before the removal cannot store the value it read.

use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 2] = b"cm";
/// The envelope format version.
pub(crate) const FORMAT: u8 = 1;
const KIND_VALUE: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
const HEADER: usize = 20;

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

/// The header of a value envelope for a value that expires after `ttl`; append the codec's
/// bytes to it.
pub(crate) fn value_header(fingerprint: u64, ttl: std::time::Duration, capacity: usize) -> Vec<u8> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(HEADER + capacity);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(KIND_VALUE);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&now_ms().saturating_add(ttl_ms).to_le_bytes());
    out
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
    /// A value with this fingerprint, expiry (ms since the epoch) and payload.
    Value {
        fingerprint: u64,
        expires_at_ms: u64,
        payload: &'a [u8],
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
    if bytes[2] != FORMAT {
        return Stored::Foreign("an envelope format this version does not read");
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match bytes[3] {
        KIND_VALUE => Stored::Value {
            fingerprint: word(4),
            expires_at_ms: word(12),
            payload: &bytes[HEADER..],
        },
        KIND_TOMBSTONE => Stored::Tombstone,
        _ => Stored::Foreign("an unknown envelope kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_tombstones_parse_back() {
        let mut v = value_header(42, std::time::Duration::from_secs(10), 3);
        v.extend_from_slice(b"abc");
        let Stored::Value {
            fingerprint,
            expires_at_ms,
            payload,
        } = parse(&v)
        else {
            panic!("not a value");
        };
        assert_eq!((fingerprint, payload), (42, &b"abc"[..]));
        assert!(expires_at_ms.abs_diff(now_ms() + 10_000) < 1_000);
        assert_eq!(parse(&tombstone(1)), Stored::Tombstone);
        assert_ne!(tombstone(1), tombstone(1), "every tombstone is unique");
    }

    #[test]
    fn anything_else_is_foreign() {
        assert!(matches!(parse(b""), Stored::Foreign(_)));
        assert!(matches!(parse(b"{\"json\": true}"), Stored::Foreign(_)));
        let mut v = value_header(1, std::time::Duration::ZERO, 0);
        v[2] = 99;
        assert!(matches!(parse(&v), Stored::Foreign(_)));
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
