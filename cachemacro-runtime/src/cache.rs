//! `Cache`: orchestrates L1, single flight and (when configured) L2 and the invalidation bus.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::flight::{Flights, Role};
use crate::key::{Layout, Place};
use crate::l1::{Entry, L1};
use crate::output::{Always, CacheValue, Mode, OkOnly};
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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    /// The storage prefix of unscoped keys, computed once.
    pub(crate) unscoped_prefix: String,
    pub(crate) default_ttl: Duration,
    pub(crate) l1: L1,
    pub(crate) flights: Flights,
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

    /// Reads `key`: L1, then L2. `None` when absent, expired, or held as another type.
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
        self.clear_memory();
        Ok(())
    }

    /// Clears this process's L1 only.
    pub fn clear_memory(&self) {
        self.clear_memory_at("");
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
                let mut out = self.inner.layout.prefix(place);
                out.reserve(extra);
                out
            }
        }
    }

    pub(crate) fn prefix(&self, place: Place<'_>) -> String {
        self.inner.layout.prefix(place)
    }

    fn ttl_or_default(&self, ttl: Option<Duration>) -> Duration {
        ttl.unwrap_or(self.inner.default_ttl)
    }

    pub(crate) async fn get_at<T: CacheValue>(&self, skey: &str) -> Result<Option<T>, Error> {
        Ok(self.l1_get::<T>(skey))
    }

    pub(crate) async fn set_at<T: CacheValue>(
        &self,
        skey: String,
        value: T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let ttl = self.ttl_or_default(ttl);
        let inner = &self.inner;
        inner
            .flights
            .insert(&inner.l1, skey, Entry::new(Arc::new(value), ttl));
        Ok(())
    }

    pub(crate) async fn remove_at(&self, skey: &str) -> Result<(), Error> {
        self.remove_local_at(skey);
        Ok(())
    }

    pub(crate) fn remove_local_at(&self, skey: &str) {
        // Flights first: a load that lands after this point sees the mark and stays out.
        self.inner.flights.invalidate(skey);
        self.inner.l1.remove(skey);
    }

    pub(crate) fn clear_memory_at(&self, prefix: &str) {
        self.inner.flights.invalidate_prefix(prefix);
        if prefix.is_empty() {
            self.inner.l1.clear();
        } else {
            self.inner.l1.clear_prefix(prefix.to_owned());
        }
    }

    pub(crate) fn contains_local_at(&self, skey: &str) -> bool {
        self.inner.l1.get(skey).is_some()
    }

    /// The L1 value under `skey` if it is a `T`.
    #[inline]
    fn l1_get<T: CacheValue>(&self, skey: &str) -> Option<T> {
        let value = self.inner.l1.get(skey)?.downcast::<T>()?;
        Some(T::clone(&value))
    }

    /// The read path of `#[cached]` and `get_or_set`: L1, then one load per key at a time.
    pub(crate) async fn read_through<M, R, F>(
        &self,
        skey: String,
        ttl: Option<Duration>,
        fut: F,
    ) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        if let Some(value) = self.l1_get::<M::Value>(&skey) {
            return M::wrap(value);
        }
        self.load::<M, R, F>(skey, ttl, fut).await
    }

    /// The miss path: join or lead the flight for `skey`.
    async fn load<M, R, F>(&self, skey: String, ttl: Option<Duration>, fut: F) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        let ttl = self.ttl_or_default(ttl);
        loop {
            match self.inner.flights.join(&skey) {
                Role::Follower(follower) => {
                    if let Some(value) = follower
                        .wait()
                        .await
                        .and_then(|entry| entry.downcast::<M::Value>())
                    {
                        return M::wrap(M::Value::clone(&value));
                    }
                    // The leader failed, was cancelled, or loaded another type: look again.
                    if let Some(value) = self.l1_get::<M::Value>(&skey) {
                        return M::wrap(value);
                    }
                }
                Role::Leader(leader) => {
                    tracing::debug!(key = %skey, "cache miss: loading");
                    let r = fut.await;
                    let entry = M::split(&r).map(|value| Entry::new(Arc::new(value), ttl));
                    leader.land(&self.inner.l1, entry);
                    return r;
                }
            }
        }
    }
}
