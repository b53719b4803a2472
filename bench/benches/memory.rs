//! Memory per entry and heap allocations per hit, under a counting allocator (which would
//! distort the timings, hence a bench of its own): `cargo bench -p cachemacro-bench --bench memory`.

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_bench::l1::{cm_user, RawMoka};
use cachemacro_bench::model::{user, User};
use cachemacro_bench::report;
use cachemacro_bench::stats::Table;
use once_cell::sync::Lazy;
use stats_alloc::{Stats, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes currently allocated.
fn live(stats: &Stats) -> i64 {
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64 + stats.bytes_reallocated as i64
}

/// Heap bytes per entry of a cachemacro L1 holding `n` users.
async fn cachemacro_bytes_per_entry(n: u64) -> f64 {
    let before = live(&GLOBAL.stats());
    let cache = Cache::builder()
        .namespace("bench")
        .l1_capacity(2 * n)
        .default_ttl(Duration::from_secs(600))
        .build_in_memory()
        .expect("valid settings");
    for id in 0..n {
        cache
            .set(&format!("user:{id}"), user(id), None)
            .await
            .unwrap();
    }
    assert!(cache.local_entry_count() >= n * 99 / 100);
    let after = live(&GLOBAL.stats());
    black_box(&cache);
    (after - before) as f64 / n as f64
}

/// Heap bytes per held entry of a full cachemacro L1 of `capacity` entries after `3 ×
/// capacity` distinct inserts: the steady state, with the eviction policy's own memory (the
/// evicted keys it remembers) included.
async fn cachemacro_full_bytes_per_entry(capacity: u64) -> f64 {
    let before = live(&GLOBAL.stats());
    let cache = Cache::builder()
        .namespace("bench")
        .l1_capacity(capacity)
        .default_ttl(Duration::from_secs(600))
        .build_in_memory()
        .expect("valid settings");
    for id in 0..3 * capacity {
        cache
            .set(&format!("user:{id}"), user(id), None)
            .await
            .unwrap();
    }
    let held = cache.local_entry_count();
    let after = live(&GLOBAL.stats());
    black_box(&cache);
    (after - before) as f64 / held as f64
}

/// The same for raw moka.
async fn raw_full_bytes_per_entry(capacity: u64) -> f64 {
    let before = live(&GLOBAL.stats());
    let raw: moka::future::Cache<String, Arc<User>> = moka::future::Cache::builder()
        .max_capacity(capacity)
        .time_to_live(Duration::from_secs(600))
        .build();
    for id in 0..3 * capacity {
        raw.insert(format!("bench:c1:k:user:{id}"), Arc::new(user(id)))
            .await;
    }
    raw.run_pending_tasks().await;
    let held = raw.entry_count();
    let after = live(&GLOBAL.stats());
    black_box(&raw);
    (after - before) as f64 / held as f64
}

/// Heap bytes per entry of a raw moka cache holding the same `Arc<User>` under the same keys.
async fn raw_bytes_per_entry(n: u64) -> f64 {
    let before = live(&GLOBAL.stats());
    let raw: moka::future::Cache<String, Arc<User>> = moka::future::Cache::builder()
        .max_capacity(2 * n)
        .time_to_live(Duration::from_secs(600))
        .build();
    for id in 0..n {
        raw.insert(format!("bench:c1:k:user:{id}"), Arc::new(user(id)))
            .await;
    }
    raw.run_pending_tasks().await;
    assert!(raw.entry_count() >= n * 99 / 100);
    let after = live(&GLOBAL.stats());
    black_box(&raw);
    (after - before) as f64 / n as f64
}

/// The in-memory cache of the tag registry's row.
static TAGS: Lazy<Cache> = Lazy::new(|| {
    Cache::builder()
        .namespace("bench")
        .l1_capacity(500_000)
        .build_in_memory()
        .expect("valid settings")
});

#[cached(key = "tagged:<id>", ttl = "10m", tags = ["user:<id>"], cache = TAGS)]
async fn tagged_user(id: u64) -> User {
    user(id)
}

#[cached(key = "plain:<id>", ttl = "10m", cache = TAGS)]
async fn plain_user(id: u64) -> User {
    user(id)
}

/// Heap bytes per entry of `n` entries loaded through a `#[cached]` function with one tag,
/// through the same function without, and what reading the untagged ones again adds (each
/// is then copied to the function's front).
async fn tagged_plain_and_front_bytes_per_entry(n: u64) -> (f64, f64, f64) {
    Lazy::force(&TAGS);
    let before = live(&GLOBAL.stats());
    for id in 0..n {
        black_box(plain_user(id).await);
    }
    let plain = live(&GLOBAL.stats());
    let fronted = TAGS.stats().front_hits;
    for id in 0..n {
        black_box(plain_user(id).await);
    }
    let read_again = live(&GLOBAL.stats());
    for id in 0..n {
        black_box(plain_user(id).await);
    }
    assert!(
        TAGS.stats().front_hits - fronted >= n * 99 / 100,
        "the third reads came from the front"
    );
    let settled = live(&GLOBAL.stats());
    for id in 0..n {
        black_box(tagged_user(id).await);
    }
    let tagged = live(&GLOBAL.stats());
    assert!(TAGS.local_entry_count() >= 2 * n * 99 / 100);
    (
        (tagged - settled) as f64 / n as f64,
        (plain - before) as f64 / n as f64,
        (read_again - plain) as f64 / n as f64,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut table = Table::default();
    rt.block_on(async {
        for n in [1_000u64, 100_000, 1_000_000] {
            let ours = cachemacro_bytes_per_entry(n).await;
            let raw = raw_bytes_per_entry(n).await;
            table.lower_is_better(
                &format!("heap per entry at {n} entries (bytes)"),
                "B",
                ours,
                ("raw moka::future holding Arc<User>", raw),
                Some(1.3),
            );
        }

        let capacity = 100_000;
        let ours = cachemacro_full_bytes_per_entry(capacity).await;
        let raw = raw_full_bytes_per_entry(capacity).await;
        table.lower_is_better(
            &format!("heap per held entry, full at {capacity} after 3× as many inserts (bytes)"),
            "B",
            ours,
            ("raw moka::future holding Arc<User>", raw),
            Some(1.3),
        );

        let (tagged, plain, front) = tagged_plain_and_front_bytes_per_entry(100_000).await;
        table.lower_is_better(
            "heap per entry at 100000 entries through #[cached], with one tag (bytes)",
            "B",
            tagged,
            ("the same function without tags", plain),
            None,
        );
        table.lower_is_better(
            "heap added per entry at 100000 entries by reading them again: the copy in the function's front (bytes)",
            "B",
            front,
            ("the entry itself, read once", plain),
            None,
        );

        // Allocations per L1 hit: the clone of the value (two Strings) is the floor.
        let raw = RawMoka::default();
        for id in 0..1_000 {
            cm_user(id).await;
            raw.get(id).await;
        }
        raw.settle().await;
        let hits = 100_000u64;
        let count = |f: &dyn Fn() -> Stats| {
            let s = f();
            s.allocations as f64 + s.reallocations as f64
        };
        let before = count(&|| GLOBAL.stats());
        for i in 0..hits {
            black_box(cm_user(i % 1_000).await);
        }
        let ours = (count(&|| GLOBAL.stats()) - before) / hits as f64;
        let before = count(&|| GLOBAL.stats());
        for i in 0..hits {
            black_box(raw.get(i % 1_000).await);
        }
        let base = (count(&|| GLOBAL.stats()) - before) / hits as f64;
        table.lower_is_better(
            "heap allocations per L1 hit (cloning the value takes 2)",
            "allocs",
            ours,
            ("raw moka::future get + clone", base),
            None,
        );
    });
    report("memory", "Memory", &table.markdown());
}
