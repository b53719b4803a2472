//! The typed front of L1: for each `#[cached]` function (and each cache it reads), the
//! values its calls found in L1 again, stored under the arguments themselves and as the
//! function's own value type.
//!
//! An L1 hit writes the key text, hashes and compares it, checks the value's type and
//! clones it through a table of functions; a front hit hashes the arguments, compares them
//! and clones the value: 0.6× the time of an L1 hit in the benchmark, 826 instructions
//! against 1,083 per call (`bench/results/L1-DECISION.md`). L1 stays
//! the source of truth: a value enters the front only from a fresh L1 entry, and leaves it
//! when L1's copy changes.
//!
//! # How an invalidation reaches the front
//!
//! The front is keyed by arguments, and an invalidation names storage keys (by key, by tag,
//! through the bus) or prefixes, so it cannot find front entries. It does not need to:
//! every change to L1 bumps an epoch ([`Epochs`]) *after* the change,
//!
//! - an insert, a removal or an eviction of one key, its key's stripe (one of 2^10 to 2^18
//!   counters, about one per L1 entry, chosen by the key's hash);
//! - a clear, or a clear by prefix (a scope, a namespace purge), the global epoch,
//!
//! and a front entry records both epochs as they were *before* the L1 read it was copied
//! from. A front hit serves the entry only while both are unchanged. So a change to L1
//! that the copy could predate always bumps an epoch the entry recorded: if the change came
//! before the recording, the L1 read came after the change and saw it; if it came after, the
//! bump makes the entry dead. Two keys sharing a stripe only cost each other front entries,
//! never a wrong value.
//!
//! Because evictions bump too, a copy is served only while L1 holds its value: the fronts
//! never serve more values than L1 holds, and a front hit is exactly an L1 hit that skipped
//! the key. Dead copies wait to be looked up or evicted; when the fronts hold more copies
//! than L1 has room for, the L1 sweeper drops them (`l1::sweeper`).
//!
//! # How L1's eviction sees front hits
//!
//! A front hit never reaches L1, whose eviction (S3-FIFO) would then take the hottest
//! entries for unused ones: replayed through `#[cached]`, the P3 trace at 100k entries
//! lost 2.2 points of hit ratio to that. So a front hit also counts itself in its key's
//! stripe word, under the key's 14-bit tag (at most two hits, as quick_cache counts at most
//! two reads), and L1's eviction takes one count as one read when it comes to the entry
//! (`Lifecycle::is_pinned`, which quick_cache's hot queue treats as a read: the entry goes
//! round once more). A count is written only while it is short of two (or is another
//! key's), so a hot key costs about two writes per pass of the eviction, not one per hit. The tag keeps one key's
//! hits from counting for another in the same stripe (without it, 1.4 points were still
//! lost); the loss that is left is within half a point on every trace point measured
//! (`bench/results/hit-ratio.md`).
//!
//! A front entry is served until its L1 entry's `fresh_until` (and not past the point where
//! a hit should start refreshing it); anything else (stale serving, refresh ahead, a type
//! conflict, a call with its `tracing` span on, which records the key) goes through L1.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, UnitWeighter};

use super::clock;
use crate::key::typed::{OwnedKey, TypedKey};

/// The fewest and the most stripe counters: about one per expected L1 entry, so that a
/// changed key costs about one other front entry, at most 2 MB (8 bytes each) however large
/// L1 is, and at least 8 kB.
const MIN_STRIPES: u64 = 1 << 10;
const MAX_STRIPES: u64 = 1 << 18;

/// The epochs that tell a front entry whether L1 changed since it was copied.
pub(crate) struct Epochs {
    /// Bumped by every clear of L1, whole or by prefix.
    all: AtomicU64,
    /// Per stripe, one word:
    ///
    /// - bits 16-63, the epoch: bumped (by [`STEP`]) by every insert, removal or eviction
    ///   of a key in the stripe;
    /// - bits 2-15, the tag of the key a front last served a copy of, and bits 0-1, how
    ///   many of its front hits (0 to [`MAX_TOUCHES`]) L1's eviction has yet to count (see
    ///   [`Epochs::take_touch`]).
    stripes: Box<[AtomicU64]>,
    /// Spreads storage keys over the stripes (foldhash, seeded per process, as the flight
    /// registry's shards).
    hasher: DefaultHashBuilder,
}

/// The bits of a stripe word below the epoch.
const LOW: u64 = 0xffff;

/// The bits of a stripe word that count front hits.
const TOUCHES: u64 = 0b11;

/// At most this many front hits are kept for L1's eviction: as many reads as quick_cache
/// counts for an entry.
const MAX_TOUCHES: u64 = 2;

/// What a change adds to a stripe word: the epoch lives above [`LOW`].
const STEP: u64 = 1 << 16;

/// Where a storage key's epoch and touches live: its stripe, and its tag in that stripe (14
/// bits of its hash that the stripe index does not use).
#[derive(Clone, Copy)]
struct Place {
    stripe: u32,
    /// Already shifted into place (bits 2-15).
    tag: u16,
}

/// The epochs as a front entry recorded them.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    stripe: u32,
    /// The key's tag, as in [`Place`].
    tag: u16,
    /// The stripe word's epoch bits.
    key: u64,
    all: u64,
}

impl Epochs {
    /// Epochs for an L1 of about `entries` entries. The epochs have 48 bits, so that one
    /// never comes back to a value an entry recorded.
    pub(crate) fn new(entries: u64) -> Self {
        let stripes = entries.clamp(MIN_STRIPES, MAX_STRIPES).next_power_of_two();
        Self {
            all: AtomicU64::new(0),
            stripes: (0..stripes).map(|_| AtomicU64::new(0)).collect(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Epochs for an L1 without fronts: no copy reads them, so no stripe is kept and a
    /// change to one key costs nothing (a clear still counts, for the record).
    pub(crate) fn off() -> Self {
        Self {
            all: AtomicU64::new(0),
            stripes: Box::new([]),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The place of storage key `skey`. Only with stripes (fronts on).
    fn place(&self, skey: &[u8]) -> Place {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(skey);
        // The stripe count is a power of two of at most 2^18: bits 32-49 at most.
        let stripe = ((hash >> 32) as u32) & (self.stripes.len() as u32 - 1);
        Place {
            stripe,
            tag: ((hash >> 50) << 2) as u16,
        }
    }

    /// The stripe of storage key `skey` (0, unused, without fronts).
    pub(crate) fn stripe(&self, skey: &[u8]) -> u32 {
        if self.stripes.is_empty() {
            return 0;
        }
        self.place(skey).stripe
    }

    /// After L1 inserted, removed or evicted `skey`.
    pub(crate) fn key_changed(&self, skey: &[u8]) {
        self.stripe_changed(self.stripe(skey));
    }

    /// After L1 inserted or removed a key of `stripe`.
    pub(crate) fn stripe_changed(&self, stripe: u32) {
        if let Some(word) = self.stripes.get(stripe as usize) {
            word.fetch_add(STEP, Ordering::Release);
        }
    }

    /// After L1 dropped entries by clearing, whole or by prefix.
    pub(crate) fn all_changed(&self) {
        self.all.fetch_add(1, Ordering::Release);
    }

    /// The epochs of `skey` now: taken before the L1 read a front entry copies.
    pub(crate) fn snapshot(&self, skey: &str) -> Snapshot {
        let Place { stripe, tag } = self.place(skey.as_bytes());
        Snapshot {
            stripe,
            tag,
            key: self.stripes[stripe as usize].load(Ordering::Acquire) & !LOW,
            all: self.all.load(Ordering::Acquire),
        }
    }

    /// Whether nothing that `snapshot` covers changed since it was taken.
    #[inline]
    fn unchanged(&self, snapshot: &Snapshot) -> bool {
        self.all.load(Ordering::Acquire) == snapshot.all
            && self.stripes[snapshot.stripe as usize].load(Ordering::Acquire) & !LOW == snapshot.key
    }

    /// [`unchanged`](Self::unchanged), for a copy about to be served: it also counts the
    /// hit for L1's eviction, which never sees it otherwise. The stripe is written only
    /// while the count is short of [`MAX_TOUCHES`] or was another key's, so a key hit a
    /// million times writes about twice per pass of the eviction.
    #[inline]
    fn serve(&self, snapshot: &Snapshot) -> bool {
        let stripe = &self.stripes[snapshot.stripe as usize];
        let word = stripe.load(Ordering::Acquire);
        if self.all.load(Ordering::Acquire) != snapshot.all || word & !LOW != snapshot.key {
            return false;
        }
        let tag = u64::from(snapshot.tag);
        let touched = if word & (LOW & !TOUCHES) == tag {
            (word & TOUCHES < MAX_TOUCHES).then_some(word + 1)
        } else {
            Some((word & !LOW) | tag | 1)
        };
        if let Some(touched) = touched {
            // A lost race loses a count, nothing else; the epoch bits are written back as
            // they were read, or the exchange fails.
            let _ = stripe.compare_exchange(word, touched, Ordering::Relaxed, Ordering::Relaxed);
        }
        true
    }

    /// Whether a front served a copy of `skey` since L1's eviction last counted one,
    /// counting it: the eviction then treats the entry as read (quick_cache's pinning,
    /// which in the hot queue works as a read does: the entry goes round once more). The
    /// count is the key's only while its tag is in the stripe: another key's hits never
    /// count for it, and two keys hit at once in one stripe may lose some of theirs.
    pub(crate) fn take_touch(&self, skey: &[u8]) -> bool {
        let Place { stripe, tag } = self.place(skey);
        let (stripe, tag) = (&self.stripes[stripe as usize], u64::from(tag));
        let mut word = stripe.load(Ordering::Relaxed);
        // Compare-and-swap, never a plain subtraction: the epoch bits must not change.
        while word & (LOW & !TOUCHES) == tag && word & TOUCHES != 0 {
            match stripe.compare_exchange_weak(word, word - 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
        false
    }
}

/// An owned key as the front stores it, hashed by [`OwnedKey::hash_owned`].
#[derive(PartialEq, Eq)]
struct Stored<O>(O);

impl<O: OwnedKey> Hash for Stored<O> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_owned(state);
    }
}

/// A borrowed key, looked up without copying it.
struct Probe<'a, K: ?Sized>(&'a K);

impl<K: TypedKey + ?Sized> Hash for Probe<'_, K> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_key(state);
    }
}

impl<K: TypedKey + ?Sized> Equivalent<Stored<K::Owned>> for Probe<'_, K> {
    #[inline]
    fn equivalent(&self, stored: &Stored<K::Owned>) -> bool {
        self.0.matches(&stored.0)
    }
}

/// A front entry: the value and what tells whether it may still be served.
#[derive(Clone)]
struct Slot<V> {
    value: V,
    /// Coarse time until which it is served: its L1 entry's `fresh_until`, or its refresh
    /// point when that comes first.
    until: u64,
    recorded: Snapshot,
}

/// One function's front in one cache.
pub(crate) struct Front<O, V> {
    store: Cache<Stored<O>, Slot<V>, UnitWeighter, DefaultHashBuilder>,
    epochs: Arc<Epochs>,
}

impl<O: OwnedKey, V: Clone + Send + Sync + 'static> Front<O, V> {
    fn new(capacity: u64, epochs: Arc<Epochs>) -> Self {
        let items = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            store: Cache::with(
                items,
                capacity,
                UnitWeighter,
                DefaultHashBuilder::default(),
                Default::default(),
            ),
            epochs,
        }
    }

    /// The value under `key` if it may be served at coarse time `now`. An entry that may
    /// not is dropped.
    #[inline]
    pub(crate) fn get<K: TypedKey<Owned = O> + ?Sized>(&self, key: &K, now: u64) -> Option<V> {
        let slot = self.store.get(&Probe(key))?;
        if clock::before(now, slot.until) && self.epochs.serve(&slot.recorded) {
            return Some(slot.value);
        }
        self.drop_dead(key);
        None
    }

    /// Whether `slot` may still be served at coarse time `now` (without counting a hit).
    fn live(&self, slot: &Slot<V>, now: u64) -> bool {
        clock::before(now, slot.until) && self.epochs.unchanged(&slot.recorded)
    }

    #[cold]
    fn drop_dead<K: TypedKey<Owned = O> + ?Sized>(&self, key: &K) {
        let now = clock::now_ms();
        self.store
            .remove_if(&Probe(key), |slot| !self.live(slot, now));
    }

    /// Stores a copy of an L1 entry read after `recorded` was taken, served until `until`.
    pub(crate) fn insert<K: TypedKey<Owned = O> + ?Sized>(
        &self,
        key: &K,
        value: V,
        until: u64,
        recorded: Snapshot,
    ) {
        // The read may already be out of date: then the entry would only take room.
        if !self.epochs.unchanged(&recorded) {
            return;
        }
        self.store.insert(
            Stored(key.to_owned_key()),
            Slot {
                value,
                until,
                recorded,
            },
        );
    }
}

/// What the cache needs of a front whatever its types.
trait AnyFront: Send + Sync {
    fn clear(&self);
    fn len(&self) -> usize;
    /// Drops the copies that may no longer be served at coarse time `now`.
    fn sweep(&self, now: u64);
}

impl<O: OwnedKey, V: Clone + Send + Sync + 'static> AnyFront for Front<O, V> {
    fn clear(&self) {
        self.store.clear();
    }

    fn len(&self) -> usize {
        self.store.len()
    }

    fn sweep(&self, now: u64) {
        self.store.retain(|_, slot| self.live(slot, now));
    }
}

/// A registered front, seen both as its own type (for hits) and as any front (for clears).
struct Registered {
    typed: Arc<dyn Any + Send + Sync>,
    any: Arc<dyn AnyFront>,
}

/// How many functions a cache can have fronts for: the ids past it go through L1 only.
const CHUNK: usize = 64;
const CHUNKS: usize = 64;

/// The next function id; 0 means none assigned yet.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A function's front id, assigned on first use (0 until then; `u32::MAX` when there are
/// more functions than fronts).
pub(crate) fn id_of(slot: &AtomicU32) -> Option<usize> {
    let id = slot.load(Ordering::Relaxed);
    (id != 0 && (id as usize) < CHUNK * CHUNKS).then_some(id as usize)
}

/// [`id_of`], assigning one when there is none.
pub(crate) fn assign_id(slot: &AtomicU32) -> Option<usize> {
    if let Some(id) = id_of(slot) {
        return Some(id);
    }
    let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed).min(u32::MAX - 1);
    let id = match slot.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => fresh,
        Err(already) => already,
    };
    ((id as usize) < CHUNK * CHUNKS).then_some(id as usize)
}

/// The fronts of [`CHUNK`] function ids, allocated when the first of them gets one.
type Chunk = Box<[OnceLock<Registered>]>;

/// A cache's fronts, by function id.
pub(crate) struct Fronts {
    chunks: Box<[OnceLock<Chunk>]>,
    /// Entries per front; 0: no fronts.
    capacity: u64,
    epochs: Arc<Epochs>,
}

impl Fronts {
    pub(crate) fn new(capacity: u64, epochs: Arc<Epochs>) -> Self {
        Self {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            capacity,
            epochs,
        }
    }

    /// The front of function `id`, if it has one of these types.
    #[inline]
    pub(crate) fn get<O: OwnedKey, V: Clone + Send + Sync + 'static>(
        &self,
        id: usize,
    ) -> Option<&Front<O, V>> {
        let chunk = self.chunks[id / CHUNK].get()?;
        chunk[id % CHUNK].get()?.typed.downcast_ref()
    }

    /// The front of function `id`, made on first use; `None` when fronts are off, or when
    /// the function's id already has a front of other types (a generic impl's method,
    /// whose one `static` serves every instantiation).
    pub(crate) fn get_or_make<O: OwnedKey, V: Clone + Send + Sync + 'static>(
        &self,
        id: usize,
    ) -> Option<&Front<O, V>> {
        if self.capacity == 0 {
            return None;
        }
        let chunk =
            self.chunks[id / CHUNK].get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        let registered = chunk[id % CHUNK].get_or_init(|| {
            let front = Arc::new(Front::<O, V>::new(self.capacity, Arc::clone(&self.epochs)));
            Registered {
                typed: Arc::clone(&front) as Arc<dyn Any + Send + Sync>,
                any: front,
            }
        });
        registered.typed.downcast_ref()
    }

    /// Whether functions get fronts at all.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.capacity != 0
    }

    pub(crate) fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    fn each(&self, mut f: impl FnMut(&dyn AnyFront)) {
        for chunk in self.chunks.iter().filter_map(OnceLock::get) {
            for registered in chunk.iter().filter_map(OnceLock::get) {
                f(&*registered.any);
            }
        }
    }

    /// Drops every front entry (after L1's clear bumped the global epoch, which already
    /// made them dead: this frees their memory).
    pub(crate) fn clear(&self) {
        self.each(|front| front.clear());
    }

    /// Copies held in all fronts, dead ones not yet dropped included.
    pub(crate) fn held(&self) -> usize {
        let mut held = 0;
        self.each(|front| held += front.len());
        held
    }

    /// Drops, from every front, the copies that may no longer be served at `now`.
    pub(crate) fn sweep(&self, now: u64) {
        self.each(|front| front.sweep(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(capacity: u64) -> (Fronts, Arc<Epochs>) {
        let epochs = Arc::new(Epochs::new(1_000));
        (Fronts::new(capacity, Arc::clone(&epochs)), epochs)
    }

    const FAR: u64 = u64::MAX / 2;

    #[test]
    fn a_copy_is_served_until_its_key_changes_in_l1() {
        let (fronts, epochs) = front(100);
        let f = fronts.get_or_make::<(u64,), String>(1).unwrap();
        let seen = epochs.snapshot("ns:k:user:7");
        f.insert(&(&7u64,), "Ada".to_owned(), FAR, seen);
        assert_eq!(f.get(&(&7u64,), 0).as_deref(), Some("Ada"));
        assert_eq!(f.get(&(&8u64,), 0), None);
        epochs.key_changed(b"ns:k:user:7");
        assert_eq!(f.get(&(&7u64,), 0), None, "the key changed in L1");
        assert_eq!(fronts.held(), 0, "and the dead entry was dropped");
    }

    #[test]
    fn a_clear_ends_every_copy() {
        let (fronts, epochs) = front(100);
        let f = fronts.get_or_make::<(String,), u32>(2).unwrap();
        f.insert(&("a",), 1, FAR, epochs.snapshot("a"));
        f.insert(&("b",), 2, FAR, epochs.snapshot("b"));
        assert_eq!(f.get(&("a",), 0), Some(1));
        epochs.all_changed();
        assert_eq!(f.get(&("b",), 0), None);
    }

    #[test]
    fn a_copy_of_a_read_that_a_change_overtook_is_not_kept() {
        let (fronts, epochs) = front(100);
        let f = fronts.get_or_make::<(u64,), u32>(3).unwrap();
        let seen = epochs.snapshot("k");
        epochs.key_changed(b"k");
        f.insert(&(&1u64,), 1, FAR, seen);
        assert_eq!(f.get(&(&1u64,), 0), None);
    }

    #[test]
    fn a_copy_ends_at_its_deadline() {
        let (fronts, epochs) = front(100);
        let f = fronts.get_or_make::<(u64,), u32>(4).unwrap();
        f.insert(&(&1u64,), 1, 1_000, epochs.snapshot("k"));
        assert_eq!(f.get(&(&1u64,), 500), Some(1));
        assert_eq!(f.get(&(&1u64,), 1_000), None);
    }

    #[test]
    fn one_id_keeps_the_types_it_was_made_with_and_fronts_can_be_off() {
        let (fronts, _) = front(100);
        assert!(fronts.get_or_make::<(u64,), u32>(5).is_some());
        assert!(fronts.get_or_make::<(u64,), String>(5).is_none());
        assert!(fronts.get::<(u64,), String>(5).is_none());
        let (off, _) = front(0);
        assert!(off.get_or_make::<(u64,), u32>(5).is_none());
    }

    #[test]
    fn the_front_holds_at_most_its_capacity() {
        let (fronts, epochs) = front(1_000);
        let f = fronts.get_or_make::<(u64,), u64>(6).unwrap();
        for i in 0..10_000u64 {
            f.insert(&(&i,), i, FAR, epochs.snapshot(&i.to_string()));
        }
        assert!(fronts.held() <= 1_000, "{}", fronts.held());
        fronts.clear();
        assert_eq!(fronts.held(), 0);
    }
}
