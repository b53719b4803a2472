//! Counters of what the cache did, for metrics: see [`Cache::stats`](crate::Cache::stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built. Each is monotonic: export them as
/// counters (Prometheus, OpenTelemetry) and let the backend compute rates.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cachemacro::Cache::in_memory();
/// cache.get_or_set("k", None, || async { 1u8 }).await; // a load
/// cache.get_or_set("k", None, || async { 1u8 }).await; // a hit
/// let stats = cache.stats();
/// assert_eq!((stats.l1_hits, stats.loads), (1, 1));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered from this process's memory.
    pub l1_hits: u64,
    /// Of those, the ones answered by their function's typed front of L1, without writing
    /// the key (see `CacheBuilder::l1_front_capacity`).
    pub front_hits: u64,
    /// Reads answered from Redis (then kept in memory).
    pub l2_hits: u64,
    /// Loads: a function body (or `get_or_set` loader) ran because neither tier had the value.
    pub loads: u64,
    /// Loaded values not cached because the key was invalidated while they loaded.
    pub stale_loads_dropped: u64,
    /// Redis operations that failed or timed out.
    pub redis_errors: u64,
    /// Values in Redis that could not be used (corrupt, another type or version, or no
    /// longer listed under one of their tags) and were treated as misses.
    pub unusable_values: u64,
    /// Invalidations received from other instances over the bus.
    pub invalidations_received: u64,
    /// Times the bus connection was lost (each one clears this process's memory).
    pub bus_disconnects: u64,
    /// Reads that found another type under their key: two functions sharing a key
    /// template, or one key read as two types (each evicts the other; logged once per pair
    /// of types).
    pub type_conflicts: u64,
    /// Stale values served because a reload failed or was slow (`stale_for`).
    pub stale_served: u64,
    /// Reloads started ahead of expiry (`refresh_ahead`).
    pub refreshes: u64,
    /// Loads that waited for another instance to load the key (`fleet_single_flight`).
    pub fleet_waits: u64,
    /// Of those, the loads that started afresh because an invalidation (or a bus drop) came
    /// while they waited: their value is stored, where it would have been dropped.
    pub fleet_restarts: u64,
    /// Entries evicted from this process's L1 to make room.
    pub l1_evictions: u64,
    /// Entries in this process's L1 now (entries expired but not yet swept included).
    pub l1_entries: u64,
    /// Their weight: bytes as weighed under a byte bound (`CacheBuilder::l1_max_bytes`),
    /// else the entry count.
    pub l1_weight: u64,
    /// Per cached function, what its calls did: process-wide (over every `Cache` of the
    /// process), sorted by name. See [`FunctionStats`](crate::FunctionStats).
    pub functions: Vec<crate::FunctionStats>,
}

thread_local! {
    /// This thread's stripe of every [`Striped`] counter (`usize::MAX` until it has one).
    /// Constant-initialised and without a destructor: a read is one load.
    static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Gives this thread its stripe: the threads take them in turn, so that the first eight
/// never share one.
#[cold]
#[inline(never)]
fn assign_stripe() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stripe = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    STRIPE.set(stripe);
    stripe
}

/// A counter that many threads bump: striped over cache lines so that they do not contend.
#[derive(Default)]
pub(crate) struct Striped([Padded; 8]);

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Striped {
    /// A counter at zero.
    pub(crate) const fn new() -> Self {
        Self([const { Padded(AtomicU64::new(0)) }; 8])
    }

    #[inline(always)]
    pub(crate) fn add(&self) {
        let stripe = match STRIPE.get() {
            usize::MAX => assign_stripe(),
            stripe => stripe,
        };
        self.0[stripe % self.0.len()]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// The live counters of one cache.
#[derive(Default)]
pub(crate) struct Counters {
    l1_hits: Striped,
    front_hits: Striped,
    l2_hits: Striped,
    pub(crate) loads: AtomicU64,
    pub(crate) stale_loads_dropped: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) unusable_values: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) bus_disconnects: AtomicU64,
    pub(crate) type_conflicts: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) fleet_waits: AtomicU64,
    pub(crate) fleet_restarts: AtomicU64,
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

    #[inline]
    pub(crate) fn front_hit(&self) {
        self.front_hits.add();
    }

    #[inline]
    pub(crate) fn l2_hit(&self) {
        self.l2_hits.add();
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            l1_hits: self.l1_hits.sum() + self.front_hits.sum(),
            front_hits: self.front_hits.sum(),
            l2_hits: self.l2_hits.sum(),
            loads: get(&self.loads),
            stale_loads_dropped: get(&self.stale_loads_dropped),
            redis_errors: get(&self.redis_errors),
            unusable_values: get(&self.unusable_values),
            invalidations_received: get(&self.invalidations_received),
            bus_disconnects: get(&self.bus_disconnects),
            type_conflicts: get(&self.type_conflicts),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            fleet_waits: get(&self.fleet_waits),
            fleet_restarts: get(&self.fleet_restarts),
            ..Stats::default()
        }
    }
}
