//! Export through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`):
//! install any recorder (`metrics-exporter-prometheus`, an OpenTelemetry bridge, statsd...)
//! and the figures appear under these names:
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `cachemacro_hits_total` | counter | `function`, `tier` (`l1`, `l2`) | calls answered from memory or Redis |
//! | `cachemacro_joined_total` | counter | `function` | calls that waited for a load in flight |
//! | `cachemacro_loads_total` | counter | `function` | loads: the body ran |
//! | `cachemacro_load_errors_total` | counter | `function` | loads that failed (`Err`, `None`, panic, hard timeout) |
//! | `cachemacro_load_duration_seconds` | histogram | `function` | how long each load took |
//! | `cachemacro_stale_served_total` | counter | `function` | calls answered with a stale value |
//! | `cachemacro_invalidations_sent_total` | counter | `function` | `remove_cached` and friends |
//! | `cachemacro_invalidations_received_total` | counter | `namespace` | invalidations heard from peers |
//! | `cachemacro_redis_errors_total` | counter | `namespace` | Redis operations that failed or timed out |
//! | `cachemacro_bus_disconnects_total` | counter | `namespace` | invalidation bus drops (each clears L1) |
//! | `cachemacro_l1_evictions_total` | counter | `namespace` | entries evicted from L1 to make room |
//! | `cachemacro_l1_entries` | gauge | `namespace` | entries in L1 |
//! | `cachemacro_l1_weight` | gauge | `namespace` | their weight (bytes under a byte bound) |
//!
//! The hit path only bumps a counter in memory: the counters are handed to the recorder
//! (as absolute values) once a second by a background thread, and by [`sync`], which an
//! exporter that renders on scrape calls first for figures that are exact to the call. The
//! load-time histogram is recorded as each load ends.

use std::sync::{Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::cache::Inner;
use crate::site::Site;
use crate::Cache;

/// The caches to report, as long as they live.
static CACHES: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Reports `cache` from now on, and starts the reporting thread.
pub(crate) fn watch(cache: &Cache) {
    CACHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(std::sync::Arc::downgrade(cache.inner()));
    start();
}

/// Starts the thread that hands the counters to the recorder once a second.
pub(crate) fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("cachemacro-metrics".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                sync();
            });
        if let Err(err) = spawned {
            tracing::warn!(target: "cachemacro", error = %err, "cache: could not start the metrics thread; call cachemacro::metrics::sync() before each scrape");
        }
    });
}

/// Hands every counter and gauge to the installed `metrics` recorder now. A background
/// thread does it once a second; call it before rendering a scrape for figures exact to
/// the moment.
pub fn sync() {
    for function in crate::site::functions() {
        let name = function.function;
        counter!("cachemacro_hits_total", "function" => name, "tier" => "l1")
            .absolute(function.l1_hits);
        counter!("cachemacro_hits_total", "function" => name, "tier" => "l2")
            .absolute(function.l2_hits);
        counter!("cachemacro_joined_total", "function" => name).absolute(function.joined);
        counter!("cachemacro_loads_total", "function" => name).absolute(function.loads);
        counter!("cachemacro_load_errors_total", "function" => name).absolute(function.load_errors);
        counter!("cachemacro_stale_served_total", "function" => name)
            .absolute(function.stale_served);
        counter!("cachemacro_invalidations_sent_total", "function" => name)
            .absolute(function.invalidations_sent);
    }
    let caches: Vec<Cache> = {
        let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
        caches.retain(|weak| weak.strong_count() > 0);
        caches
            .iter()
            .filter_map(Weak::upgrade)
            .map(Cache::from_arc)
            .collect()
    };
    for cache in caches {
        let namespace = cache.namespace().to_owned();
        let stats = cache.counters();
        counter!("cachemacro_invalidations_received_total", "namespace" => namespace.clone())
            .absolute(stats.invalidations_received);
        counter!("cachemacro_redis_errors_total", "namespace" => namespace.clone())
            .absolute(stats.redis_errors);
        counter!("cachemacro_bus_disconnects_total", "namespace" => namespace.clone())
            .absolute(stats.bus_disconnects);
        counter!("cachemacro_l1_evictions_total", "namespace" => namespace.clone())
            .absolute(stats.l1_evictions);
        gauge!("cachemacro_l1_entries", "namespace" => namespace.clone())
            .set(stats.l1_entries as f64);
        gauge!("cachemacro_l1_weight", "namespace" => namespace).set(stats.l1_weight as f64);
    }
}

/// Records a load's time in the histogram.
pub(crate) fn load_ended(site: &Site, took: Duration) {
    histogram!("cachemacro_load_duration_seconds", "function" => site.name())
        .record(took.as_secs_f64());
}
