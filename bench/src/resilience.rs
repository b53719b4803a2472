//! When the source fails or a key is cold across the fleet: the stampede on 4 instances with
//! and without fleet-wide single flight, and the cost of a read served stale under a failing
//! source against a healthy hit.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};

use crate::model::{user, User};
use crate::stats::{median, Row, Table};
use crate::Redis;

tokio::task_local! {
    static INSTANCE: Cache;
}

static FLEET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "fleet:<id>", ttl = "1m", fleet_single_flight = "5s", cache = INSTANCE.get())]
async fn with_fleet(id: u64) -> User {
    FLEET_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    user(id)
}

static LOCAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "local:<id>", ttl = "1m", cache = INSTANCE.get())]
async fn without_fleet(id: u64) -> User {
    LOCAL_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    user(id)
}

/// 4 instances × 250 callers of one cold key, `rounds` times: the body runs (the most in a
/// round) and the median time until every caller has its answer.
async fn stampede_round(instances: &[Cache], rounds: u64, fleet: bool) -> (usize, f64) {
    let mut times = Vec::new();
    let mut worst = 0;
    for round in 0..rounds {
        let runs = if fleet { &FLEET_RUNS } else { &LOCAL_RUNS };
        runs.store(0, Ordering::SeqCst);
        let start = Instant::now();
        let callers: Vec<_> = instances
            .iter()
            .flat_map(|cache| {
                (0..250).map(move |_| {
                    let id = 1_000 + round;
                    tokio::spawn(INSTANCE.scope(cache.clone(), async move {
                        if fleet {
                            with_fleet(id).await
                        } else {
                            without_fleet(id).await
                        }
                    }))
                })
            })
            .collect();
        for caller in callers {
            black_box(caller.await.unwrap());
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        worst = worst.max(runs.load(Ordering::SeqCst));
    }
    (worst, median(&mut times))
}

/// The fleet stampede row: body runs and time to answer everyone, with and without
/// fleet-wide single flight.
pub fn fleet_stampede(table: &mut Table, redis: &Redis, rounds: u64) {
    crate::multi_thread().block_on(async {
        let mut instances = Vec::new();
        for _ in 0..4 {
            instances.push(redis.cache("bench-fleet").await);
        }
        let (runs, ms) = stampede_round(&instances, rounds, true).await;
        let (local_runs, local_ms) = stampede_round(&instances, rounds, false).await;
        table.push(Row {
            scenario:
                "stampede: 4 instances × 250 callers, one cold key, 20 ms body, fleet_single_flight"
                    .into(),
            ours: format!("body ran {runs}×; all answered in {ms:.1} ms (median)"),
            baseline: format!("without it: body ran {local_runs}×, {local_ms:.1} ms"),
            ratio: format!("{:.3}× (time)", ms / local_ms),
            target: "1 run in all".into(),
            verdict: if runs == 1 { "yes" } else { "**no**" },
        });
    });
}

static FAILING: AtomicBool = AtomicBool::new(false);

#[cached(key = "stale:<id>", ttl = "1s", stale_for = "1h", fail_safe_throttle = "1m", cache = INSTANCE.get())]
async fn failing_user(id: u64) -> Result<User, String> {
    if FAILING.load(Ordering::SeqCst) {
        Err("database down".into())
    } else {
        Ok(user(id))
    }
}

const KEYS: u64 = 10_000;

/// ns per read of every key in order, `passes` times.
async fn ns_per_read(cache: &Cache, passes: u64) -> f64 {
    INSTANCE
        .scope(cache.clone(), async {
            let start = Instant::now();
            for _ in 0..passes {
                for id in 0..KEYS {
                    black_box(failing_user(id).await.ok());
                }
            }
            start.elapsed().as_nanos() as f64 / (passes * KEYS) as f64
        })
        .await
}

/// The cost of reads under a failing source: the read that finds the value stale and the
/// reload failing, and the reads served stale afterwards (the fail-safe throttle), against
/// healthy hits.
pub fn served_stale(table: &mut Table, rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut healthy, mut failed_reload, mut throttled) = (Vec::new(), Vec::new(), Vec::new());
        let build = || {
            Cache::builder()
                .namespace("bench-stale")
                .l1_capacity(100_000)
                .build_in_memory()
                .unwrap()
        };
        for _ in 0..rounds {
            // `stale` holds values past their TTL; `fresh`, filled a second later, holds the
            // same function's values fresh, so that the two are read turn about.
            let (stale, fresh) = (build(), build());
            FAILING.store(false, Ordering::SeqCst);
            ns_per_read(&stale, 1).await;
            tokio::time::sleep(Duration::from_millis(1100)).await;
            ns_per_read(&fresh, 1).await;
            FAILING.store(true, Ordering::SeqCst);
            failed_reload.push(ns_per_read(&stale, 1).await);
            for _ in 0..5 {
                throttled.push(ns_per_read(&stale, 1).await);
                healthy.push(ns_per_read(&fresh, 1).await);
            }
        }
        let healthy = median(&mut healthy);
        table.lower_is_better(
            "read served stale, failing source, within the fail-safe throttle (ns/read)",
            "ns",
            median(&mut throttled),
            ("healthy L1 hit of the same function", healthy),
            Some(1.5),
        );
        table.lower_is_better(
            "read that finds its value stale and the reload failing, then serves it (ns/read)",
            "ns",
            median(&mut failed_reload),
            ("healthy L1 hit of the same function", healthy),
            None,
        );
    });
}
