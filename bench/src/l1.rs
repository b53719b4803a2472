//! L1 hits: `#[cached]` against a raw moka cache doing the same work by hand.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use once_cell::sync::OnceCell;

use crate::alternatives::{cached_user, concurrent_cached_user, MultiTier};
use crate::model::{random_ids, user, User};
use crate::stats::{median, Table};
use crate::Redis;

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

/// ns per call over `ids`, calling the raw moka cache.
async fn batch_raw(raw: &RawMoka, ids: &[u64]) -> f64 {
    let start = Instant::now();
    for &id in ids {
        black_box(raw.get(id).await);
    }
    start.elapsed().as_nanos() as f64 / ids.len() as f64
}

const KEYS: u64 = 10_000;

/// An implementation under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Cachemacro,
    RawMoka,
    Cached,
    ConcurrentCached,
    MultiTier,
}

const SUBJECTS: [Subject; 5] = [
    Subject::Cachemacro,
    Subject::RawMoka,
    Subject::Cached,
    Subject::ConcurrentCached,
    Subject::MultiTier,
];

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Cachemacro => "cachemacro #[cached]",
            Subject::RawMoka => "raw moka::future get + clone",
            Subject::Cached => "`cached` crate #[cached] (size+time)",
            Subject::ConcurrentCached => "`cached` crate #[concurrent_cached]",
            Subject::MultiTier => "multi-tier-cache get_typed",
        }
    }

    /// The target ratio of cachemacro to this subject, and whether higher is better.
    fn single_thread_target(self) -> Option<f64> {
        (self == Subject::RawMoka).then_some(1.15)
    }

    fn multi_thread_target(self) -> Option<f64> {
        match self {
            Subject::RawMoka => Some(1.0 / 1.15),
            Subject::Cached => Some(1.5),
            _ => None,
        }
    }
}

/// Every subject, ready: the same 10k users cached in each.
#[derive(Clone)]
struct Subjects {
    raw: RawMoka,
    multi_tier: Arc<MultiTier>,
}

impl Subjects {
    async fn warm(redis: &Redis) -> Self {
        let raw = RawMoka::default();
        let multi_tier = Arc::new(MultiTier::new(&redis.url).await);
        for id in 0..KEYS {
            cm_user(id).await;
            raw.get(id).await;
            cached_user(id).await;
            concurrent_cached_user(id).await;
            multi_tier.fill(id).await;
        }
        raw.settle().await;
        Self { raw, multi_tier }
    }

    /// Calls `subject` for every id in `ids`. Each arm loops over its own future type, so no
    /// subject pays for the size of another's future.
    async fn run(&self, subject: Subject, ids: &[u64]) {
        match subject {
            Subject::Cachemacro => {
                for &id in ids {
                    black_box(cm_user(id).await);
                }
            }
            Subject::RawMoka => {
                for &id in ids {
                    black_box(self.raw.get(id).await);
                }
            }
            Subject::Cached => {
                for &id in ids {
                    black_box(cached_user(id).await);
                }
            }
            Subject::ConcurrentCached => {
                for &id in ids {
                    black_box(concurrent_cached_user(id).await);
                }
            }
            Subject::MultiTier => {
                for &id in ids {
                    black_box(self.multi_tier.get(id).await);
                }
            }
        }
    }

    /// ns per call over `ids`.
    async fn batch(&self, subject: Subject, ids: &[u64]) -> f64 {
        let start = Instant::now();
        self.run(subject, ids).await;
        start.elapsed().as_nanos() as f64 / ids.len() as f64
    }
}

/// Runs `measure` for every subject, `rounds` times, rotating the order each round.
/// Returns the samples per subject.
async fn alternate<F, Fut>(rounds: usize, mut measure: F) -> Vec<Vec<f64>>
where
    F: FnMut(Subject) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let mut samples = vec![Vec::new(); SUBJECTS.len()];
    for round in 0..rounds {
        for k in 0..SUBJECTS.len() {
            let index = (k + round) % SUBJECTS.len();
            samples[index].push(measure(SUBJECTS[index]).await);
        }
    }
    samples
}

/// Scenario 1, single thread: ns per L1 hit.
pub fn hit_single_thread(table: &mut Table, redis: &Redis, rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let subjects = Subjects::warm(redis).await;
        let ids = random_ids(100_000, KEYS, 7);
        let mut samples = alternate(rounds, |s| subjects.batch(s, &ids)).await;
        let ours = median(&mut samples[0]);
        for (subject, samples) in SUBJECTS.iter().zip(samples.iter_mut()).skip(1) {
            table.lower_is_better(
                "L1 hit, 1 thread, 10k keys random (median ns/op)",
                "ns",
                ours,
                (subject.label(), median(samples)),
                subject.single_thread_target(),
            );
        }
    });
}

/// Hits per second with 64 tasks on the current multi-thread runtime.
async fn throughput(subjects: &Subjects, subject: Subject, per_task: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|t| {
            let subjects = subjects.clone();
            let ids = random_ids(per_task, KEYS, 1000 + t as u64);
            tokio::spawn(async move { subjects.run(subject, &ids).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (64 * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// Scenario 1, tokio multi-thread runtime with 2 workers and 64 tasks: hits per second.
pub fn hit_multi_thread(table: &mut Table, redis: &Redis, rounds: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let subjects = Subjects::warm(redis).await;
        let mut samples = alternate(rounds, |s| throughput(&subjects, s, 10_000)).await;
        let ours = median(&mut samples[0]);
        for (subject, samples) in SUBJECTS.iter().zip(samples.iter_mut()).skip(1) {
            table.higher_is_better(
                "L1 hit, 2 workers × 64 tasks (median hits/s)",
                "/s",
                ours,
                (subject.label(), median(samples)),
                subject.multi_thread_target(),
            );
        }
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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
