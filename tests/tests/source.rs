//! Where a value came from, per call: the companion `with_source` (the `cached` crate's
//! `with_cached_flag`), in memory and across two instances on one Redis.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache, Source};
use cachemacro_tests::{current, instance, on, RedisServer};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "price:<id>", ttl = "1m", cache = current())]
async fn price(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id * 10
}

#[tokio::test]
async fn the_first_call_loads_the_next_hits_memory_and_a_peer_reads_redis() {
    let server = RedisServer::start();
    let a = instance(&server, "source").await;
    let b = instance(&server, "source").await;
    assert_eq!(on(&a, price::with_source(1)).await, (10, Source::Loaded));
    assert_eq!(on(&a, price::with_source(1)).await, (10, Source::L1));
    assert_eq!(on(&b, price::with_source(1)).await, (10, Source::L2));
    assert_eq!(on(&b, price::with_source(1)).await, (10, Source::L1));
    // In memory only: loaded, then memory.
    let memory = Cache::in_memory();
    assert_eq!(
        on(&memory, price::with_source(2)).await,
        (20, Source::Loaded)
    );
    assert_eq!(on(&memory, price::with_source(2)).await, (20, Source::L1));
    // After an invalidation, loaded again.
    on(&a, price::remove_cached(1)).await.unwrap();
    assert_eq!(on(&a, price::with_source(1)).await, (10, Source::Loaded));
}

#[tokio::test]
async fn a_call_without_the_cache_reports_loaded() {
    let cache = Cache::in_memory();
    on(&cache, price(3)).await;
    let (value, source) = on(&cache, cachemacro::without_cache(price::with_source(3))).await;
    assert_eq!((value, source), (30, Source::Loaded));
    assert!(!source.is_cached());
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "slow:<id>", ttl = "1m", cache = current())]
async fn slow(id: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    id
}

#[tokio::test]
async fn a_caller_that_waited_for_another_ones_load_reports_joined() {
    let cache = Cache::in_memory();
    let first = on(&cache, slow::with_source(1));
    let second = on(&cache, async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        slow::with_source(1).await
    });
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first, (1, Source::Loaded));
    assert_eq!(second, (1, Source::Joined));
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
}

static FAILING: AtomicU64 = AtomicU64::new(0);

#[cached(key = "rate:<id>", ttl = "500ms", stale_for = "1h", cache = current())]
async fn rate(id: u64) -> Result<u64, String> {
    match FAILING.load(Ordering::SeqCst) {
        0 => Ok(id),
        _ => Err("down".into()),
    }
}

#[tokio::test]
async fn a_failed_reload_that_serves_the_last_good_value_reports_stale() {
    let server = RedisServer::start();
    let memory = Cache::in_memory();
    let a = instance(&server, "stale-source").await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        FAILING.store(0, Ordering::SeqCst);
        assert_eq!(
            on(cache, rate::with_source(id)).await,
            (Ok(id), Source::Loaded)
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        FAILING.store(1, Ordering::SeqCst);
        let (value, source) = on(cache, rate::with_source(id)).await;
        assert_eq!((value, source), (Ok(id), Source::Stale));
        assert!(source.is_cached());
    }
    // A failure with no stale value left: loaded, and the error.
    assert_eq!(
        on(&memory, rate::with_source(9)).await,
        (Err("down".into()), Source::Loaded)
    );
}

#[cached(key = "inner:<id>", ttl = "1m", cache = current())]
async fn inner(id: u64) -> u64 {
    id + 1
}

#[cached(key = "outer:<id>", ttl = "1m", cache = current())]
async fn outer(id: u64) -> u64 {
    inner(id).await * 2
}

#[tokio::test]
async fn the_cached_calls_a_body_makes_do_not_answer_for_their_caller() {
    let cache = Cache::in_memory();
    // `inner` is in memory; `outer` is not: its body hits `inner`'s entry.
    on(&cache, inner(1)).await;
    assert_eq!(on(&cache, outer::with_source(1)).await, (4, Source::Loaded));
    assert_eq!(on(&cache, outer::with_source(1)).await, (4, Source::L1));
    // And the other way round: `outer` loads `inner` (a miss) inside its own miss.
    assert_eq!(on(&cache, outer::with_source(2)).await, (6, Source::Loaded));
    assert_eq!(on(&cache, inner::with_source(2)).await, (3, Source::L1));
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "repo:<id>", ttl = "1m", cache = &self.cache)]
    async fn name(&self, id: u64) -> String {
        format!("n{id}")
    }
}

#[tokio::test]
async fn a_methods_companion_reports_the_source_too() {
    let repo = Repo {
        cache: Cache::in_memory(),
    };
    assert_eq!(
        repo.name_with_source(1).await,
        ("n1".into(), Source::Loaded)
    );
    assert_eq!(repo.name_with_source(1).await, ("n1".into(), Source::L1));
    assert_eq!(repo.name(1).await, "n1");
}

#[cached(key = "uncached-outer:<id>", ttl = std::time::Duration::ZERO, cache = current())]
async fn never_cached(id: u64) -> u64 {
    inner(id).await * 3
}

#[tokio::test]
async fn a_body_run_without_the_cache_reports_loaded_whatever_it_calls() {
    let cache = Cache::in_memory();
    on(&cache, inner(5)).await;
    // A zero TTL runs the body without the cache; the body's hit on `inner` is its own.
    assert_eq!(
        on(&cache, never_cached::with_source(5)).await,
        (18, Source::Loaded)
    );
}
