//! One cached function, as the cache sees it: its name, what its calls did (counters, the
//! load-time histogram), and the call in progress (its `tracing` span).
//!
//! `#[cached]` puts a `static` [`Site`] in each function it expands; the hit path bumps one
//! striped counter there, the rest is counted on the miss path. The counters are
//! process-wide per function (over every `Cache` of the process; most services have one),
//! read by [`Cache::stats`](crate::Cache::stats) and, with the `metrics` feature, exported
//! through the `metrics` facade.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::stats::Striped;

/// The upper bounds of the load-time histogram's buckets, in seconds (the last bucket,
/// `+Inf`, is implied): 1 ms to 10 s, the range of a database call.
pub const LOAD_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A cached function: its name and counters. Made by `#[cached]`, one per function.
pub struct Site {
    name: &'static str,
    /// Whether the site is in [`SITES`] yet.
    listed: AtomicBool,
    /// The function's id among the fronts of L1 (`l1::front`); 0 until its first one.
    front: AtomicU32,
    /// `#[cached(l1_capacity = N)]`: the entries of the function's own share of L1; 0: it
    /// uses the shared store.
    l1_capacity: u64,
    /// The id of that share (`l1::share`); 0 until its first load.
    share: AtomicU32,
    l1_hits: Striped,
    l2_hits: Striped,
    joined: AtomicU64,
    loads: AtomicU64,
    load_errors: AtomicU64,
    stale_served: AtomicU64,
    invalidations_sent: AtomicU64,
    /// Load times: a count per bucket of [`LOAD_BUCKETS`], then `+Inf`.
    load_buckets: [AtomicU64; LOAD_BUCKETS.len() + 1],
    load_nanos: AtomicU64,
}

/// Every site that counted something, for snapshots and export.
static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

impl Site {
    /// The site of the function `name` (its path: `my_app::users::get_user`).
    pub const fn new(name: &'static str) -> Self {
        Self::with_l1_capacity(name, 0)
    }

    /// The site of the function `name` with a share of L1 of its own, of at most
    /// `capacity` entries (`#[cached(l1_capacity = N)]`; 0: none, as [`new`](Self::new)).
    pub const fn with_l1_capacity(name: &'static str, capacity: u64) -> Self {
        Self {
            name,
            listed: AtomicBool::new(false),
            front: AtomicU32::new(0),
            l1_capacity: capacity,
            share: AtomicU32::new(0),
            l1_hits: Striped::new(),
            l2_hits: Striped::new(),
            joined: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            load_errors: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            invalidations_sent: AtomicU64::new(0),
            load_buckets: [const { AtomicU64::new(0) }; LOAD_BUCKETS.len() + 1],
            load_nanos: AtomicU64::new(0),
        }
    }

    /// The function's path.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Lists the site for snapshots, the first time it counts something.
    #[inline]
    fn list(&'static self) {
        if !self.listed.load(Ordering::Relaxed) {
            self.list_slow();
        }
    }

    #[cold]
    fn list_slow(&'static self) {
        let mut sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.listed.swap(true, Ordering::Relaxed) {
            sites.push(self);
        }
        #[cfg(feature = "metrics")]
        crate::metrics::start();
    }

    /// The function's own share of L1, if it has one (assigned on first use).
    #[inline]
    pub(crate) fn share(&self) -> Option<crate::l1::Share> {
        if self.l1_capacity == 0 {
            return None;
        }
        crate::l1::share::assign(&self.share, self.name, self.l1_capacity)
    }

    /// The function's front id, if it has one yet.
    #[inline]
    pub(crate) fn front_id(&self) -> Option<usize> {
        crate::l1::front::id_of(&self.front)
    }

    /// The function's front id, assigned now if it has none.
    pub(crate) fn assign_front_id(&self) -> Option<usize> {
        crate::l1::front::assign_id(&self.front)
    }

    #[inline]
    pub(crate) fn l1_hit(&'static self) {
        self.list();
        self.l1_hits.add();
    }

    pub(crate) fn l2_hit(&'static self) {
        self.list();
        self.l2_hits.add();
    }

    pub(crate) fn joined(&'static self) {
        self.list();
        self.joined.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load_started(&'static self) {
        self.list();
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load_ended(&'static self, took: Duration, ok: bool) {
        if !ok {
            self.load_errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        let bucket = LOAD_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LOAD_BUCKETS.len());
        self.load_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn stale_served(&'static self) {
        self.list();
        self.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn invalidation_sent(&'static self) {
        self.list();
        self.invalidations_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// What the site counted so far.
    pub fn snapshot(&self) -> FunctionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let buckets = LOAD_BUCKETS
            .iter()
            .zip(&self.load_buckets)
            .map(|(&bound, count)| {
                cumulative += get(count);
                (bound, cumulative)
            })
            .collect();
        let count = cumulative + get(&self.load_buckets[LOAD_BUCKETS.len()]);
        FunctionStats {
            function: self.name,
            l1_hits: self.l1_hits.sum(),
            l2_hits: self.l2_hits.sum(),
            joined: get(&self.joined),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            stale_served: get(&self.stale_served),
            invalidations_sent: get(&self.invalidations_sent),
            load_time: LoadTimes {
                count,
                sum: Duration::from_nanos(get(&self.load_nanos)),
                buckets,
            },
        }
    }
}

/// Every cached function that has been called (or invalidated) in this process, with what
/// it counted, sorted by name.
pub fn functions() -> Vec<FunctionStats> {
    let sites: Vec<&'static Site> = SITES.lock().unwrap_or_else(PoisonError::into_inner).clone();
    // A function's companion counts its invalidations in a site of its own, by the same
    // name: one entry per name.
    let mut all: Vec<FunctionStats> = Vec::with_capacity(sites.len());
    for site in sites {
        let stats = site.snapshot();
        match all.iter_mut().find(|f| f.function == stats.function) {
            Some(same) => same.add(&stats),
            None => all.push(stats),
        }
    }
    all.sort_by(|a, b| a.function.cmp(b.function));
    all
}

/// What the calls of one cached function did, in this process since it started (over
/// every `Cache` of the process). Each figure is monotonic.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function's path, `my_app::users::get_user`.
    pub function: &'static str,
    /// Calls answered from this process's memory.
    pub l1_hits: u64,
    /// Calls answered from Redis.
    pub l2_hits: u64,
    /// Calls that waited for a load of the same key already in flight in this process.
    pub joined: u64,
    /// Loads: the function's body ran (misses in both tiers, refreshes, reloads).
    pub loads: u64,
    /// Loads that failed: an `Err` (or `None`) not cached, a panic, a hard timeout.
    pub load_errors: u64,
    /// Calls answered with a stale value because a reload failed or was slow.
    pub stale_served: u64,
    /// Invalidations sent by the function's companion (`remove_cached`,
    /// `remove_cached_many`, `refresh`).
    pub invalidations_sent: u64,
    /// How long the loads took.
    pub load_time: LoadTimes,
}

impl FunctionStats {
    /// Adds the figures of `other`, a site of the same function.
    fn add(&mut self, other: &FunctionStats) {
        self.l1_hits += other.l1_hits;
        self.l2_hits += other.l2_hits;
        self.joined += other.joined;
        self.loads += other.loads;
        self.load_errors += other.load_errors;
        self.stale_served += other.stale_served;
        self.invalidations_sent += other.invalidations_sent;
        self.load_time.count += other.load_time.count;
        self.load_time.sum += other.load_time.sum;
        for (mine, theirs) in self
            .load_time
            .buckets
            .iter_mut()
            .zip(&other.load_time.buckets)
        {
            mine.1 += theirs.1;
        }
    }
}

/// A histogram of load times, as Prometheus keeps one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LoadTimes {
    /// How many loads ended.
    pub count: u64,
    /// Their total time.
    pub sum: Duration,
    /// Cumulative counts: `(le, loads that took at most le seconds)`, for each bound of
    /// [`LOAD_BUCKETS`]; `count` is the `+Inf` bucket.
    pub buckets: Vec<(f64, u64)>,
}

/// How the call in progress ended, as its span's `outcome` field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    L1Hit,
    L2Hit,
    Joined,
    Loaded,
    Stale,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::L1Hit => "l1_hit",
            Outcome::L2Hit => "l2_hit",
            Outcome::Joined => "joined",
            Outcome::Loaded => "loaded",
            Outcome::Stale => "stale",
            Outcome::Failed => "failed",
        }
    }
}

/// The call in progress: its function's site and its span (`Span::none()` when no
/// subscriber wants it). Carried by a load so that what it does is counted for the function
/// and recorded on the call's span.
#[derive(Clone, Debug)]
pub struct Call {
    pub(crate) site: Option<&'static Site>,
    pub(crate) span: tracing::Span,
}

impl Default for Call {
    /// No function (a `get_or_set` call), no span.
    fn default() -> Self {
        Self {
            site: None,
            span: tracing::Span::none(),
        }
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site").field("name", &self.name).finish()
    }
}

impl Call {
    /// The call of `site`, in `span`.
    #[inline]
    pub fn new(site: &'static Site, span: tracing::Span) -> Self {
        Self {
            site: Some(site),
            span,
        }
    }

    /// The function's path, for logs (`""` outside a `#[cached]` function).
    pub(crate) fn function(&self) -> &'static str {
        self.site.map_or("", |site| site.name())
    }

    /// Counts and records how the call ended, short of a load.
    pub(crate) fn ended(&self, outcome: Outcome) {
        self.count(outcome);
        self.record(outcome);
        crate::source::report(outcome);
    }

    /// Records how the call ended on its span (a batch counts its elements one by one).
    pub(crate) fn record(&self, outcome: Outcome) {
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome.as_str());
        }
    }

    /// Counts what happened to the call, or to one element of a batch.
    pub(crate) fn count(&self, outcome: Outcome) {
        if let Some(site) = self.site {
            match outcome {
                Outcome::L1Hit => site.l1_hit(),
                Outcome::L2Hit => site.l2_hit(),
                Outcome::Joined => site.joined(),
                Outcome::Stale => site.stale_served(),
                Outcome::Loaded | Outcome::Failed => {}
            }
        }
    }

    /// Counts a load's start.
    pub(crate) fn load_started(&self) {
        if let Some(site) = self.site {
            site.load_started();
        }
    }

    /// Counts and records a load's end: `ok` when it produced a value to cache.
    pub(crate) fn load_ended(&self, took: Duration, ok: bool) {
        crate::source::report(Outcome::Loaded);
        if let Some(site) = self.site {
            site.load_ended(took, ok);
            #[cfg(feature = "metrics")]
            crate::metrics::load_ended(site, took);
        }
        if !self.span.is_disabled() {
            self.span.record("load_ms", took.as_secs_f64() * 1000.0);
            self.span.record(
                "outcome",
                if ok { Outcome::Loaded } else { Outcome::Failed }.as_str(),
            );
        }
    }
}

/// The hit path's counting: the L1 hit of `site`, and the span's fields when it is on.
#[inline]
pub(crate) fn l1_hit(site: &'static Site, span: &tracing::Span, skey: &str) {
    site.l1_hit();
    if !span.is_disabled() {
        span.record("key", skey);
        span.record("outcome", Outcome::L1Hit.as_str());
    }
}
