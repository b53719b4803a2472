//! Hit ratio: the ARC traces replayed through cachemacro's L1, moka, quick_cache and an LRU
//! (the `cached` crate's `LruCache`, the former `SizedCache`), one after the other in the same run.
//!
//! Traces from N. Megiddo and D. S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement
//! Cache", USENIX FAST 2003, pp. 115-130 (see `shared/traces/README.md`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cached::Cached;
use cachemacro::{cached, Cache};

use crate::stats::{Row, Table};

/// The citation every hit-ratio result carries.
pub const CITATION: &str = "ARC traces: N. Megiddo and D. S. Modha, \"ARC: A Self-Tuning, Low Overhead Replacement Cache\", USENIX FAST 2003, pp. 115-130";

/// The traces and the three capacities (entries) each is replayed at.
const TRACES: [(&str, [u64; 3]); 2] = [
    ("OLTP", [1_000, 10_000, 100_000]),
    ("P3", [10_000, 100_000, 400_000]),
];

/// Where the traces are: `TRACES_DIR`, else `shared/traces` beside the repository.
fn traces_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRACES_DIR") {
        return dir.into();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        repo.join("../shared/traces"),
        repo.join("../../shared/traces"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .unwrap_or_else(|| "/work/shared/traces".into())
}

/// The page ids of `name`.lis.zst in request order: a line `START COUNT X Y` reads the
/// `COUNT` pages from `START`.
/// Each trace that can be read, with its capacities and page ids, one at a time; a trace
/// that cannot is reported and skipped.
fn traces() -> impl Iterator<Item = (&'static str, [u64; 3], Vec<u64>)> {
    TRACES.into_iter().filter_map(|(name, capacities)| {
        let Some(pages) = load(name) else {
            eprintln!(
                "trace {name} not found under {}: skipped",
                traces_dir().display()
            );
            return None;
        };
        Some((name, capacities, pages))
    })
}

fn load(name: &str) -> Option<Vec<u64>> {
    let path = traces_dir().join(format!("{name}.lis.zst"));
    let out = Command::new("zstd").arg("-dc").arg(&path).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pages = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
            continue;
        };
        pages.extend(start..start + count);
    }
    Some(pages)
}

/// Percent of `pages` found by `get`, inserting on a miss with `insert`.
fn replay(pages: &[u64], mut get_or_insert: impl FnMut(u64) -> bool) -> f64 {
    let hits = pages.iter().filter(|&&p| get_or_insert(p)).count();
    100.0 * hits as f64 / pages.len() as f64
}

/// cachemacro's L1 through the public API: `get_or_set` on an in-memory cache.
fn cachemacro_ratio(rt: &tokio::runtime::Runtime, pages: &[u64], capacity: u64) -> f64 {
    let cache = Cache::builder()
        .namespace("trace")
        .l1_capacity(capacity)
        .default_ttl(Duration::from_secs(3600))
        .build_in_memory()
        .expect("valid settings");
    let mut key = String::with_capacity(24);
    rt.block_on(async {
        let before = cache.stats().loads;
        for &page in pages {
            key.clear();
            key.push_str(itoa::Buffer::new().format(page));
            cache.get_or_set(&key, None, || async move { page }).await;
        }
        let misses = cache.stats().loads - before;
        100.0 * (pages.len() as u64 - misses) as f64 / pages.len() as f64
    })
}

tokio::task_local! {
    /// The cache [`page`] reads through.
    static TRACED: Cache;
}

/// One page of a trace, through `#[cached]`: its hits may come from the function's front.
#[cached(key = "<id>", cache = TRACED.get())]
async fn page(id: u64) -> u64 {
    id
}

/// cachemacro's L1 through `#[cached]`, with fronts of `front_capacity` entries (0: none):
/// a front hit is not seen by L1's eviction policy, so this is the ratio users get.
fn cached_fn_ratio(
    rt: &tokio::runtime::Runtime,
    pages: &[u64],
    capacity: u64,
    front_capacity: u64,
) -> f64 {
    let cache = Cache::builder()
        .namespace("trace")
        .l1_capacity(capacity)
        .l1_front_capacity(front_capacity)
        .default_ttl(Duration::from_secs(3600))
        .build_in_memory()
        .expect("valid settings");
    rt.block_on(TRACED.scope(cache.clone(), async {
        let before = cache.stats().loads;
        for &id in pages {
            page(id).await;
        }
        let misses = cache.stats().loads - before;
        100.0 * (pages.len() as u64 - misses) as f64 / pages.len() as f64
    }))
}

fn moka_ratio(pages: &[u64], capacity: u64) -> f64 {
    let moka: moka::sync::Cache<u64, ()> = moka::sync::Cache::new(capacity);
    replay(pages, |p| {
        let hit = moka.get(&p).is_some();
        if !hit {
            moka.insert(p, ());
        }
        hit
    })
}

fn quick_ratio(pages: &[u64], capacity: u64) -> f64 {
    let quick: quick_cache::sync::Cache<u64, ()> = quick_cache::sync::Cache::new(capacity as usize);
    replay(pages, |p| {
        let hit = quick.get(&p).is_some();
        if !hit {
            quick.insert(p, ());
        }
        hit
    })
}

/// quick_cache with its S3-FIFO knobs set: the share of the main ("hot") queue and how
/// many evicted keys it remembers, as fractions of the capacity.
fn quick_tuned_ratio(pages: &[u64], capacity: u64, hot: f64, ghost: f64) -> f64 {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity as usize)
        .weight_capacity(capacity)
        .hot_allocation(hot)
        .ghost_allocation(ghost)
        .build()
        .expect("both required options are set");
    let quick: quick_cache::sync::Cache<u64, ()> = quick_cache::sync::Cache::with_options(
        options,
        quick_cache::UnitWeighter,
        quick_cache::DefaultHashBuilder::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    );
    replay(pages, |p| {
        let hit = quick.get(&p).is_some();
        if !hit {
            quick.insert(p, ());
        }
        hit
    })
}

/// How the L1's S3-FIFO settings were chosen (`BENCH_ONLY=tuning`): every trace and
/// capacity under a grid of main-queue shares and ghost sizes, against moka in the same run.
pub fn tuning(table: &mut Table) {
    for (name, capacities, pages) in traces() {
        for capacity in capacities {
            let moka = moka_ratio(&pages, capacity);
            for hot in [0.97, 0.95, 0.9] {
                for ghost in [0.5, 0.75, 1.0] {
                    let ours = quick_tuned_ratio(&pages, capacity, hot, ghost);
                    row(
                        table,
                        &format!(
                            "{name}, {capacity} entries: quick_cache hot {hot}, ghost {ghost}"
                        ),
                        ours,
                        ("moka::sync", moka),
                        Some(1.0),
                    );
                }
            }
        }
    }
}

fn lru_ratio(pages: &[u64], capacity: u64) -> f64 {
    let mut lru = cached::LruCache::new(capacity as usize);
    replay(pages, |p| {
        let hit = lru.cache_get(&p).is_some();
        if !hit {
            lru.cache_set(p, ());
        }
        hit
    })
}

/// A row of hit ratios: ours against `name`'s, the difference in percentage points, and
/// the target (at most `limit_pp` below) when there is one.
fn row(
    table: &mut Table,
    scenario: &str,
    ours: f64,
    (name, base): (&str, f64),
    limit_pp: Option<f64>,
) {
    let diff = ours - base;
    table.push(Row {
        scenario: scenario.into(),
        ours: format!("{ours:.2} %"),
        baseline: format!("{name}: {base:.2} %"),
        ratio: format!("{diff:+.2} pp"),
        target: limit_pp.map_or("-".into(), |l| format!("≥ -{l:.1} pp")),
        verdict: match limit_pp {
            Some(l) if diff >= -l => "yes",
            Some(_) => "**no**",
            None => "-",
        },
    });
}

/// Every trace at each of its capacities: cachemacro against moka (within 1 pp) and LRU,
/// raw quick_cache against moka for reference.
pub fn hit_ratios(table: &mut Table) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, capacities, pages) in traces() {
        for capacity in capacities {
            let ours = cachemacro_ratio(&rt, &pages, capacity);
            let moka = moka_ratio(&pages, capacity);
            let quick = quick_ratio(&pages, capacity);
            let lru = lru_ratio(&pages, capacity);
            let scenario = format!(
                "hit ratio, {name} trace ({} requests), {capacity} entries",
                pages.len()
            );
            row(table, &scenario, ours, ("moka::sync", moka), Some(1.0));
            row(
                table,
                &scenario,
                ours,
                ("LRU (`cached` LruCache)", lru),
                None,
            );
            row(table, &scenario, ours, ("raw quick_cache", quick), None);
            let fronted = cached_fn_ratio(&rt, &pages, capacity, capacity);
            let unfronted = cached_fn_ratio(&rt, &pages, capacity, 0);
            row(
                table,
                &format!("{scenario}, through #[cached] (its hits served by its front)"),
                fronted,
                ("the same with fronts off", unfronted),
                Some(1.0),
            );
        }
    }
}
