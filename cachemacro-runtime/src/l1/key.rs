//! The key as L1 stores it: short keys inside the slot itself, longer ones on the heap.
//!
//! A hit compares the key it looks for with the stored one. With the stored key on the heap
//! (`Box<str>`) that compare reads a cache line of its own, scattered among the process's
//! other allocations: the most expensive miss of a hit once L1 has been pushed out of the
//! CPU's caches (`bench/results/L1-DECISION.md`). Keys of up to [`INLINE`] bytes, which a
//! template like `user:<id>` under a short namespace gives, are compared in the slot.

use std::hash::{Hash, Hasher};

use quick_cache::Equivalent;

/// The longest key kept inline: the key type is then 40 bytes, as large as a `Box<str>`
/// and the allocation it points to together.
pub(crate) const INLINE: usize = 38;

/// A stored key: its bytes, inline when they fit.
#[derive(Clone)]
pub(crate) enum SlotKey {
    /// Up to [`INLINE`] bytes; `len` of `bytes` are the key.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer key.
    Heap(Box<[u8]>),
}

impl SlotKey {
    /// The stored form of `key`.
    pub(crate) fn new(key: String) -> Self {
        let len = key.len();
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..len].copy_from_slice(key.as_bytes());
            Self::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            Self::Heap(key.into_bytes().into_boxed_slice())
        }
    }

    /// The key's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl Hash for SlotKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same bytes as `Lookup` writes, so that both hash alike.
        state.write(self.as_bytes());
    }
}

impl PartialEq for SlotKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SlotKey {}

/// A key looked up, borrowed: hashes as the [`SlotKey`] holding the same bytes.
pub(crate) struct Lookup<'a>(pub(crate) &'a str);

impl Hash for Lookup<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl Equivalent<SlotKey> for Lookup<'_> {
    #[inline]
    fn equivalent(&self, key: &SlotKey) -> bool {
        self.0.as_bytes() == key.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_key_and_its_lookup_hash_and_compare_alike_inline_or_not() {
        let hasher = quick_cache::DefaultHashBuilder::default();
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 200] {
            let key = "k".repeat(len);
            let stored = SlotKey::new(key.clone());
            assert_eq!(matches!(stored, SlotKey::Inline { .. }), len <= INLINE);
            assert_eq!(stored.as_bytes(), key.as_bytes());
            assert_eq!(hasher.hash_one(&stored), hasher.hash_one(Lookup(&key)));
            assert!(Lookup(&key).equivalent(&stored));
            assert!(!Lookup(&format!("{key}x")).equivalent(&stored));
        }
    }

    #[test]
    fn the_key_is_no_larger_than_a_boxed_key_and_its_allocation() {
        assert_eq!(std::mem::size_of::<SlotKey>(), 40);
    }
}
