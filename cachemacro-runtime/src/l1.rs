//! L1: the bounded in-process cache, holding typed values.
//!
//! The store is quick_cache (S3-FIFO-like eviction, a relaxed per-entry counter bumped on a
//! hit, sharded read-write locks): a hit costs a hash, a read lock and a clone of the value,
//! where moka also records the read for its maintenance. Short keys ([`key`]) and small
//! values ([`value`]) are kept in the slot itself, so that a hit reads no other memory than
//! the table, the slot and what the value's clone copies. quick_cache has no TTL, so each
//! [`Entry`] carries its own deadlines: a read checks them against a coarse clock (see
//! [`clock`]) and drops an entry it finds expired, and a background pass drops expired
//! entries from nearly full caches (see [`sweeper`]) so they go before live ones.
//! `bench/results/L1-DECISION.md` records the measurements behind these choices.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use self::front::{Epochs, Fronts};
use self::key::{Lookup, SlotKey};
pub(crate) use self::share::Share;
use self::share::Shares;
use self::value::Value;

pub(crate) mod front;
mod key;
pub(crate) mod share;
mod value;

/// The store under [`L1`].
type Store = Cache<SlotKey, Entry, StoredWeight, DefaultHashBuilder, Counted>;

/// quick_cache's default lifecycle (evicted entries are dropped outside the shard's lock),
/// counting the evictions, and ending the fronts' copies of what it evicts: a front holds
/// only values L1 holds.
#[derive(Clone)]
struct Counted {
    evictions: Arc<std::sync::atomic::AtomicU64>,
    epochs: Arc<Epochs>,
    /// Whether there are fronts whose hits count as reads.
    fronts: bool,
    inner: DefaultLifecycle<SlotKey, Entry>,
}

impl Lifecycle<SlotKey, Entry> for Counted {
    type RequestState =
        <DefaultLifecycle<SlotKey, Entry> as Lifecycle<SlotKey, Entry>>::RequestState;

    /// An entry whose copy a front served since the last look counts as read: the front's
    /// hits never reach L1, and without this its hottest entries would be evicted as unused.
    #[inline]
    fn is_pinned(&self, key: &SlotKey, _val: &Entry) -> bool {
        self.fronts && self.epochs.take_touch(key.as_bytes())
    }

    #[inline]
    fn on_evict(&self, state: &mut Self::RequestState, key: SlotKey, val: Entry) {
        self.evictions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.epochs.key_changed(key.as_bytes());
        self.inner.on_evict(state, key, val);
    }
}

/// A value held in L1: the typed value itself (a hit decodes nothing) and its times, in
/// milliseconds of [`clock::now_ms`].
///
/// - `fresh_until`: a read before it is a normal hit.
/// - `keep_until` (≥ `fresh_until`): the entry is never returned at or after it, and is
///   dropped by the first read that meets it past it. Between the two the entry is *stale*:
///   kept for callers that would rather have an old value than none (serving stale on
///   failure).
/// - `born`: when the value was produced.
/// - `refresh_at`: from when a hit should also start reloading the value in the background
///   (refreshing ahead of expiry); never, unless asked for.
///
/// The deadlines are kept as offsets from `born` in 32 bits, which keeps the entry at 96
/// bytes, 64 of them the value (quick_cache stores it inline in every slot, the slots of
/// evicted keys it remembers included): L1 keeps an entry at most
/// [`MAX_L1_LIFE_MS`] (49 days), ending longer TTLs early, never late.
#[derive(Clone)]
pub(crate) struct Entry {
    value: Value,
    born: u64,
    fresh_for: u32,
    keep_for: u32,
    /// The entry's weight against [`L1`]'s byte bound, set on insert (1 without one).
    weight: u32,
    /// When a hit starts a refresh, as an offset from `born`; `u32::MAX`: never.
    refresh_for: u32,
}

/// An entry's times, from now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    /// How long ago the value was produced.
    pub(crate) age: Duration,
    /// How long it stays fresh.
    pub(crate) fresh: Duration,
    /// How long it may be kept (at least `fresh`).
    pub(crate) keep: Duration,
    /// When a hit starts a refresh ahead of expiry; `None`: never.
    pub(crate) refresh: Option<Duration>,
}

/// The longest L1 keeps an entry, in milliseconds (`u32::MAX`, about 49.7 days).
pub(crate) const MAX_L1_LIFE_MS: u64 = u32::MAX as u64;

impl Entry {
    /// An entry fresh, and kept, for `ttl` from now.
    pub(crate) fn new<T: Clone + Send + Sync + 'static>(value: Arc<T>, ttl: Duration) -> Self {
        Self::with_stale(value, ttl, ttl)
    }

    /// An entry fresh for `fresh` from now and kept for `keep` from now (at least `fresh`).
    pub(crate) fn with_stale<T: Clone + Send + Sync + 'static>(
        value: Arc<T>,
        fresh: Duration,
        keep: Duration,
    ) -> Self {
        Self::with_times(
            value,
            Times {
                age: Duration::ZERO,
                fresh,
                keep,
                refresh: None,
            },
        )
    }

    /// An entry with the given times.
    pub(crate) fn with_times<T: Clone + Send + Sync + 'static>(
        value: Arc<T>,
        times: Times,
    ) -> Self {
        crate::conflicts::remember::<T>();
        let now = clock::exact_ms();
        let age = u64::try_from(times.age.as_millis())
            .unwrap_or(u64::MAX)
            .min(now);
        let offset = |d: Duration| millis32(times.age.saturating_add(d));
        let fresh_for = offset(times.fresh);
        Self {
            value: Value::new(value),
            born: now - age,
            fresh_for,
            keep_for: offset(times.keep).max(fresh_for),
            weight: 1,
            refresh_for: times.refresh.map_or(u32::MAX, offset),
        }
    }

    /// The same value and deadlines, refreshed ahead from `after` from now instead.
    pub(crate) fn refresh_after(&self, after: Duration) -> Self {
        let mut entry = self.clone();
        let elapsed = clock::exact_ms().saturating_sub(self.born);
        entry.refresh_for = millis32(Duration::from_millis(elapsed).saturating_add(after));
        entry
    }

    /// The same value, fresh (capped at its `keep_until`) for `fresh` from now: a stale
    /// value served again, as if fresh, for a while.
    pub(crate) fn refreshed_for(&self, fresh: Duration) -> Self {
        let mut entry = self.clone();
        let elapsed = clock::exact_ms().saturating_sub(self.born);
        entry.fresh_for =
            millis32(Duration::from_millis(elapsed).saturating_add(fresh)).min(entry.keep_for);
        entry.refresh_for = u32::MAX;
        entry
    }

    /// Until when a hit may be served without looking further: `fresh_until`, or the
    /// refresh point when that comes first.
    #[inline]
    pub(crate) fn serve_until(&self) -> u64 {
        let fresh = self.fresh_until();
        if self.refresh_for == u32::MAX {
            fresh
        } else {
            fresh.min(self.born + u64::from(self.refresh_for))
        }
    }

    /// Whether a hit at `now` should also start a refresh ahead of expiry.
    #[inline]
    pub(crate) fn refresh_due(&self, now: u64) -> bool {
        self.refresh_for != u32::MAX && now >= self.born + u64::from(self.refresh_for)
    }

    /// The value if it is a `T`; else the type it is (a value of another type under the
    /// same key).
    pub(crate) fn downcast<T: Clone + Send + Sync + 'static>(
        self,
    ) -> Result<Arc<T>, std::any::TypeId> {
        self.value.into_arc::<T>()
    }

    /// The value itself if it is a `T` (a hit's copy); else the type it is.
    #[inline(always)]
    pub(crate) fn take<T: Clone + Send + Sync + 'static>(self) -> Result<T, std::any::TypeId> {
        self.value.take::<T>()
    }

    /// Whether a read at `now` (from [`clock::now_ms`]) is a normal hit.
    #[inline]
    pub(crate) fn is_fresh(&self, now: u64) -> bool {
        clock::before(now, self.fresh_until())
    }

    /// Whether the entry may still be kept, and served as stale, at `now`.
    #[inline]
    pub(crate) fn is_kept(&self, now: u64) -> bool {
        clock::before(now, self.keep_until())
    }

    /// Until when a read is a normal hit.
    #[inline]
    pub(crate) fn fresh_until(&self) -> u64 {
        self.born + u64::from(self.fresh_for)
    }

    /// Until when the entry may be kept at all.
    #[inline]
    pub(crate) fn keep_until(&self) -> u64 {
        self.born + u64::from(self.keep_for)
    }
}

/// `d` in milliseconds, capped at [`MAX_L1_LIFE_MS`].
fn millis32(d: Duration) -> u32 {
    let ms = d.as_millis().min(u128::from(MAX_L1_LIFE_MS));
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// How a byte-bounded L1 weighs an entry: `weigher(key, value)`, the value as `&dyn Any` to
/// downcast to the types the cache holds.
pub(crate) type Weigh = Arc<dyn Fn(&str, &(dyn Any + Send + Sync)) -> u64 + Send + Sync>;

/// The default weight of an entry under a byte bound: its key, the value's inline size and
/// the store's own overhead per entry. Heap data the value owns (a `String`'s bytes) is not
/// seen; a weigher given to the builder can count it.
///
/// The overhead: a slot is 152 bytes (a key of up to 38 bytes and a value of up to 64
/// inline, the deadlines, quick_cache's links), and each entry also pays for 0.75 of a
/// slot remembering an evicted key ([`GHOST_ALLOCATION`]) and its index; less the key
/// and value counted apart, about 192 bytes.
pub(crate) fn default_weight(key: &str, value: &(dyn Any + Send + Sync)) -> u64 {
    const OVERHEAD: u64 = 192;
    (key.len() + std::mem::size_of_val(value)) as u64 + OVERHEAD
}

/// quick_cache reads the weight stored in the entry: cheap, and it never changes while the
/// entry is held, as quick_cache requires.
#[derive(Clone)]
struct StoredWeight;

impl Weighter<SlotKey, Entry> for StoredWeight {
    #[inline]
    fn weight(&self, _key: &SlotKey, entry: &Entry) -> u64 {
        u64::from(entry.weight)
    }
}

/// The share of L1 for entries read again since they came in (S3-FIFO's main queue); the
/// rest is the probation queue new entries start in. quick_cache's default is 0.97; 0.95
/// matched or beat moka's hit ratio on every ARC trace point measured, where 0.97 fell 2-3
/// points short on P3 at 100k entries (`bench/results/L1-DECISION.md`).
const HOT_ALLOCATION: f64 = 0.95;

/// How many recently evicted keys L1 remembers (hashes only), as a share of its capacity:
/// a key that comes back while remembered skips probation. 0.75 instead of quick_cache's 0.5
/// gained 4-5 points on P3 at 100k entries, for at most one slot per 4/3 entries.
const GHOST_ALLOCATION: f64 = 0.75;

/// What bounds the L1.
#[derive(Clone)]
pub(crate) enum Bound {
    /// At most this many entries.
    Entries(u64),
    /// At most this many bytes as weighed by the function; the entry count is a sizing hint.
    Bytes {
        bytes: u64,
        weigh: Weigh,
        estimated_entries: u64,
    },
}

/// The in-process cache, keyed by storage key, with the typed fronts of the functions that
/// read it ([`front`]).
#[derive(Clone)]
pub(crate) struct L1 {
    store: Arc<Store>,
    /// Entries evicted to make room (not expired, not invalidated).
    evictions: Arc<std::sync::atomic::AtomicU64>,
    weigh: Option<Weigh>,
    /// Every change to `store` is followed by a bump here, which the fronts check.
    fronts: Arc<Fronts>,
    /// The stores of the functions with a share of their own (`share`), and the lifecycle
    /// a new one is made with.
    shares: Arc<Shares>,
    lifecycle: Counted,
}

/// A store of `weight_capacity`, sized for about `entries` entries.
fn make_store(weight_capacity: u64, entries: u64, lifecycle: Counted) -> Store {
    let options = OptionsBuilder::new()
        .estimated_items_capacity(usize::try_from(entries.max(1)).unwrap_or(usize::MAX))
        .weight_capacity(weight_capacity)
        .hot_allocation(HOT_ALLOCATION)
        .ghost_allocation(GHOST_ALLOCATION)
        .build()
        .expect("both required options are set");
    Store::with_options(
        options,
        StoredWeight,
        DefaultHashBuilder::default(),
        lifecycle,
    )
}

impl L1 {
    /// An L1 of at most `capacity` entries, with fronts of as many.
    #[cfg(test)]
    pub(crate) fn new(capacity: u64) -> Self {
        Self::bounded(Bound::Entries(capacity), capacity)
    }

    /// An L1 within `bound`, whose functions' fronts hold at most `front_capacity` entries
    /// each (0: no fronts).
    pub(crate) fn bounded(bound: Bound, front_capacity: u64) -> Self {
        clock::calibrate();
        let (weight_capacity, entries, weigh) = match bound {
            Bound::Entries(n) => (n, n, None),
            Bound::Bytes {
                bytes,
                weigh,
                estimated_entries,
            } => (bytes, estimated_entries, Some(weigh)),
        };
        let epochs = Arc::new(if front_capacity == 0 {
            Epochs::off()
        } else {
            Epochs::new(entries)
        });
        let lifecycle = Counted {
            evictions: Default::default(),
            epochs: Arc::clone(&epochs),
            fronts: front_capacity != 0,
            inner: Default::default(),
        };
        let evictions = Arc::clone(&lifecycle.evictions);
        let store = Arc::new(make_store(weight_capacity, entries, lifecycle.clone()));
        let fronts = Arc::new(Fronts::new(front_capacity, epochs));
        sweeper::watch(&store, Some(&fronts), entries);
        Self {
            store,
            evictions,
            weigh,
            fronts,
            shares: Arc::new(Shares::new()),
            lifecycle,
        }
    }

    /// The store of `share` (a function's own), made on first use; the shared one for
    /// `None`.
    fn store_or_make(&self, share: Option<Share>) -> &Store {
        let Some(share) = share else {
            return &self.store;
        };
        let mut made = false;
        let store = self.shares.get_or_make(share, |capacity| {
            made = true;
            make_store(capacity.max(1), capacity, self.lifecycle.clone())
        });
        if made {
            sweeper::watch(store, None, share.capacity);
        }
        store
    }

    /// The store the hits of a function with `share` read: its own once made, else the
    /// shared one.
    #[inline(always)]
    fn store_for(&self, share: Option<Share>) -> &Store {
        match share.and_then(|share| self.shares.get(share.id)) {
            Some(store) => store,
            None => &self.store,
        }
    }

    /// Every store: the shared one, then the functions' own.
    fn stores(&self) -> impl Iterator<Item = &Store> {
        std::iter::once(&*self.store).chain(self.shares.each().map(|(_, store)| &**store))
    }

    /// The typed fronts of the functions reading this L1.
    #[inline]
    pub(crate) fn fronts(&self) -> &Fronts {
        &self.fronts
    }

    /// The entry under `key` when it is fresh. A read that meets an entry past its
    /// `keep_until` drops it, so that it frees its room before any live entry is evicted.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        let now = clock::now_ms();
        match self.get_at(key, now) {
            Some(entry) => Some(entry),
            None if self.shares.any() => self
                .shares
                .each()
                .find_map(|(_, store)| Self::get_in(store, key, now)),
            None => None,
        }
    }

    /// [`get`](Self::get) at coarse time `now` (from [`clock::now_ms`]), in the shared
    /// store. Always inlined: out of line, the entry it returns goes through memory (25
    /// more instructions per hit).
    #[inline(always)]
    pub(crate) fn get_at(&self, key: &str, now: u64) -> Option<Entry> {
        Self::get_in(&self.store, key, now)
    }

    /// [`get_at`](Self::get_at) for the hits of a function with `share`: in its own store.
    #[inline(always)]
    pub(crate) fn get_at_for(&self, share: Option<Share>, key: &str, now: u64) -> Option<Entry> {
        Self::get_in(self.store_for(share), key, now)
    }

    #[inline(always)]
    fn get_in(store: &Store, key: &str, now: u64) -> Option<Entry> {
        let entry = store.get(&Lookup(key))?;
        if entry.is_fresh(now) {
            return Some(entry);
        }
        if !entry.is_kept(now) {
            Self::drop_expired(store, key);
        }
        None
    }

    /// The entry under `key` while it may be kept, fresh or stale (for serving stale).
    pub(crate) fn get_kept(&self, key: &str) -> Option<Entry> {
        let now = clock::now_ms();
        self.stores().find_map(|store| {
            let entry = store.get(&Lookup(key))?;
            if entry.is_kept(now) {
                return Some(entry);
            }
            Self::drop_expired(store, key);
            None
        })
    }

    #[cold]
    fn drop_expired(store: &Store, key: &str) {
        // Only the expired entry: a fresh one inserted since the read stays.
        store.remove_if(&Lookup(key), |entry| !entry.is_kept(clock::now_ms()));
    }

    /// Stores `entry` under `key`, replacing what was there. An entry already past its
    /// `keep_until` is not stored (and the old one is dropped, as an insert would have).
    #[cfg(test)]
    pub(crate) fn insert(&self, key: String, entry: Entry) {
        self.insert_for(None, key, entry);
    }

    /// [`insert`](Self::insert) for a function with `share`: into its own store. A key
    /// lives in one store at a time: it leaves the others.
    pub(crate) fn insert_for(&self, share: Option<Share>, key: String, mut entry: Entry) {
        if !entry.is_kept(clock::now_ms()) {
            self.remove(&key);
            return;
        }
        let store = self.store_or_make(share);
        match (&self.weigh, share) {
            // A share is bounded in entries.
            (_, Some(_)) => entry.weight = 1,
            (Some(weigh), None) => {
                // Zero would make the entry unevictable in quick_cache.
                let weight = weigh(&key, entry.value.as_any()).clamp(1, u64::from(u32::MAX));
                entry.weight = u32::try_from(weight).unwrap_or(u32::MAX);
            }
            (None, None) => {}
        }
        if self.shares.any() {
            for other in self.stores().filter(|other| !std::ptr::eq(*other, store)) {
                other.remove(&Lookup(&key));
            }
        }
        let epochs = self.fronts.epochs();
        // The stripe is bumped after the insert (see `front`); found first, so that the key
        // can move into the store.
        let stripe = epochs.stripe(key.as_bytes());
        store.insert(SlotKey::new(key), entry);
        epochs.stripe_changed(stripe);
    }

    pub(crate) fn remove(&self, key: &str) {
        for store in self.stores() {
            store.remove(&Lookup(key));
        }
        self.fronts.epochs().key_changed(key.as_bytes());
    }

    /// The entries of share `id` (a function's own store), not counting those past their
    /// `keep_until` (which it drops); 0 when it has none here.
    pub(crate) fn share_len(&self, id: usize) -> u64 {
        let Some(store) = self.shares.get(id) else {
            return 0;
        };
        let now = clock::now_ms();
        store.retain(|_, entry| entry.is_kept(now));
        store.len() as u64
    }

    /// Drops every entry of share `id`, with the contract of [`clear`](Self::clear).
    pub(crate) fn clear_share(&self, id: usize) {
        if let Some(store) = self.shares.get(id) {
            store.clear();
            self.fronts.epochs().all_changed();
        }
    }

    /// Drops every entry. Each shard is emptied under its write lock, so every entry
    /// inserted before the call is gone when it returns; an insert racing with it may stay.
    pub(crate) fn clear(&self) {
        for store in self.stores() {
            store.clear();
        }
        self.fronts.epochs().all_changed();
        self.fronts.clear();
    }

    /// Drops every entry whose key starts with `prefix`, with the same contract as
    /// [`clear`](Self::clear).
    pub(crate) fn clear_prefix(&self, prefix: String) {
        self.clear_where(|key| key.starts_with(&prefix));
    }

    /// Drops every entry whose key `hit` picks, with the same contract as
    /// [`clear`](Self::clear).
    pub(crate) fn clear_where(&self, hit: impl Fn(&str) -> bool) {
        for store in self.stores() {
            // Keys are made from `String`s: always UTF-8.
            store.retain(|key, _| !std::str::from_utf8(key.as_bytes()).is_ok_and(&hit));
        }
        self.fronts.epochs().all_changed();
    }

    /// What L1 holds, without sweeping: entries (expired ones not yet dropped included),
    /// their total weight (bytes under a byte bound, else the entry count), and the
    /// evictions so far.
    /// The functions' own stores (shares) count one per entry.
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        let entries = self.stores().map(|store| store.len() as u64).sum();
        let weight = self.store.weight()
            + self
                .shares
                .each()
                .map(|(_, store)| store.weight())
                .sum::<u64>();
        (
            entries,
            weight,
            self.evictions.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Entries held, not counting those past their `keep_until` (which it drops).
    pub(crate) fn entry_count(&self) -> u64 {
        let now = clock::now_ms();
        self.stores()
            .map(|store| {
                store.retain(|_, entry| entry.is_kept(now));
                store.len() as u64
            })
            .sum()
    }
}

/// Drops the expired entries of nearly full L1s in the background, so that an entry past its
/// `keep_until` goes before live entries are evicted to make room: quick_cache's eviction
/// does not look at deadlines, and an expired entry that is never read again would
/// otherwise wait for its turn in the FIFO order.
mod sweeper {
    use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
    use std::time::Duration;

    use super::front::Fronts;
    use super::{clock, Store};

    /// How often each L1 is looked at: an expired entry leaves a full L1 at most this long
    /// after its `keep_until`.
    const EVERY: Duration = Duration::from_secs(1);

    /// An L1, its fronts, and how many entries it is sized for.
    struct Watched {
        store: Weak<Store>,
        fronts: Weak<Fronts>,
        entries: u64,
    }

    static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

    /// Sweeps `store` and `fronts` (the shared store's) while they live.
    pub(super) fn watch(store: &Arc<Store>, fronts: Option<&Arc<Fronts>>, entries: u64) {
        static SWEEPER: OnceLock<()> = OnceLock::new();
        SWEEPER.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("cachemacro-sweep".into())
                .spawn(|| loop {
                    std::thread::sleep(EVERY);
                    sweep();
                });
            if let Err(err) = spawned {
                // Expired entries are still never returned; they only wait for eviction.
                tracing::warn!(error = %err, "cache: could not start the L1 sweeper thread");
            }
        });
        lock().push(Watched {
            store: Arc::downgrade(store),
            fronts: fronts.map_or_else(Weak::new, Arc::downgrade),
            entries,
        });
    }

    fn lock() -> std::sync::MutexGuard<'static, Vec<Watched>> {
        WATCHED.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass: the L1s at least 7/8 full drop what has expired. Below that an expired
    /// entry costs memory but displaces nothing, and the pass (a scan under each shard's
    /// write lock) is not worth it.
    ///
    /// Fronts: the copies they may serve are of values L1 holds, so more copies than L1
    /// has room for means some are dead (L1 changed or dropped the value) and wait to be
    /// looked up or evicted; then every front drops its dead and expired copies.
    pub(super) fn sweep() {
        let watched: Vec<(Arc<Store>, Option<Arc<Fronts>>, u64)> = {
            let mut watched = lock();
            watched.retain(|w| w.store.strong_count() > 0);
            watched
                .iter()
                .filter_map(|w| Some((w.store.upgrade()?, w.fronts.upgrade(), w.entries)))
                .collect()
        };
        for (store, fronts, entries) in watched {
            let now = clock::now_ms();
            if store.weight().saturating_mul(8) >= store.capacity().saturating_mul(7) {
                store.retain(|_, entry| entry.is_kept(now));
            }
            if let Some(fronts) = fronts {
                if fronts.held() as u64 > entries {
                    fronts.sweep(now);
                }
            }
        }
    }
}

/// The L1's clock: milliseconds of the system's monotonic clock, read two ways.
///
/// Entries are stamped with the exact clock ([`exact_ms`]: `CLOCK_MONOTONIC`, 25-30 ns
/// here). A hit reads the kernel's coarse clock instead ([`now_ms`]:
/// `CLOCK_MONOTONIC_COARSE`, a vDSO call, about 6 ns, no system call): the same clock as the
/// kernel last updated it at a timer tick, so never ahead of the exact one and behind it by
/// less than [`lag_ms`]. [`before`] decides on the coarse time alone when the deadline is
/// further away than that, and reads the exact clock in the last moments of an entry's
/// life, so an entry ends at its deadline (to the millisecond), never later, whether or
/// not the process gets the CPU: the kernel updates the coarse clock from its timer
/// interrupt, which a CPU quota does not hold back. No thread of ours keeps it, so an idle
/// process is not woken.
///
/// (Until this clock, a thread ticked an atomic every millisecond and hits trusted it with
/// 2 ms of slack; a process held off the CPU by its cgroup's quota served entries up to
/// 184 ms past their TTL.)
pub(crate) mod clock {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// How far the coarse clock may be behind the exact one, in ms, as set by [`calibrate`];
    /// until then, more than any tick (a read near a deadline reads the exact clock).
    static LAG_MS: AtomicU64 = AtomicU64::new(100);

    /// Sets [`lag_ms`] from the coarse clock's resolution (its tick: 4 ms here, 1-10 ms
    /// with the kernel's `HZ`). The coarse clock holds the time of the last whole tick
    /// period the kernel accounted for, which may be up to a period before the tick that
    /// published it, and the next tick is a period later: it lags by less than two periods
    /// while ticks come on time (measured here: at most 6.0 ms with 4 ms ticks, idle, with
    /// both cores busy, and in a cgroup held to 20 % of a core). Three periods and a
    /// millisecond leave room for a late tick; they cost only an exact read for hits that
    /// close to a deadline.
    pub(crate) fn calibrate() {
        LAG_MS.store(
            3 * imp::resolution_ns().div_ceil(1_000_000) + 1,
            Ordering::Relaxed,
        );
    }

    /// How far [`now_ms`] may be behind [`exact_ms`].
    #[inline]
    pub(crate) fn lag_ms() -> u64 {
        LAG_MS.load(Ordering::Relaxed)
    }

    /// The clock read exactly: for stamping entries, and for reads close to a deadline.
    pub(crate) fn exact_ms() -> u64 {
        imp::exact_ms()
    }

    /// The coarse time: never after [`exact_ms`], less than [`lag_ms`] behind it.
    #[inline]
    pub(crate) fn now_ms() -> u64 {
        imp::coarse_ms()
    }

    /// Whether a read at coarse time `now` is before `deadline` (a time of [`exact_ms`]).
    #[inline]
    pub(crate) fn before(now: u64, deadline: u64) -> bool {
        // Input: now ≤ the exact time < now + lag.
        if now.saturating_add(lag_ms()) < deadline {
            return true;
        }
        now < deadline && exactly_before(deadline)
    }

    #[cold]
    #[inline(never)]
    fn exactly_before(deadline: u64) -> bool {
        exact_ms() < deadline
    }

    /// The kernel's coarse clock and its exact clock, on the same base.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mod imp {
        use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

        #[inline]
        fn millis(t: Timespec) -> u64 {
            // Monotonic times are never negative.
            t.tv_sec as u64 * 1_000 + t.tv_nsec as u64 / 1_000_000
        }

        pub(super) fn resolution_ns() -> u64 {
            let res = clock_getres(ClockId::MonotonicCoarse);
            res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64
        }

        pub(super) fn exact_ms() -> u64 {
            millis(clock_gettime(ClockId::Monotonic))
        }

        #[inline]
        pub(super) fn coarse_ms() -> u64 {
            millis(clock_gettime(ClockId::MonotonicCoarse))
        }
    }

    /// Elsewhere, std's monotonic clock for both (no coarse clock to trust).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    mod imp {
        use std::sync::OnceLock;
        use std::time::Instant;

        pub(super) fn resolution_ns() -> u64 {
            0
        }

        pub(super) fn exact_ms() -> u64 {
            static EPOCH: OnceLock<Instant> = OnceLock::new();
            u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
        }

        #[inline]
        pub(super) fn coarse_ms() -> u64 {
            exact_ms()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_ms(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[test]
    fn entry_is_never_returned_after_its_ttl() {
        let l1 = L1::new(100);
        l1.insert(
            "k".into(),
            Entry::new(Arc::new(1u32), Duration::from_millis(30)),
        );
        assert!(l1.get("k").is_some());
        wait_ms(35);
        assert!(l1.get("k").is_none());
        assert_eq!(l1.entry_count(), 0, "the expired entry was dropped");
    }

    #[test]
    fn stale_entry_is_kept_but_not_fresh() {
        let l1 = L1::new(100);
        let entry = Entry::with_stale(
            Arc::new(1u32),
            Duration::from_millis(20),
            Duration::from_secs(60),
        );
        assert!(entry.fresh_until() < entry.keep_until());
        assert!(entry.born <= entry.fresh_until());
        l1.insert("k".into(), entry);
        wait_ms(25);
        assert!(
            l1.get("k").is_none(),
            "past fresh_until it is not a normal hit"
        );
        assert!(
            l1.get_kept("k").is_some(),
            "but it is kept until keep_until"
        );
    }

    #[test]
    fn coarse_time_is_never_ahead_of_the_exact_one_nor_further_behind_than_the_lag() {
        clock::calibrate();
        let lag = clock::lag_ms();
        assert!((1..=100).contains(&lag), "lag {lag} ms");
        let until = std::time::Instant::now() + Duration::from_millis(300);
        let mut reads = 0u32;
        while std::time::Instant::now() < until {
            let before = clock::exact_ms();
            let now = clock::now_ms();
            let after = clock::exact_ms();
            reads += 1;
            assert!(now <= after, "coarse {now} ahead of exact {after}");
            // A read held off the CPU between the two proves nothing about the lag.
            if after == before {
                assert!(
                    after - now < lag,
                    "coarse {now} {lag} ms or more behind {after}"
                );
            }
        }
        assert!(reads > 1_000, "{reads} reads");
        // At the deadline itself, never "before".
        let now = clock::now_ms();
        assert!(!clock::before(now, now));
    }

    #[test]
    fn entry_stays_small() {
        // quick_cache stores it inline in every slot, evicted keys' slots included: the
        // value's 64 bytes and 32 of deadlines and type.
        assert_eq!(std::mem::size_of::<Entry>(), 96);
    }

    #[test]
    fn very_long_ttls_end_early_not_never() {
        let e = Entry::new(Arc::new(()), Duration::from_secs(10 * 365 * 86_400));
        assert_eq!(e.keep_until() - e.born, MAX_L1_LIFE_MS);
    }

    #[test]
    fn keep_is_at_least_fresh() {
        let e = Entry::with_stale(Arc::new(()), Duration::from_secs(5), Duration::ZERO);
        assert_eq!(e.keep_until(), e.fresh_until());
    }

    #[test]
    fn zero_ttl_is_not_stored_and_drops_the_old_value() {
        let l1 = L1::new(100);
        l1.insert(
            "k".into(),
            Entry::new(Arc::new(1u32), Duration::from_secs(60)),
        );
        l1.insert("k".into(), Entry::new(Arc::new(2u32), Duration::ZERO));
        assert!(l1.get("k").is_none());
    }

    #[test]
    fn clear_prefix_drops_only_the_prefix() {
        let l1 = L1::new(100);
        for key in ["a:1", "a:2", "b:1"] {
            l1.insert(
                key.into(),
                Entry::new(Arc::new(0u8), Duration::from_secs(60)),
            );
        }
        l1.clear_prefix("a:".into());
        assert!(l1.get("a:1").is_none() && l1.get("a:2").is_none());
        assert!(l1.get("b:1").is_some());
        l1.clear();
        assert_eq!(l1.entry_count(), 0);
    }

    #[test]
    fn full_l1_drops_expired_entries_without_a_read() {
        let l1 = L1::new(64);
        // More than it holds, so that every shard is full whatever the key hashes.
        for i in 0..256 {
            l1.insert(
                format!("k{i}"),
                Entry::new(Arc::new(i), Duration::from_millis(10)),
            );
        }
        let full = l1.store.len();
        assert!(full >= 60, "the L1 is full: {full}");
        wait_ms(20);
        sweeper::sweep();
        assert_eq!(
            l1.store.len(),
            0,
            "expired entries left before any eviction"
        );
    }

    #[test]
    fn an_evicted_entrys_copy_in_a_front_is_no_longer_served() {
        let l1 = L1::new(64);
        let hour = Duration::from_secs(3_600);
        // A full L1 first: new entries then start on probation, the first to be evicted.
        for i in 0..256 {
            l1.insert(format!("before{i}"), Entry::new(Arc::new(0u32), hour));
        }
        l1.insert("k".into(), Entry::new(Arc::new(1u32), hour));
        let seen = l1.fronts().epochs().snapshot("k");
        let front = l1.fronts().get_or_make::<(u64,), u32>(1).unwrap();
        front.insert(&(&7u64,), 1, u64::MAX / 2, seen);
        assert_eq!(front.get(&(&7u64,), clock::now_ms()), Some(1));
        let mut others = 0;
        while l1.store.peek(&Lookup("k")).is_some() {
            l1.insert(format!("other{others}"), Entry::new(Arc::new(0u32), hour));
            others += 1;
            assert!(others < 100_000, "never evicted");
        }
        assert_eq!(front.get(&(&7u64,), clock::now_ms()), None);
    }

    #[test]
    fn an_entry_a_front_keeps_serving_is_not_evicted_as_unused() {
        let l1 = L1::new(64);
        let hour = Duration::from_secs(3_600);
        l1.insert("hot".into(), Entry::new(Arc::new(1u32), hour));
        // Read once through L1, as the hit that copies it to the front is.
        let seen = l1.fronts().epochs().snapshot("hot");
        assert!(l1.get("hot").is_some());
        let front = l1.fronts().get_or_make::<(u64,), u32>(3).unwrap();
        front.insert(&(&1u64,), 1, u64::MAX / 2, seen);
        // From then on the front serves it, between other keys that L1 reads once each (so
        // that they go to L1's main queue and push its entries out); only when one of them
        // shares its stripe (its insert ends the copy) is it read from L1 again.
        let mut copied_again = 0;
        for i in 0..2_000 {
            let other = format!("other{i}");
            l1.insert(other.clone(), Entry::new(Arc::new(0u32), hour));
            assert!(l1.get(&other).is_some());
            if front.get(&(&1u64,), clock::now_ms()).is_none() {
                copied_again += 1;
                let seen = l1.fronts().epochs().snapshot("hot");
                assert!(l1.get("hot").is_some(), "evicted after {i} other keys");
                front.insert(&(&1u64,), 1, u64::MAX / 2, seen);
            }
        }
        assert!(copied_again < 20, "read from L1 {copied_again} times");
    }

    #[test]
    fn fronts_holding_more_copies_than_l1_has_room_for_drop_the_dead_ones() {
        let l1 = L1::bounded(Bound::Entries(64), 1_000);
        let front = l1.fronts().get_or_make::<(u64,), u64>(2).unwrap();
        for i in 0..200u64 {
            let seen = l1.fronts().epochs().snapshot(&format!("k{i}"));
            front.insert(&(&i,), i, u64::MAX / 2, seen);
        }
        assert_eq!(l1.fronts().held(), 200);
        sweeper::sweep();
        assert_eq!(l1.fronts().held(), 200, "all still live");
        l1.clear_prefix("unrelated:".into());
        sweeper::sweep();
        assert_eq!(l1.fronts().held(), 0, "all dead, so dropped");
    }

    #[test]
    fn a_key_lives_in_one_store_and_every_read_by_key_finds_it() {
        let l1 = L1::new(100);
        let hour = Duration::from_secs(3_600);
        let share = Some(Share {
            id: 7,
            capacity: 10,
        });
        l1.insert("k".into(), Entry::new(Arc::new(1u32), hour));
        l1.insert_for(share, "k".into(), Entry::new(Arc::new(2u32), hour));
        assert_eq!(l1.store.len(), 0, "it left the shared store");
        assert_eq!(l1.get("k").and_then(|e| e.take::<u32>().ok()), Some(2));
        assert!(l1.get_kept("k").is_some());
        let now = clock::now_ms();
        assert!(l1.get_at("k", now).is_none());
        assert!(l1.get_at_for(share, "k", now).is_some());
        // Back to the shared store: it leaves the share.
        l1.insert("k".into(), Entry::new(Arc::new(3u32), hour));
        assert_eq!(l1.share_len(7), 0);
        assert_eq!(l1.get("k").and_then(|e| e.take::<u32>().ok()), Some(3));
        for i in 0..100 {
            l1.insert_for(share, format!("s{i}"), Entry::new(Arc::new(i), hour));
        }
        let held = l1.share_len(7);
        assert!((1..=10).contains(&held), "bounded by its capacity: {held}");
        assert_eq!(l1.entry_count(), held + 1);
        l1.remove("s99");
        assert!(l1.get("s99").is_none());
        l1.clear_share(7);
        assert_eq!(l1.share_len(7), 0);
        assert!(l1.get("k").is_some(), "the shared store keeps its own");
        l1.insert_for(share, "s1".into(), Entry::new(Arc::new(1u32), hour));
        l1.clear();
        assert_eq!(l1.entry_count(), 0);
    }

    #[test]
    fn entry_bound_holds() {
        let l1 = L1::new(1_000);
        for i in 0..10_000 {
            l1.insert(
                format!("k{i}"),
                Entry::new(Arc::new(i), Duration::from_secs(60)),
            );
        }
        assert!(l1.entry_count() <= 1_000);
    }

    #[test]
    fn byte_bound_holds() {
        let weigh: Weigh = Arc::new(|_, value| {
            value
                .downcast_ref::<Vec<u8>>()
                .map_or(1, |bytes| bytes.len() as u64)
        });
        let l1 = L1::bounded(
            Bound::Bytes {
                bytes: 100_000,
                weigh,
                estimated_entries: 100,
            },
            100,
        );
        for i in 0..1_000 {
            l1.insert(
                format!("k{i}"),
                Entry::new(Arc::new(vec![0u8; 1_000]), Duration::from_secs(60)),
            );
        }
        let held = l1.entry_count();
        assert!(held > 0 && held <= 100, "1 kB values in 100 kB: {held}");
    }
}
