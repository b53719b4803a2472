//! Counters of what the cache did, for metrics: see [`Cache::stats`](crate::Cache::stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built. Each is monotonic: export them as
/// counters (Prometheus, OpenTelemetry) and let the backend compute rates.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cachemacro_runtime::Cache::in_memory();
/// cache.get_or_set("k", None, || async { 1u8 }).await; // a load
/// cache.get_or_set("k", None, || async { 1u8 }).await; // a hit
/// let stats = cache.stats();
/// assert_eq!((stats.l1_hits, stats.loads), (1, 1));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered from this process's memory.
    pub l1_hits: u64,
    /// Reads answered from Redis (then kept in memory).
    pub l2_hits: u64,
    /// Loads: a function body (or `get_or_set` loader) ran because neither tier had the value.
    pub loads: u64,
    /// Loaded values not cached because the key was invalidated while they loaded.
    pub stale_loads_dropped: u64,
    /// Redis operations that failed or timed out.
    pub redis_errors: u64,
    /// Values in Redis that could not be used (corrupt, another type or version) and were
    /// treated as misses.
    pub unusable_values: u64,
    /// Invalidations received from other instances over the bus.
    pub invalidations_received: u64,
    /// Times the bus connection was lost (each one clears this process's memory).
    pub bus_disconnects: u64,
}

/// A counter that many threads bump: striped over cache lines so that they do not contend.
#[derive(Default)]
struct Striped([Padded; 8]);

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Striped {
    #[inline]
    fn add(&self) {
        thread_local! {
            static STRIPE: usize = {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(0);
                h.finish() as usize
            };
        }
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0) % self.0.len();
        self.0[stripe].0.fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// The live counters of one cache.
#[derive(Default)]
pub(crate) struct Counters {
    l1_hits: Striped,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) stale_loads_dropped: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) unusable_values: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) bus_disconnects: AtomicU64,
}

/// Bumps a plain counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    #[inline]
    pub(crate) fn l1_hit(&self) {
        self.l1_hits.add();
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            l1_hits: self.l1_hits.sum(),
            l2_hits: get(&self.l2_hits),
            loads: get(&self.loads),
            stale_loads_dropped: get(&self.stale_loads_dropped),
            redis_errors: get(&self.redis_errors),
            unusable_values: get(&self.unusable_values),
            invalidations_received: get(&self.invalidations_received),
            bus_disconnects: get(&self.bus_disconnects),
        }
    }
}
