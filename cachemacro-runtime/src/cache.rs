//! `Cache`: orchestrates L1, single flight and (when configured) L2 and the invalidation bus.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::bus::{Bus, Message};
use crate::codec::{self, Codec, CodecError};
use crate::envelope;
use crate::flight::Flights;
use crate::key::{Layout, Place};
use crate::l1::{Entry, L1};
use crate::l2::L2;
use crate::output::{Always, CacheValue, OkOnly};
use crate::scope::Scope;
use crate::Error;

/// A two-level cache: a bounded in-process L1 and, when configured, a shared Redis L2 with
/// an invalidation bus.
///
/// `Cache` is a handle: cloning it is cheap and every clone uses the same storage.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
/// use std::time::Duration;
/// use cachemacro_runtime::Cache;
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
    pub(crate) codec: Arc<dyn Codec>,
    pub(crate) max_value_size: usize,
    /// How long a removal's tombstone keeps loads that began before it from storing.
    pub(crate) tombstone_ttl: Duration,
    /// This instance's id on the bus and in tombstones.
    pub(crate) instance: u64,
    /// The fraction of a loaded entry's TTL that may be taken off at random.
    pub(crate) ttl_jitter: f64,
    /// Whether reads use Redis right now.
    pub(crate) breaker: crate::breaker::Breaker,
    /// What the cache did, for [`Cache::stats`].
    pub(crate) counters: crate::stats::Counters,
    /// Group versions, when there is no Redis to hold them.
    pub(crate) local_versions: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Tag -> storage keys, when there is no Redis to hold them.
    pub(crate) local_tags:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<String>>>,
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
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The TTL used when none is given.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
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
        self.read_through::<Always, T, _>(skey, ttl.into(), async move { loader().await })
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
        self.read_through::<OkOnly, Result<T, E>, _>(
            skey,
            ttl.into(),
            async move { loader().await },
        )
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

    /// Whether this instance is subscribed to the invalidation bus right now: always `true`
    /// without Redis. While it is `false`, this instance cannot hear other instances'
    /// invalidations; it clears its L1 when the bus drops and again when it is back. Use it
    /// in a readiness probe.
    pub fn bus_connected(&self) -> bool {
        self.inner.bus.as_ref().is_none_or(Bus::is_connected)
    }

    /// Whether this instance is using Redis for reads right now: `false` while the circuit
    /// breaker is open after repeated Redis failures (reads then go straight to the
    /// functions until the cool-down ends), and always `true` without Redis. For health
    /// checks, with [`bus_connected`](Self::bus_connected).
    pub fn redis_available(&self) -> bool {
        self.inner.l2.is_none() || self.inner.breaker.is_closed()
    }

    /// Counters of what this cache did since it was built (hits, loads, Redis errors,
    /// invalidations received...), for metrics.
    pub fn stats(&self) -> crate::Stats {
        let mut stats = self.inner.counters.snapshot();
        stats.redis_errors = self.inner.breaker.errors();
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
        match place {
            Place::Unscoped => {
                let mut out = String::with_capacity(self.inner.unscoped_prefix.len() + extra);
                out.push_str(&self.inner.unscoped_prefix);
                out
            }
            Place::Scope(_) => {
                let mut out = String::with_capacity(self.inner.unscoped_prefix.len() + 16 + extra);
                self.inner.layout.write_prefix(place, &mut out);
                out
            }
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

    pub(crate) fn ttl_or_default(&self, ttl: Option<Duration>) -> Duration {
        ttl.unwrap_or(self.inner.default_ttl)
    }

    /// The fingerprint stored values of `T` carry.
    pub(crate) fn fingerprint<T>(&self, version: u32) -> u64 {
        envelope::fingerprint(std::any::type_name::<T>(), version, self.inner.codec.name())
    }

    /// `value` in its envelope, ready for L2.
    pub(crate) fn encode<T: CacheValue>(
        &self,
        skey: &str,
        value: &T,
        fingerprint: u64,
        ttl: Duration,
    ) -> Result<Vec<u8>, Error> {
        let mut bytes = envelope::value_header(fingerprint, ttl, 64);
        let limit = self.inner.max_value_size;
        let too_large = |size| Error::TooLarge {
            key: skey.to_owned(),
            size,
            limit,
        };
        match codec::encode(&*self.inner.codec, value, &mut bytes) {
            Ok(()) if bytes.len() > limit => Err(too_large(bytes.len())),
            Ok(()) => Ok(bytes),
            Err(CodecError::TooLarge { .. }) => Err(too_large(limit + 1)),
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
        let ttl = self.ttl_or_default(ttl);
        let inner = &self.inner;
        let Some(l2) = &inner.l2 else {
            inner
                .flights
                .insert(&inner.l1, skey, Entry::new(Arc::new(value), ttl));
            return Ok(());
        };
        let stored = match self.encode(&skey, &value, self.fingerprint::<T>(0), ttl) {
            Ok(bytes) => self.write_l2(l2, &skey, &bytes, ttl, "write").await,
            Err(err) => Err(err),
        };
        match stored {
            Ok(()) => {
                inner
                    .flights
                    .insert(&inner.l1, skey, Entry::new(Arc::new(value), ttl));
                Ok(())
            }
            Err(err) => {
                // Keep no local copy that the other instances do not share.
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
        let result = match &self.inner.bus {
            Some(bus) => {
                let message = bus.payload(&Message::Remove(skey.to_owned()));
                l2.set_and_publish(skey, bytes, ttl, bus.channel(), &message)
                    .await
            }
            None => l2.set(skey, bytes, ttl).await,
        };
        self.inner.breaker.record(&result);
        result.map_err(|e| Error::redis(operation, e))
    }

    pub(crate) async fn remove_at(&self, skey: &str) -> Result<(), Error> {
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
        self.clear_memory_at(prefix);
        let message = if prefix.is_empty() {
            Message::Clear
        } else {
            Message::ClearPrefix(prefix.to_owned())
        };
        self.publish(message).await
    }

    async fn publish(&self, message: Message) -> Result<(), Error> {
        match &self.inner.bus {
            Some(bus) => bus
                .publish(&message)
                .await
                .map_err(|e| Error::redis("publish", e)),
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
