//! `Scope`: a named group of keys inside a [`Cache`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::key::Place;
use crate::output::{Always, CacheValue, OkOnly};
use crate::Error;

/// A named group of keys. A scope's keys never collide with another scope's or with
/// unscoped keys, and [`Scope::clear`] drops only this scope's entries.
///
/// `#[cached(scope = "users", ...)]` stores its entries in the scope of that name.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// use cachemacro::Cache;
///
/// let cache = Cache::in_memory();
/// let users = cache.scope("users");
/// users.set("1", "Ada".to_string(), None).await?;
/// cache.set("1", "unscoped".to_string(), None).await?;
///
/// users.clear().await?;
/// assert_eq!(users.get::<String>("1").await?, None);
/// assert_eq!(cache.get::<String>("1").await?, Some("unscoped".to_string()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Scope {
    cache: Cache,
    name: Arc<str>,
}

impl Scope {
    pub(crate) fn new(cache: Cache, name: &str) -> Self {
        Self {
            cache,
            name: name.into(),
        }
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn place(&self) -> Place<'_> {
        Place::Scope(&self.name)
    }

    fn storage_key(&self, key: &str) -> String {
        self.cache.storage_key(self.place(), key)
    }

    /// Reads `key` in this scope. See [`Cache::get`].
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        self.cache.get_at(&self.storage_key(key)).await
    }

    /// Stores `value` under `key` in this scope. See [`Cache::set`].
    pub async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: T,
        ttl: impl Into<Option<Duration>>,
    ) -> Result<(), Error> {
        self.cache
            .set_at(self.storage_key(key), value, ttl.into())
            .await
    }

    /// Returns the value under `key` in this scope, or loads it. See [`Cache::get_or_set`].
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
        self.cache
            .read_through::<Always, T, _>(
                self.storage_key(key),
                ttl.into(),
                Some(crate::read::Share::cloning()),
                async move { loader().await },
            )
            .await
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible loader. See
    /// [`Cache::try_get_or_set`].
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
        self.cache
            .read_through::<OkOnly, Result<T, E>, _>(
                self.storage_key(key),
                ttl.into(),
                None,
                async move { loader().await },
            )
            .await
    }

    /// Removes `key` from this scope everywhere. See [`Cache::remove`].
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        self.cache.remove_at(&self.storage_key(key)).await
    }

    /// Removes this process's copy of `key` only. See [`Cache::remove_local`].
    pub fn remove_local(&self, key: &str) {
        self.cache.remove_local_at(&self.storage_key(key));
    }

    /// Clears this scope in this process's L1 and in every peer's. L2 entries end with their
    /// TTL. See [`Cache::clear`].
    pub async fn clear(&self) -> Result<(), Error> {
        self.cache.clear_at(&self.cache.prefix(self.place())).await
    }

    /// Removes this scope's entries from Redis (each value buried under a tombstone), and
    /// clears the scope in this process's L1 and every peer's. Returns how many Redis keys
    /// it purged. See [`Cache::purge`].
    pub async fn purge(&self) -> Result<u64, Error> {
        self.cache.purge_at(&self.cache.prefix(self.place())).await
    }

    /// Clears this scope in this process's L1 only.
    pub fn clear_memory(&self) {
        self.cache.clear_memory_at(&self.cache.prefix(self.place()));
    }

    /// Whether this process's L1 holds `key` in this scope.
    pub fn contains_local(&self, key: &str) -> bool {
        self.cache.contains_local_at(&self.storage_key(key))
    }
}
