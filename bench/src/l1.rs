//! L1 hits: `#[cached]` against a raw moka cache doing the same work by hand.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use once_cell::sync::OnceCell;

use crate::model::{random_ids, user, User};
use crate::stats::{median, Table};

static L1_CACHE: OnceCell<Cache> = OnceCell::new();

/// The in-memory cache the L1 scenarios use (2M entries, 10 min TTL).
pub fn l1_cache() -> &'static Cache {
    L1_CACHE.get_or_init(|| {
        Cache::builder()
            .namespace("bench")
            .l1_capacity(2_000_000)
            .default_ttl(Duration::from_secs(600))
            .build_in_memory()
            .expect("valid settings")
    })
}

/// The function under test.
#[cached(key = "user:<id>", ttl = "10m", cache = l1_cache())]
pub async fn cm_user(id: u64) -> User {
    user(id)
}

/// A hand-written cache-aside over `moka::future::Cache<String, Arc<User>>`: what a user
/// would write without cachemacro, building the same key and cloning the same value.
#[derive(Clone)]
pub struct RawMoka(moka::future::Cache<String, Arc<User>>);

impl Default for RawMoka {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(2_000_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
        )
    }
}

impl RawMoka {
    /// Read-through get.
    pub async fn get(&self, id: u64) -> User {
        let key = format!("bench:c1:k:user:{id}");
        if let Some(hit) = self.0.get(&key).await {
            return User::clone(&hit);
        }
        let value = Arc::new(user(id));
        self.0.insert(key, Arc::clone(&value)).await;
        User::clone(&value)
    }

    /// Settles moka's pending maintenance.
    pub async fn settle(&self) {
        self.0.run_pending_tasks().await;
    }
}

/// ns per call over `ids`, calling `cm_user`.
async fn batch_cm(ids: &[u64]) -> f64 {
    let start = Instant::now();
    for &id in ids {
        black_box(cm_user(id).await);
    }
    start.elapsed().as_nanos() as f64 / ids.len() as f64
}

/// ns per call over `ids`, calling the raw moka cache.
async fn batch_raw(raw: &RawMoka, ids: &[u64]) -> f64 {
    let start = Instant::now();
    for &id in ids {
        black_box(raw.get(id).await);
    }
    start.elapsed().as_nanos() as f64 / ids.len() as f64
}

const KEYS: u64 = 10_000;

/// Scenario 1, single thread: ns per L1 hit.
pub fn hit_single_thread(table: &mut Table, rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let raw = RawMoka::default();
        let ids = random_ids(200_000, KEYS, 7);
        for id in 0..KEYS {
            cm_user(id).await;
            raw.get(id).await;
        }
        raw.settle().await;
        let (mut cm, mut rm) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                cm.push(batch_cm(&ids).await);
                rm.push(batch_raw(&raw, &ids).await);
            } else {
                rm.push(batch_raw(&raw, &ids).await);
                cm.push(batch_cm(&ids).await);
            }
        }
        table.lower_is_better(
            "L1 hit, 1 thread, 10k keys random (median ns/op)",
            "ns",
            median(&mut cm),
            ("raw moka::future get + clone", median(&mut rm)),
            Some(1.15),
        );
    });
}

/// Which implementation a multi-thread batch runs.
#[derive(Clone, Copy)]
enum Subject {
    Cachemacro,
    Raw,
}

/// Ops per second with `tasks` tasks on the current multi-thread runtime.
async fn throughput(subject: Subject, raw: &RawMoka, tasks: usize, per_task: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let raw = raw.clone();
            let ids = random_ids(per_task, KEYS, 1000 + t as u64);
            tokio::spawn(async move {
                for id in ids {
                    match subject {
                        Subject::Cachemacro => black_box(cm_user(id).await),
                        Subject::Raw => black_box(raw.get(id).await),
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// Scenario 1, tokio multi-thread runtime with 2 workers and 64 tasks: hits per second.
pub fn hit_multi_thread(table: &mut Table, rounds: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let raw = RawMoka::default();
        for id in 0..KEYS {
            cm_user(id).await;
            raw.get(id).await;
        }
        raw.settle().await;
        let (mut cm, mut rm) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Subject::Cachemacro, Subject::Raw]
            } else {
                [Subject::Raw, Subject::Cachemacro]
            };
            for subject in order {
                let ops = throughput(subject, &raw, 64, 20_000).await;
                match subject {
                    Subject::Cachemacro => cm.push(ops),
                    Subject::Raw => rm.push(ops),
                }
            }
        }
        table.higher_is_better(
            "L1 hit, 2 workers × 64 tasks (median hits/s)",
            "/s",
            median(&mut cm),
            ("raw moka::future get + clone", median(&mut rm)),
            Some(1.0 / 1.15),
        );
    });
}

static SCALE_CACHE: OnceCell<Cache> = OnceCell::new();

fn scale_cache() -> &'static Cache {
    SCALE_CACHE.get_or_init(|| {
        Cache::builder()
            .namespace("bench")
            .l1_capacity(2_000_000)
            .default_ttl(Duration::from_secs(600))
            .build_in_memory()
            .expect("valid settings")
    })
}

#[cached(key = "scale:<id>", ttl = "10m", cache = scale_cache())]
async fn scale_user(id: u64) -> User {
    user(id)
}

/// Scenario 6, latency: the L1 hit cost as the cache grows to 1k, 100k and 1M entries.
pub fn hit_at_scale(table: &mut Table, rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let raw = RawMoka::default();
        let mut filled = 0;
        let mut first = None;
        for size in [1_000u64, 100_000, 1_000_000] {
            for id in filled..size {
                scale_user(id).await;
                raw.get(id).await;
            }
            filled = size;
            raw.settle().await;
            let ids = random_ids(200_000, size, size);
            let (mut cm, mut rm) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let run_cm = || async {
                    let start = Instant::now();
                    for &id in &ids {
                        black_box(scale_user(id).await);
                    }
                    start.elapsed().as_nanos() as f64 / ids.len() as f64
                };
                if round % 2 == 0 {
                    cm.push(run_cm().await);
                    rm.push(batch_raw_scale(&raw, &ids).await);
                } else {
                    rm.push(batch_raw_scale(&raw, &ids).await);
                    cm.push(run_cm().await);
                }
            }
            let ours = median(&mut cm);
            let base = *first.get_or_insert(ours);
            table.lower_is_better(
                &format!("L1 hit at {size} entries (median ns/op; ratio to 1k)"),
                "ns",
                ours,
                ("cachemacro at 1k entries", base),
                None,
            );
            table.lower_is_better(
                &format!("L1 hit at {size} entries vs raw moka"),
                "ns",
                ours,
                ("raw moka", median(&mut rm)),
                Some(1.15),
            );
        }
    });
}

async fn batch_raw_scale(raw: &RawMoka, ids: &[u64]) -> f64 {
    batch_raw(raw, ids).await
}
