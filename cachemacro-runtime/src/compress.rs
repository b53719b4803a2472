//! Compression of large values in L2 (envelope format 3).
//!
//! A value whose codec bytes reach the threshold ([`CacheBuilder::compress_above`]) is
//! compressed before it goes to Redis, when that makes it smaller; the envelope records the
//! algorithm and the uncompressed length, so a reader knows how to undo it and how much
//! memory that takes before it starts. Values under the threshold, and values that do not
//! shrink, are stored as before: compressed and plain values live side by side.
//!
//! [`CacheBuilder::compress_above`]: crate::CacheBuilder::compress_above

/// How values in Redis are compressed: set with
/// [`CacheBuilder::compression`](crate::CacheBuilder::compression).
///
/// Each algorithm is behind a cargo feature of `cachemacro` (`lz4`, `zstd`). Whatever a
/// cache writes, it reads every algorithm its build has; a value compressed with an
/// algorithm this build lacks is a miss (logged, counted in
/// [`Stats::unusable_values`](crate::Stats::unusable_values)) that the next load
/// overwrites, never an error.
///
/// Rolling deploys: instances of a cachemacro version from before compression see a
/// compressed value as foreign (a miss they overwrite), so turn compression on in a second
/// deploy, once every instance runs a version that reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Store values as the codec wrote them (the default).
    #[default]
    None,
    /// LZ4 block compression ([`lz4_flex`](https://docs.rs/lz4_flex), pure Rust): the
    /// fastest to compress and decompress, a smaller saving than zstd.
    #[cfg(feature = "lz4")]
    Lz4,
    /// Zstandard at this level (1 to 22; 1 to 3 are the fast ones): the larger saving,
    /// for a little more CPU.
    #[cfg(feature = "zstd")]
    Zstd {
        /// The compression level (1 to 22).
        level: i32,
    },
}

/// The algorithm byte of envelope format 3.
pub(crate) const LZ4: u8 = 1;
/// The algorithm byte of envelope format 3.
pub(crate) const ZSTD: u8 = 2;

impl Compression {
    /// Whether the settings are usable; the reason when not.
    pub(crate) fn validate(self) -> Result<(), String> {
        match self {
            #[cfg(feature = "zstd")]
            Self::Zstd { level } if !(1..=22).contains(&level) => {
                Err(format!("the zstd level must be 1 to 22, not {level}"))
            }
            _ => Ok(()),
        }
    }
}

/// What a cache compresses, and how.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Compressor {
    pub(crate) compression: Compression,
    /// The codec bytes from which values are compressed.
    pub(crate) above: usize,
}

impl Compressor {
    /// `payload` compressed, with its algorithm byte, when compression is on, the payload
    /// reaches the threshold and compressing saves at least 1/16 of it.
    pub(crate) fn pack(&self, payload: &[u8]) -> Option<(u8, Vec<u8>)> {
        if payload.len() < self.above {
            return None;
        }
        let packed: Option<(u8, Vec<u8>)> = match self.compression {
            Compression::None => None,
            #[cfg(feature = "lz4")]
            Compression::Lz4 => Some((LZ4, lz4_flex::block::compress(payload))),
            #[cfg(feature = "zstd")]
            Compression::Zstd { level } => zstd::bulk::compress(payload, level)
                .ok()
                .map(|packed| (ZSTD, packed)),
        };
        packed.filter(|(_, packed)| packed.len() < payload.len() - payload.len() / 16)
    }
}

/// The codec bytes of a compressed payload, which the envelope says are `raw_len` bytes
/// long; `limit` is the cache's largest value, checked before any memory is taken. An
/// error names why the value cannot be read (it is then a miss).
pub(crate) fn unpack(
    algorithm: u8,
    raw_len: usize,
    packed: &[u8],
    limit: usize,
) -> Result<Vec<u8>, String> {
    if raw_len > limit {
        return Err(format!(
            "a compressed value of {raw_len} bytes, over the cache's max_value_size"
        ));
    }
    let unpacked = match algorithm {
        LZ4 => lz4_decompress(packed, raw_len)?,
        ZSTD => zstd_decompress(packed, raw_len)?,
        other => {
            return Err(format!(
                "a value compressed with an unknown algorithm ({other})"
            ))
        }
    };
    if unpacked.len() == raw_len {
        Ok(unpacked)
    } else {
        Err("a compressed value whose length does not match its envelope".into())
    }
}

#[cfg(any(feature = "lz4", feature = "zstd"))]
fn broken(e: impl std::fmt::Display) -> String {
    format!("a compressed value that does not decompress ({e})")
}

#[cfg(feature = "lz4")]
fn lz4_decompress(packed: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    lz4_flex::block::decompress(packed, raw_len).map_err(broken)
}

#[cfg(not(feature = "lz4"))]
fn lz4_decompress(_: &[u8], _: usize) -> Result<Vec<u8>, String> {
    Err("a value compressed with lz4, which this build lacks (cargo feature `lz4`)".into())
}

#[cfg(feature = "zstd")]
fn zstd_decompress(packed: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(packed, raw_len).map_err(broken)
}

#[cfg(not(feature = "zstd"))]
fn zstd_decompress(_: &[u8], _: usize) -> Result<Vec<u8>, String> {
    Err("a value compressed with zstd, which this build lacks (cargo feature `zstd`)".into())
}

/// The codec bytes of an envelope's payload: as stored, or decompressed as `packed` says.
pub(crate) fn payload(
    payload: &[u8],
    packed: Option<crate::envelope::Packed>,
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match packed {
        None => Ok(std::borrow::Cow::Borrowed(payload)),
        Some(p) => unpack(p.algorithm, p.raw_len, payload, limit).map(std::borrow::Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..4096u32)
            .flat_map(|i| format!("user-{} ", i % 97).into_bytes())
            .collect()
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    fn round_trip(compression: Compression) {
        let compressor = Compressor {
            compression,
            above: 1024,
        };
        let payload = sample();
        let (algorithm, packed) = compressor.pack(&payload).expect("compressible");
        assert!(packed.len() < payload.len() / 2);
        assert_eq!(
            unpack(algorithm, payload.len(), &packed, 1 << 20).unwrap(),
            payload
        );
        // A lie about the length, a limit, corruption: errors, never a wrong value.
        assert!(unpack(algorithm, payload.len() + 1, &packed, 1 << 20).is_err());
        assert!(unpack(algorithm, payload.len(), &packed, 1000).is_err());
        let mut corrupt = packed.clone();
        corrupt.truncate(packed.len() / 2);
        assert!(unpack(algorithm, payload.len(), &corrupt, 1 << 20).is_err());
        // Small or incompressible payloads stay as they are.
        assert!(compressor.pack(&payload[..100]).is_none());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        assert!(compressor.pack(&noise).is_none());
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn lz4_round_trips() {
        round_trip(Compression::Lz4);
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_round_trips() {
        round_trip(Compression::Zstd { level: 3 });
    }

    #[test]
    fn off_never_compresses_and_unknown_algorithms_are_refused() {
        let off = Compressor {
            compression: Compression::None,
            above: 0,
        };
        assert!(off.pack(&sample()).is_none());
        assert!(unpack(9, 3, b"abc", 100).is_err());
    }
}
