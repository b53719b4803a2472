//! L1: the bounded in-process cache (moka), holding typed values behind `Arc`s.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use moka::Expiry;

/// A value held in L1: the typed value itself (a hit decodes nothing) and its time to live.
#[derive(Clone)]
pub(crate) struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    ttl: Duration,
}

impl Entry {
    pub(crate) fn new<T: Send + Sync + 'static>(value: Arc<T>, ttl: Duration) -> Self {
        Self { value, ttl }
    }

    /// The value if it is a `T`; `None` for a value of another type under the same key.
    pub(crate) fn downcast<T: Send + Sync + 'static>(self) -> Option<Arc<T>> {
        self.value.downcast::<T>().ok()
    }
}

/// Each entry lives for its own TTL from the moment it was written.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The in-process cache, keyed by storage key.
#[derive(Clone)]
pub(crate) struct L1 {
    moka: Moka<String, Entry>,
}

impl L1 {
    pub(crate) fn new(capacity: u64) -> Self {
        let moka = Moka::builder()
            .max_capacity(capacity)
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        Self { moka }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        self.moka.get(key)
    }

    pub(crate) fn insert(&self, key: String, entry: Entry) {
        if entry.ttl.is_zero() {
            return;
        }
        self.moka.insert(key, entry);
    }

    pub(crate) fn remove(&self, key: &str) {
        self.moka.invalidate(key);
    }

    pub(crate) fn clear(&self) {
        self.moka.invalidate_all();
    }

    /// Drops every entry whose key starts with `prefix`.
    pub(crate) fn clear_prefix(&self, prefix: String) {
        // Closures are enabled in `new`, so this cannot fail; fall back to a full clear if it
        // ever does, which is safe (it only costs misses).
        if self
            .moka
            .invalidate_entries_if(move |key, _| key.starts_with(&prefix))
            .is_err()
        {
            self.moka.invalidate_all();
        }
    }

    /// The most entries it holds.
    pub(crate) fn capacity(&self) -> u64 {
        self.moka.policy().max_capacity().unwrap_or(u64::MAX)
    }

    /// Entries held, after applying pending evictions and invalidations.
    pub(crate) fn entry_count(&self) -> u64 {
        self.moka.run_pending_tasks();
        self.moka.entry_count()
    }
}
