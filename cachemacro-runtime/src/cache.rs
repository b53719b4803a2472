//! `Cache`: orchestrates L1, single flight and (when configured) L2 and the invalidation bus.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::bus::bands::{self, Bands};
use crate::bus::{Bus, Message, Peer};
use crate::codec::{self, CodecError};
use crate::envelope;
use crate::flight::Flights;
use crate::key::{Layout, Place};
use crate::l1::{Entry, L1};
use crate::l2::L2;
use crate::output::{Always, CacheValue, OkOnly};
use crate::read::Share;
use crate::scope::Scope;
use crate::Error;

/// A two-level cache: a bounded in-process L1 and, when configured, a shared Redis L2 with
/// an invalidation bus.
///
/// `Cache` is a handle: cloning it is cheap and every clone uses the same storage.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// use std::time::Duration;
/// use cachemacro::Cache;
///
/// let cache = Cache::builder().namespace("shop").build().await?;
/// cache.set("user:1", "Ada".to_string(), Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("user:1").await?, Some("Ada".to_string()));
///
/// cache.remove("user:1").await?;
/// assert_eq!(cache.get::<String>("user:1").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    /// The storage prefix of unscoped keys, computed once.
    pub(crate) unscoped_prefix: String,
    pub(crate) default_ttl: Duration,
    pub(crate) l1: L1,
    pub(crate) flights: Flights,
    /// The shared tier, when Redis is configured.
    pub(crate) l2: Option<L2>,
    /// The invalidation bus, when Redis is configured.
    pub(crate) bus: Option<Bus>,
    pub(crate) formats: crate::codec::Formats,
    /// What is compressed on its way to L2.
    pub(crate) compressor: crate::compress::Compressor,
    pub(crate) max_value_size: usize,
    /// How long a removal's tombstone keeps loads that began before it from storing.
    pub(crate) tombstone_ttl: Duration,
    /// This instance's id on the bus and in tombstones.
    pub(crate) instance: u64,
    /// The fraction of a loaded entry's TTL that may be taken off at random.
    pub(crate) ttl_jitter: f64,
    /// What the cache did, for [`Cache::stats`].
    pub(crate) counters: crate::stats::Counters,
    /// The defaults of what loads do when their source is slow or failing.
    pub(crate) defaults: crate::resilience::Defaults,
    /// The longest `stale_for` of the loads so far, in ms: how long past its TTL a value
    /// written with [`Cache::set`] is kept, so that the function reading it can serve it
    /// stale (see [`Cache::set_keep`]).
    pub(crate) stale_window_ms: std::sync::atomic::AtomicU64,
    /// The tag invalidations applied lately, for loads whose body chose tags.
    pub(crate) tag_log: crate::tag_log::TagLog,
    /// The loads waiting for another instance to load their key.
    pub(crate) waiters: crate::resilience::Waiters,
    /// Group versions, as this process knows them.
    pub(crate) versions: crate::versions::Versions,
    /// Tag -> storage keys, when there is no Redis to hold them.
    pub(crate) local_tags: crate::tags::LocalTags,
    /// Refreshes and reloads running in the background.
    pub(crate) background: Arc<crate::background::Background>,
    /// How long [`Cache::shutdown`] waits for the background work.
    pub(crate) shutdown_timeout: Duration,
    /// Instances of 0.1 may share the namespace (see `CacheBuilder::compat_0_1`).
    pub(crate) compat_0_1: bool,
    /// Set by [`Cache::shutdown`]: calls then bypass the cache.
    pub(crate) shut: std::sync::atomic::AtomicBool,
}

/// What the invalidation bus hears, applied to this process's cache.
impl Peer for Inner {
    fn heard(self: Arc<Self>, message: Message, count: bool) {
        if count {
            crate::stats::bump(&self.counters.invalidations_received);
        }
        let cache = Cache::from_arc(self);
        match message {
            Message::Remove(key) => cache.remove_local_at(&key),
            Message::Clear => cache.clear_memory_at(""),
            Message::ClearPrefix(prefix) => cache.clear_memory_at(&prefix),
            Message::Version { group, version } => {
                cache.inner.versions.raise(&group, version);
            }
            Message::Tag(tag) => {
                cache.remove_local_tag(&tag);
            }
            Message::Filled(key) => cache.inner.waiters.wake(&key),
        }
    }

    fn flush(self: Arc<Self>) {
        // Bumps may have been missed too: versions are read from Redis again.
        self.versions.doubt_all();
        Cache::from_arc(self).clear_memory_at("");
    }

    fn flush_bands(self: Arc<Self>, bands: Bands) {
        let Some(hearing) = self.bus.as_ref().map(Bus::hearing) else {
            return;
        };
        // `ver` messages land on any band: versions are read from Redis again.
        self.versions.doubt_all();
        // The entries registered under a tag of these bands: the peers drop them from
        // their own registries when the tag is invalidated, a message these bands carry.
        let tagged = self
            .local_tags
            .keys_where(|tag| bands::bits_of([tag]) & bands != 0);
        for key in &tagged {
            hearing.taint(key, bands);
        }
        let hit = |key: &str| hearing.carried_by(key, bands) || tagged.contains(key);
        // Flights first, as `clear_memory_at` does: a load that lands later stays out.
        self.flights.invalidate_where(hit);
        self.l1.clear_where(hit);
    }

    fn disconnected(&self) {
        crate::stats::bump(&self.counters.bus_disconnects);
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.layout.root())
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub(crate) fn from_arc(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }

    /// An in-process cache with the default settings and no Redis: what `#[cached]`
    /// functions use until [`set_global`](crate::set_global) is called.
    pub fn in_memory() -> Cache {
        CacheBuilder::new().build_local()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        let cache = Self {
            inner: Arc::new(inner),
        };
        #[cfg(feature = "metrics")]
        crate::metrics::watch(&cache);
        cache
    }

    /// The namespace's prefix of every key in Redis (`"app:"`), the `namespace` label of
    /// the cache-wide metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn namespace(&self) -> &str {
        self.inner.layout.root()
    }

    /// The TTL used when none is given.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// How long past its TTL this process keeps a value written with [`set`](Self::set) in
    /// memory, to be served stale by a cached function with `stale_for` whose reload
    /// fails: the cache's `stale_for`, or the longest `stale_for` of the functions that
    /// loaded through this cache so far, whichever is longer (at most
    /// [`MAX_TTL`](crate::MAX_TTL)). A function with a `stale_for` longer than the cache's
    /// covers values set after its first load. In Redis, for the other instances, the value
    /// is kept for the cache's own `stale_for` only
    /// ([`CacheBuilder::stale_for`](crate::CacheBuilder::stale_for)): a window learned from a
    /// function would otherwise keep every value set (a counter, a session) that long.
    pub fn set_keep(&self) -> Duration {
        let learned = self
            .inner
            .stale_window_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        self.inner
            .defaults
            .stale_for
            .max(Duration::from_millis(learned))
            .min(crate::MAX_TTL)
    }

    /// Widens [`set_keep`](Self::set_keep) to `stale_for`, a load's window.
    #[inline]
    pub(crate) fn learn_stale_window(&self, stale_for: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = u64::try_from(stale_for.as_millis()).unwrap_or(u64::MAX);
        // Read first: the window is learned once per function, not written per load.
        if self.inner.stale_window_ms.load(Relaxed) < ms {
            self.inner.stale_window_ms.fetch_max(ms, Relaxed);
        }
    }

    /// A view of this cache whose keys live apart from unscoped keys and from every other
    /// scope, whatever the names. `scope.clear()` reaches only the scope's entries.
    pub fn scope(&self, name: &str) -> Scope {
        Scope::new(self.clone(), name)
    }

    /// Reads `key`: L1, then L2. `None` when absent, expired, or held as another type (a
    /// value written by a `#[cached(version = N)]` function counts as another type unless
    /// N is 0). Fails with [`Error::Redis`] or [`Error::Unavailable`] when Redis cannot be
    /// read; a `#[cached]` function falls back to its body instead.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get_at(&self.storage_key(Place::Unscoped, key)).await
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL), replacing any value
    /// and any load in flight for that key.
    ///
    /// A cached function with `stale_for` serves it stale, as a value it loaded, when a
    /// reload fails after `ttl`: this process keeps it past its TTL for the cache's
    /// `stale_for` or, if longer, the longest `stale_for` of the functions that loaded
    /// through this cache so far ([`set_keep`](Self::set_keep)); Redis keeps it for the
    /// cache's `stale_for` ([`CacheBuilder::stale_for`](crate::CacheBuilder::stale_for)), so
    /// that the other instances can serve it too. A read that has no stale window of its
    /// own (`get`, a function without `stale_for`) still ends it at `ttl`; an invalidation
    /// removes it as any value.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
    /// use std::time::Duration;
    /// use cachemacro::Cache;
    ///
    /// let cache = Cache::builder().stale_for(Duration::from_secs(3600)).build().await?;
    /// cache.set("rate:eur", 1.08f64, Duration::from_millis(10)).await?;
    /// assert_eq!(cache.set_keep(), Duration::from_secs(3600));
    /// tokio::time::sleep(Duration::from_millis(20)).await;
    /// // Expired for `get`; kept an hour for a function whose reload fails.
    /// assert_eq!(cache.get::<f64>("rate:eur").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: T,
        ttl: impl Into<Option<Duration>>,
    ) -> Result<(), Error> {
        let skey = self.storage_key(Place::Unscoped, key);
        self.set_at(skey, value, ttl.into()).await
    }

    /// Returns the value under `key`, or runs `loader`, caches its value for `ttl` and returns
    /// it. Concurrent callers of one cold key run `loader` once.
    pub async fn get_or_set<T, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Option<Duration>>,
        loader: F,
    ) -> T
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let skey = self.storage_key(Place::Unscoped, key);
        self.read_through::<Always, T, _>(skey, ttl.into(), Some(Share::cloning()), async move {
            loader().await
        })
        .await
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible loader: an `Err` is returned and
    /// not cached.
    pub async fn try_get_or_set<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Option<Duration>>,
        loader: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skey = self.storage_key(Place::Unscoped, key);
        self.read_through::<OkOnly, Result<T, E>, _>(skey, ttl.into(), None, async move {
            loader().await
        })
        .await
    }

    /// Removes `key` everywhere: this process's L1, L2, and every peer's L1.
    ///
    /// Returns an error when L2 or the bus could not be reached: the local copy is gone, but
    /// other instances may still serve the old value until its TTL ends.
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        self.remove_at(&self.storage_key(Place::Unscoped, key))
            .await
    }

    /// Removes this process's L1 copy of `key` only: L2 and peers are untouched.
    pub fn remove_local(&self, key: &str) {
        self.remove_local_at(&self.storage_key(Place::Unscoped, key));
    }

    /// Clears this process's L1 and tells every peer to clear its own. It does not delete
    /// L2 entries: they end with their TTL, or are overwritten by the next write.
    pub async fn clear(&self) -> Result<(), Error> {
        self.clear_at("").await
    }

    /// Clears this process's L1 only.
    pub fn clear_memory(&self) {
        self.clear_memory_at("");
    }

    /// Whether this instance is subscribed to every channel of the invalidation bus right
    /// now: always `true` without Redis. While it is `false`, this instance cannot hear
    /// (some of) the other instances' invalidations; it drops the L1 entries they could
    /// concern when a channel drops and again when it is back, and reads them from Redis
    /// meanwhile (on the sharded bus of a cluster, only the entries of the lost channels:
    /// see [`BusChannels::Sharded`](crate::BusChannels::Sharded)). Use it in a readiness
    /// probe.
    pub fn bus_connected(&self) -> bool {
        self.inner.bus.as_ref().is_none_or(Bus::is_connected)
    }

    /// Whether L1 may answer reads now: not while this instance cannot hear the bus but
    /// Redis takes invalidations, since another instance's could then land unheard (on a
    /// cluster, the channels of a primary that died; a subscription cut on its own). Reads
    /// then go to Redis, which holds every invalidation's tombstone. While Redis is out of
    /// reach as well, no other instance's invalidation returns Ok, and L1 carries the reads
    /// as before. The bus clears L1 when it is back, and with it what was kept meanwhile.
    #[inline]
    pub(crate) fn l1_trusted(&self) -> bool {
        self.bus_connected() || !self.redis_available()
    }

    /// Whether L1 may answer a read of `skey` now: as [`l1_trusted`](Self::l1_trusted),
    /// but on the sharded bus only the channels that could carry an invalidation of
    /// `skey` need to be heard (`bus::bands`): a dead primary costs L1 the keys of its
    /// channels' bands, not all of them.
    #[inline]
    pub(crate) fn l1_trusted_for(&self, skey: &str) -> bool {
        self.inner
            .bus
            .as_ref()
            .is_none_or(|bus| bus.hearing().hears(skey))
            || !self.redis_available()
    }

    /// Whether this instance is using Redis right now: `false` while its connection is
    /// down, or in doubt after a call failed (reads then go straight to the functions, and
    /// the connection is checked and remade in the background), and always `true` without
    /// Redis. For health checks, with [`bus_connected`](Self::bus_connected).
    pub fn redis_available(&self) -> bool {
        self.inner.l2.as_ref().is_none_or(|l2| l2.link().is_up())
    }

    /// Shuts the cache down, for a graceful exit: waits for its background work (refreshes
    /// ahead of expiry, reloads that went on past a soft timeout) to store what it loads,
    /// leaves the invalidation bus, closes the Redis connection and empties L1.
    ///
    /// The wait is bounded by [`shutdown_timeout`](crate::CacheBuilder::shutdown_timeout)
    /// (default [`DEFAULT_SHUTDOWN_TIMEOUT`](crate::DEFAULT_SHUTDOWN_TIMEOUT)): background
    /// work still running then is abandoned where it stands and stores nothing (logged with
    /// how many were abandoned), so a reload waiting on a source that hangs cannot hold up
    /// a deploy.
    ///
    /// From the moment it is called, calls fail open: `#[cached]` functions and
    /// `get_or_set` run their bodies without caching, [`get`](Self::get) returns `None` and
    /// [`set`](Self::set) stores nothing. Invalidations that need Redis return
    /// [`Error::Unavailable`](crate::Error::Unavailable): this instance can no longer reach
    /// the others, so call `shutdown` after the server has stopped taking requests.
    /// Calling it again waits for the background work again and does nothing else.
    ///
    /// ```no_run
    /// # async fn serve() {}
    /// # #[tokio::main] async fn main() -> Result<(), cachemacro::Error> {
    /// let cache = cachemacro::Cache::builder().redis("redis://127.0.0.1:6379").build().await?;
    /// cachemacro::set_global(cache.clone())?;
    /// serve().await; // until SIGTERM, then drain the requests in flight
    /// cache.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let first = !inner.shut.swap(true, std::sync::atomic::Ordering::SeqCst);
        let bound = inner.shutdown_timeout;
        if tokio::time::timeout(bound, inner.background.idle())
            .await
            .is_err()
        {
            let abandoned = inner.background.abandon();
            tracing::warn!(
                target: "cachemacro",
                abandoned,
                timeout = ?bound,
                "cache: shutdown abandoned background loads still running after shutdown_timeout; they store nothing"
            );
            // Woken, they drop their work at once; a task blocking its thread is not
            // waited for past this (the connection closes below: it stores nothing).
            let _ = tokio::time::timeout(Duration::from_millis(100), inner.background.idle()).await;
        }
        if !first {
            return;
        }
        if let Some(bus) = &inner.bus {
            bus.close();
        }
        if let Some(l2) = &inner.l2 {
            l2.link().close();
        }
        inner.l1.clear();
        tracing::debug!(target: "cachemacro", "cache: shut down");
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counters of what this cache did since it was built (hits, loads, Redis errors,
    /// invalidations received...), for metrics.
    pub fn stats(&self) -> crate::Stats {
        let mut stats = self.counters();
        stats.functions = crate::site::functions();
        stats
    }

    /// [`stats`](Self::stats) without the per-function figures.
    pub(crate) fn counters(&self) -> crate::Stats {
        let mut stats = self.inner.counters.snapshot();
        stats.redis_errors = self.inner.l2.as_ref().map_or(0, |l2| l2.link().errors());
        (stats.l1_entries, stats.l1_weight, stats.l1_evictions) = self.inner.l1.usage();
        stats
    }

    /// How many entries this process's L1 holds, for metrics. It first applies pending
    /// evictions and invalidations, so call it from a metrics task, not on a hot path.
    pub fn local_entry_count(&self) -> u64 {
        self.inner.l1.entry_count()
    }

    /// Whether this process's L1 holds `key` (for diagnostics and tests).
    pub fn contains_local(&self, key: &str) -> bool {
        self.contains_local_at(&self.storage_key(Place::Unscoped, key))
    }

    // ---- the storage-key level, shared with `Scope` and the generated code ----

    /// The storage key of `key` in `place` (see [`crate::key`] for the layout).
    pub(crate) fn storage_key(&self, place: Place<'_>, key: &str) -> String {
        let mut out = self.key_buffer(place, key.len());
        out.push_str(key);
        out
    }

    /// An empty storage key for `place`, with room for `extra` more bytes of key.
    pub(crate) fn key_buffer(&self, place: Place<'_>, extra: usize) -> String {
        let scope = match place {
            Place::Unscoped => 0,
            Place::Scope(_) => 16,
        };
        let mut out = String::with_capacity(self.inner.unscoped_prefix.len() + scope + extra);
        self.write_key_prefix(place, &mut out);
        out
    }

    /// Appends the prefix of the keys of `place` to `out`: for unscoped keys, one copy of
    /// a string made once.
    #[inline]
    pub(crate) fn write_key_prefix(&self, place: Place<'_>, out: &mut String) {
        match place {
            Place::Unscoped => out.push_str(&self.inner.unscoped_prefix),
            Place::Scope(_) => self.inner.layout.write_prefix(place, out),
        }
    }

    pub(crate) fn prefix(&self, place: Place<'_>) -> String {
        self.inner.layout.prefix(place)
    }

    /// `ttl` shortened by a random fraction of up to `ttl_jitter`, so that entries loaded
    /// together do not all expire together.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        let jitter = self.inner.ttl_jitter;
        if jitter <= 0.0 {
            return ttl;
        }
        thread_local! {
            static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
                use std::hash::BuildHasher;
                std::collections::hash_map::RandomState::new().hash_one(0u8) | 1
            });
        }
        // xorshift64*: plenty for spreading expiries.
        let random = STATE.with(|state| {
            let mut x = state.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        });
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        ttl.mul_f64(1.0 - jitter * fraction)
    }

    /// The TTL of an entry: `ttl`, or the cache's default; at most [`MAX_TTL`](crate::MAX_TTL).
    pub(crate) fn ttl_or_default(&self, ttl: Option<Duration>) -> Duration {
        ttl.unwrap_or(self.inner.default_ttl).min(crate::MAX_TTL)
    }

    /// `value` in its envelope, ready for L2 (`version`: the type's schema version).
    pub(crate) fn encode<T: CacheValue>(
        &self,
        skey: &str,
        value: &T,
        version: u32,
        life: envelope::Life,
        timed: bool,
    ) -> Result<Vec<u8>, Error> {
        let mut bytes = envelope::value_header(life, timed, 64);
        let header = bytes.len();
        let limit = self.inner.max_value_size;
        let too_large = |size| Error::TooLarge {
            key: skey.to_owned(),
            size,
            limit,
        };
        let formats = &self.inner.formats;
        match formats.encode(value, version, &mut bytes) {
            Ok(_) if bytes.len() > limit => Err(too_large(bytes.len())),
            Ok(fingerprint) => match self.inner.compressor.pack(&bytes[header..]) {
                Some((algorithm, packed)) => Ok(envelope::compressed_value(
                    life,
                    fingerprint,
                    algorithm,
                    bytes.len() - header,
                    &packed,
                )),
                None => {
                    envelope::set_fingerprint(&mut bytes, fingerprint);
                    Ok(bytes)
                }
            },
            // The codec stopped at its limit: measure what the whole value would take.
            Err(CodecError::TooLarge { .. }) => Err(too_large(
                header
                    + codec::encoded_size(formats.primary(), value).unwrap_or(limit + 1 - header),
            )),
            Err(CodecError::Other(reason)) => Err(Error::Encode {
                key: skey.to_owned(),
                reason,
            }),
        }
    }

    pub(crate) async fn set_at<T: CacheValue>(
        &self,
        skey: String,
        value: T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if self.is_shut_down() {
            return Ok(());
        }
        let ttl = self.ttl_or_default(ttl);
        // Kept past its TTL for the stale window of the functions that may read it (each
        // reader serves it stale only within its own `stale_for`): in this process's L1 for
        // the longest it knows, bounded by L1's capacity; in Redis for the cache's own
        // `stale_for` only, which the application chose for every value it shares.
        let keep = ttl.saturating_add(self.set_keep());
        let shared_keep = ttl.saturating_add(self.inner.defaults.stale_for.min(crate::MAX_TTL));
        let entry = |value| Entry::with_stale(Arc::new(value), ttl, keep);
        let inner = &self.inner;
        // A flight of its own: a load in flight for the key (which read before this write)
        // goes stale, and a `remove` that comes while this writes Redis keeps this value
        // out of L1.
        let leader = inner.flights.lead_exclusive(&skey);
        let Some(l2) = &inner.l2 else {
            leader.land(&inner.l1, entry(value), true);
            return Ok(());
        };
        // Format 1, as before: its freshness is all a reader needs to serve it stale, and
        // 0.1 instances read it.
        let life = envelope::Life::starting_now(ttl);
        let (bytes, shared) = match self.encode(&skey, &value, 0, life, false) {
            Ok(bytes) => (bytes, Ok(())),
            // Too large (or not encodable) for Redis: Redis gets a tombstone instead, so that
            // no instance keeps serving the old value, and this process alone keeps the new
            // one.
            Err(err) => (envelope::tombstone(inner.instance), Err(err)),
        };
        let stored_for = if shared.is_ok() {
            shared_keep
        } else {
            inner.tombstone_ttl
        };
        match self.write_l2(l2, &skey, &bytes, stored_for, "write").await {
            Ok(()) => {
                leader.land(&inner.l1, entry(value), true);
                shared
            }
            Err(err) => {
                // Keep no local copy that the other instances do not share.
                leader.fail(None);
                self.remove_local_at(&skey);
                Err(err)
            }
        }
    }

    /// Writes `bytes` under `skey` in L2 and tells the peers to drop their copy, in one
    /// round trip when the bus is on.
    async fn write_l2(
        &self,
        l2: &L2,
        skey: &str,
        bytes: &[u8],
        ttl: Duration,
        operation: &'static str,
    ) -> Result<(), Error> {
        let message = self.inner.bus.as_ref().map(|bus| {
            (
                bus.channel(),
                bus.payload(&Message::Remove(skey.to_owned())),
            )
        });
        l2.write(
            skey,
            bytes,
            ttl,
            message.as_ref().map(|(c, m)| (*c, m.as_str())),
        )
        .await
        .map_err(|f| Error::from_fault(operation, f))
    }

    pub(crate) async fn remove_at(&self, skey: &str) -> Result<(), Error> {
        tracing::debug!(target: "cachemacro", key = %skey, "invalidation: remove");
        let Some(l2) = &self.inner.l2 else {
            self.remove_local_at(skey);
            return Ok(());
        };
        // L2 first: once the local copy is gone, a local load must not find the old value
        // in L2. The tombstone also fails the fill of any load that began before it (here
        // or on another instance), and the peers drop their copies when the message lands.
        let tombstone = envelope::tombstone(self.inner.instance);
        let result = self
            .write_l2(l2, skey, &tombstone, self.inner.tombstone_ttl, "remove")
            .await;
        self.remove_local_at(skey);
        result
    }

    pub(crate) async fn clear_at(&self, prefix: &str) -> Result<(), Error> {
        tracing::debug!(target: "cachemacro", %prefix, "invalidation: clear");
        self.clear_memory_at(prefix);
        let message = if prefix.is_empty() {
            Message::Clear
        } else {
            Message::ClearPrefix(prefix.to_owned())
        };
        self.publish(message).await
    }

    pub(crate) async fn publish(&self, message: Message) -> Result<(), Error> {
        match &self.inner.bus {
            Some(bus) => bus
                .publish(&message)
                .await
                .map_err(|f| Error::from_fault("publish", f)),
            None => Ok(()),
        }
    }

    pub(crate) fn remove_local_at(&self, skey: &str) {
        // Flights first: a load that lands after this point sees the mark and stays out.
        self.inner.flights.invalidate(skey);
        self.inner.l1.remove(skey);
    }

    pub(crate) fn clear_memory_at(&self, prefix: &str) {
        let prefix = if prefix.is_empty() {
            self.inner.layout.root()
        } else {
            prefix
        };
        self.inner.flights.invalidate_prefix(prefix);
        if prefix == self.inner.layout.root() {
            self.inner.l1.clear();
        } else {
            self.inner.l1.clear_prefix(prefix.to_owned());
        }
    }

    pub(crate) fn contains_local_at(&self, skey: &str) -> bool {
        self.inner.l1.get(skey).is_some()
    }
}
