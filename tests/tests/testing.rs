//! Tests of code that uses `#[cached]`: a cache of their own per test (task-local, so tests
//! running in parallel never see each other's entries), and caching bypassed.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, global, with_cache, without_cache, Cache};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns which run of the body answered: two calls that return the same number share an
/// entry.
#[cached(key = "run:<id>")]
async fn run(id: u64) -> usize {
    let _ = id;
    RUNS.fetch_add(1, Ordering::SeqCst)
}

/// Each of these tests runs in parallel with the others, with the same key.
async fn isolated_test() {
    let cache = Cache::in_memory();
    with_cache(cache.clone(), async {
        let first = run(1).await;
        assert_eq!(run(1).await, first, "cached in this test's cache");
        assert!(cache.contains_local(&run::key(1)));
        // `global()` is this test's cache too, so invalidation code under test reaches it.
        assert!(global().contains_local(&run::key(1)));
        global().remove(&run::key(1)).await.unwrap();
        assert!(!cache.contains_local(&run::key(1)));
        run(1).await;
        run::remove_cached(1).await.unwrap();
        assert!(!cache.contains_local(&run::key(1)));
    })
    .await;
}

#[tokio::test]
async fn with_cache_isolates_test_one() {
    isolated_test().await;
}

#[tokio::test]
async fn with_cache_isolates_test_two() {
    isolated_test().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_with_their_own_caches_never_share_entries() {
    let a = Cache::in_memory();
    let b = Cache::in_memory();
    let task = |cache: Cache| {
        tokio::spawn(with_cache(cache, async {
            let first = run(2).await;
            for _ in 0..100 {
                assert_eq!(run(2).await, first);
                tokio::task::yield_now().await;
            }
            first
        }))
    };
    let (ra, rb) = (task(a.clone()), task(b.clone()));
    let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
    assert_ne!(ra, rb, "each cache loaded its own value");
    assert!(a.contains_local(&run::key(2)) && b.contains_local(&run::key(2)));
    assert!(
        !global().contains_local(&run::key(2)),
        "the process's global cache saw none of it"
    );
}

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "price:<sku>")]
async fn price(sku: u32) -> u32 {
    PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
    sku * 100
}

static EXPLICIT: once_cell::sync::Lazy<Cache> = once_cell::sync::Lazy::new(Cache::in_memory);
static EXPLICIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "explicit:<sku>", cache = &*EXPLICIT)]
async fn explicit(sku: u32) -> u32 {
    EXPLICIT_RUNS.fetch_add(1, Ordering::SeqCst);
    sku
}

#[tokio::test]
async fn without_cache_runs_every_body() {
    let cache = Cache::in_memory();
    with_cache(cache.clone(), async {
        price(1).await;
        without_cache(async {
            for _ in 0..3 {
                assert_eq!(price(2).await, 200);
                assert_eq!(explicit(2).await, 2);
            }
        })
        .await;
        assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 4, "1 + 3 runs");
        assert_eq!(
            EXPLICIT_RUNS.load(Ordering::SeqCst),
            3,
            "`cache = ...` is bypassed too"
        );
        assert!(!cache.contains_local(&price::key(2)), "nothing stored");
        assert!(!EXPLICIT.contains_local(&explicit::key(2)));
        // Back in `with_cache`: cached again, in the test's cache.
        price(2).await;
        price(2).await;
        assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 5);
        assert!(cache.contains_local(&price::key(2)));
    })
    .await;
}
