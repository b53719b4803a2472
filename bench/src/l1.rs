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

static NO_FRONT_CACHE: OnceCell<Cache> = OnceCell::new();

/// [`l1_cache`] with the functions' fronts turned off: every hit writes and looks up the key.
pub fn no_front_cache() -> &'static Cache {
    NO_FRONT_CACHE.get_or_init(|| {
        Cache::builder()
            .namespace("bench")
            .l1_capacity(2_000_000)
            .l1_front_capacity(0)
            .default_ttl(Duration::from_secs(600))
            .build_in_memory()
            .expect("valid settings")
    })
}

/// The function under test, on [`no_front_cache`]: the L1 hit without its front.
#[cached(key = "user:<id>", ttl = "10m", cache = no_front_cache())]
pub async fn cm_user_no_front(id: u64) -> User {
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

/// A hand-written cache-aside over `quick_cache::sync::Cache<String, Arc<User>>` (S3-FIFO-like,
/// no TTL), built the same way as [`RawMoka`].
#[derive(Clone)]
pub struct RawQuick(Arc<quick_cache::sync::Cache<String, Arc<User>>>);

impl Default for RawQuick {
    fn default() -> Self {
        Self(Arc::new(quick_cache::sync::Cache::new(2_000_000)))
    }
}

impl RawQuick {
    /// Read-through get.
    pub fn get(&self, id: u64) -> User {
        let key = format!("bench:c1:k:user:{id}");
        if let Some(hit) = self.0.get(key.as_str()) {
            return User::clone(&hit);
        }
        let value = Arc::new(user(id));
        self.0.insert(key, Arc::clone(&value));
        User::clone(&value)
    }
}

/// The floor: a `RwLock<HashMap<String, Arc<User>>>` with no eviction and no TTL, the key
/// written into a reused per-thread buffer as cachemacro's hit path does. No cache can do
/// less work per hit with the same key.
#[derive(Clone, Default)]
pub struct Floor(Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<User>>>>);

impl Floor {
    /// Read-through get.
    pub fn get(&self, id: u64) -> User {
        use std::fmt::Write as _;
        thread_local! {
            static KEY: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(64));
        }
        let hit = KEY.with_borrow_mut(|key| {
            key.clear();
            let _ = write!(key, "bench:c1:k:user:{id}");
            let map = self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(key.as_str()).map(|v| User::clone(v))
        });
        if let Some(hit) = hit {
            return hit;
        }
        let value = user(id);
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(format!("bench:c1:k:user:{id}"), Arc::new(value.clone()));
        value
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
    NoFront,
    RawMoka,
    RawQuick,
    Cached,
    ConcurrentCached,
    MultiTier,
    Floor,
}

const SUBJECTS: [Subject; 8] = [
    Subject::Cachemacro,
    Subject::NoFront,
    Subject::RawMoka,
    Subject::RawQuick,
    Subject::Cached,
    Subject::ConcurrentCached,
    Subject::MultiTier,
    Subject::Floor,
];

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Cachemacro => "cachemacro #[cached]",
            Subject::NoFront => "cachemacro #[cached] with fronts off (l1_front_capacity(0))",
            Subject::RawMoka => "raw moka::future get + clone",
            Subject::RawQuick => "raw quick_cache::sync get + clone",
            Subject::Cached => "`cached` crate #[cached] (size+time)",
            Subject::ConcurrentCached => "`cached` crate #[concurrent_cached]",
            Subject::MultiTier => "multi-tier-cache get_typed",
            Subject::Floor => "RwLock<HashMap> floor (no eviction, no TTL)",
        }
    }

    /// The target ratio of cachemacro to this subject, and whether higher is better.
    /// The goal: at or below `cached`'s `#[concurrent_cached]` per hit.
    fn single_thread_target(self) -> Option<f64> {
        match self {
            Subject::RawMoka | Subject::ConcurrentCached => Some(1.0),
            _ => None,
        }
    }

    /// At or above `#[concurrent_cached]`'s throughput; the moonshot: half the floor's.
    fn multi_thread_target(self) -> Option<f64> {
        match self {
            Subject::RawMoka | Subject::ConcurrentCached => Some(1.0),
            Subject::Cached => Some(1.5),
            Subject::Floor => Some(0.5),
            _ => None,
        }
    }
}

/// Every subject, ready: the same 10k users cached in each.
#[derive(Clone)]
struct Subjects {
    raw: RawMoka,
    quick: RawQuick,
    floor: Floor,
    multi_tier: Arc<MultiTier>,
}

impl Subjects {
    async fn warm(redis: &Redis) -> Self {
        let raw = RawMoka::default();
        let quick = RawQuick::default();
        let floor = Floor::default();
        let multi_tier = Arc::new(MultiTier::new(&redis.url).await);
        for id in 0..KEYS {
            cm_user(id).await;
            cm_user_no_front(id).await;
            raw.get(id).await;
            quick.get(id);
            floor.get(id);
            cached_user(id).await;
            concurrent_cached_user(id).await;
            multi_tier.fill(id).await;
        }
        raw.settle().await;
        Self {
            raw,
            quick,
            floor,
            multi_tier,
        }
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
            Subject::NoFront => {
                for &id in ids {
                    black_box(cm_user_no_front(id).await);
                }
            }
            Subject::RawMoka => {
                for &id in ids {
                    black_box(self.raw.get(id).await);
                }
            }
            Subject::RawQuick => {
                for &id in ids {
                    black_box(self.quick.get(id));
                }
            }
            Subject::Floor => {
                for &id in ids {
                    black_box(self.floor.get(id));
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
async fn alternate<F, Fut>(rounds: usize, measure: F) -> Vec<Vec<f64>>
where
    F: FnMut(Subject) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    alternate_among(&SUBJECTS, rounds, measure).await
}

/// [`alternate`] over `subjects` only.
async fn alternate_among<F, Fut>(
    subjects: &[Subject],
    rounds: usize,
    mut measure: F,
) -> Vec<Vec<f64>>
where
    F: FnMut(Subject) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    // `BENCH_PROFILE=1` measures cachemacro alone, for a profiler (the table is then void).
    let only_ours = std::env::var("BENCH_PROFILE").is_ok();
    let mut samples = vec![Vec::new(); subjects.len()];
    for round in 0..rounds {
        for k in 0..subjects.len() {
            let index = (k + round) % subjects.len();
            if only_ours && subjects[index] != Subject::Cachemacro {
                samples[index].push(f64::NAN);
                continue;
            }
            samples[index].push(measure(subjects[index]).await);
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

/// Hits per second with `tasks` tasks on the current multi-thread runtime.
async fn throughput(subjects: &Subjects, subject: Subject, tasks: usize, per_task: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let subjects = subjects.clone();
            let ids = random_ids(per_task, KEYS, 1000 + t as u64);
            tokio::spawn(async move { subjects.run(subject, &ids).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// Scenario 1, tokio multi-thread runtime with 2 workers and 64 tasks: hits per second.
pub fn hit_multi_thread(table: &mut Table, redis: &Redis, rounds: usize) {
    let rt = crate::multi_thread();
    rt.block_on(async {
        let subjects = Subjects::warm(redis).await;
        let mut samples = alternate(rounds, |s| throughput(&subjects, s, 64, 10_000)).await;
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

/// The scaling row: hits/s with 1, 4, 16 and 64 tasks on 2 workers, against the fastest
/// peers, and against cachemacro's own rate with one task (flat is 1.0; with one task only
/// one worker is busy, so on two free cores the rate may double).
pub fn hit_scaling(table: &mut Table, redis: &Redis, rounds: usize) {
    const COMPARED: [Subject; 4] = [
        Subject::Cachemacro,
        Subject::ConcurrentCached,
        Subject::RawMoka,
        Subject::RawQuick,
    ];
    let rt = crate::multi_thread();
    rt.block_on(async {
        let subjects = Subjects::warm(redis).await;
        let mut alone = None;
        for tasks in [1usize, 4, 16, 64] {
            let per_task = 640_000 / tasks;
            let mut samples = alternate_among(&COMPARED, rounds, |s| {
                throughput(&subjects, s, tasks, per_task)
            })
            .await;
            let ours = median(&mut samples[0]);
            for (subject, samples) in COMPARED.iter().zip(samples.iter_mut()).skip(1) {
                table.higher_is_better(
                    &format!("L1 hit, 2 workers × {tasks} tasks (median hits/s)"),
                    "/s",
                    ours,
                    (subject.label(), median(samples)),
                    (*subject == Subject::ConcurrentCached).then_some(1.0),
                );
            }
            // Flat: more tasks on the same two workers must not lower the hit rate (moka's
            // falls as readers contend on its shared read buffer).
            let base = *alone.get_or_insert(ours);
            table.higher_is_better(
                &format!("L1 hit, {tasks} tasks vs 1 task (hits/s; flat or rising = ≥ 1.0)"),
                "/s",
                ours,
                ("cachemacro with 1 task", base),
                Some(0.9),
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
