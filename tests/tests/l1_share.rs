//! A function's share of L1 (`#[cached(l1_capacity = N)]`, the `cached` crate's per-function
//! `size`): a hot function evicts its own entries, not the others'; its entries are counted
//! and cleared; every invalidation still finds them. In memory and on Redis.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};

static COLD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "cold:<id>", ttl = "1h", cache = current())]
async fn cold(id: u64) -> u64 {
    COLD_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached(key = "hot:<id>", ttl = "1h", l1_capacity = 50, cache = current())]
async fn hot(id: u64) -> u64 {
    id
}

#[cached(key = "greedy:<id>", ttl = "1h", cache = current())]
async fn greedy(id: u64) -> u64 {
    id
}

/// A small L1: 300 entries shared.
async fn small() -> Cache {
    Cache::builder().l1_capacity(300).build().await.unwrap()
}

/// How many of the cold entries (ids `from..from + 100`) a second round had to load again.
async fn cold_reloads(cache: &Cache, from: u64) -> usize {
    let runs = COLD_RUNS.load(Ordering::SeqCst);
    for id in from..from + 100 {
        on(cache, cold(id)).await;
    }
    COLD_RUNS.load(Ordering::SeqCst) - runs
}

#[tokio::test]
async fn a_hot_function_with_a_share_evicts_its_own_entries_not_the_others() {
    // Without a share, a function whose 2,000 keys are each read again pushes the others
    // out (keys read once only would not: S3-FIFO keeps them on probation).
    let shared = small().await;
    for id in 0..100 {
        on(&shared, cold(id)).await;
    }
    for id in 0..2_000 {
        on(&shared, greedy(id)).await;
        on(&shared, greedy(id)).await;
    }
    let lost = cold_reloads(&shared, 0).await;
    assert!(lost > 50, "the greedy function evicted {lost} of 100");

    // With one, the same load leaves them all.
    let cache = small().await;
    for id in 1_000..1_100 {
        on(&cache, cold(id)).await;
    }
    for id in 0..2_000 {
        on(&cache, hot(id)).await;
        on(&cache, hot(id)).await;
    }
    assert_eq!(cold_reloads(&cache, 1_000).await, 0, "none evicted");
    let held = on(&cache, async { hot::local_entry_count() }).await;
    assert!(
        (1..=50).contains(&held),
        "the share holds at most 50: {held}"
    );
    // The latest ones are there.
    assert!(cache.contains_local(&hot::key(1_999)));
}

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "counted:<id>", ttl = "1h", l1_capacity = 1000, cache = current())]
async fn counted(id: u64) -> u64 {
    COUNTED_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_functions_entries_are_counted_and_cleared_alone() {
    let cache = Cache::in_memory();
    on(&cache, async {
        assert_eq!(counted::local_entry_count(), 0);
        for id in 0..10 {
            counted(id).await;
            cold(id + 10_000).await;
        }
        assert_eq!(counted::local_entry_count(), 10);
        counted::clear_local();
        assert_eq!(counted::local_entry_count(), 0);
        let runs = COUNTED_RUNS.load(Ordering::SeqCst);
        counted(3).await;
        assert_eq!(
            COUNTED_RUNS.load(Ordering::SeqCst),
            runs + 1,
            "loaded again"
        );
        assert_eq!(counted::local_entry_count(), 1);
    })
    .await;
    // The other function's entries stayed.
    assert!(cache.contains_local(&cold::key(10_005)));
    assert_eq!(cache.local_entry_count(), 11);
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "shared:<id>", ttl = "1h", l1_capacity = 100, tags = ["group:<id>"], cache = current())]
async fn in_share(id: u64) -> u64 {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

fn shared_runs() -> usize {
    SHARED_RUNS.load(Ordering::SeqCst)
}

#[tokio::test]
async fn every_invalidation_reaches_an_entry_in_a_share() {
    let server = RedisServer::start();
    let memory = Cache::in_memory();
    let a = instance(&server, "share").await;
    let b = instance(&server, "share").await;
    for cache in [&memory, &a] {
        // remove_cached, invalidate_tag, clear: each makes the next call load.
        for (id, how) in [(1, "remove"), (2, "tag"), (3, "clear"), (4, "get")] {
            on(cache, in_share(id)).await;
            let runs = shared_runs();
            on(cache, in_share(id)).await;
            assert_eq!(shared_runs(), runs, "a hit");
            match how {
                "remove" => on(cache, in_share::remove_cached(id)).await.unwrap(),
                "tag" => drop(cache.invalidate_tag("group:2").await.unwrap()),
                "clear" => {
                    // Memory only: a copy in Redis stays, as any does.
                    cache.clear().await.unwrap();
                    assert!(!cache.contains_local(&in_share::key(id)));
                    continue;
                }
                _ => {
                    // Reads by key find it too.
                    assert_eq!(cache.get::<u64>(&in_share::key(id)).await.unwrap(), Some(4));
                    continue;
                }
            }
            on(cache, in_share(id)).await;
            assert_eq!(shared_runs(), runs + 1, "after {how}: loaded again");
        }
    }
    // A peer's invalidation reaches it through the bus; a peer's read lands in its share.
    on(&a, in_share(7)).await;
    let runs = shared_runs();
    on(&b, in_share(7)).await;
    assert_eq!(shared_runs(), runs, "from Redis");
    assert_eq!(on(&b, async { in_share::local_entry_count() }).await, 1);
    on(&b, in_share::remove_cached(7)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !a
            .contains_local(&in_share::key(7)))
        .await,
        "the peer's removal reached the share"
    );
    // A value written with `set` under its key replaces the share's copy.
    on(&a, in_share(8)).await;
    a.set(&in_share::key(8), 80u64, None).await.unwrap();
    assert_eq!(on(&a, in_share(8)).await, 80);
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "repo:<id>", ttl = "1h", l1_capacity = 5, cache = &self.cache)]
    async fn item(&self, id: u64) -> u64 {
        id
    }
}

#[tokio::test]
async fn a_methods_share_is_counted_and_cleared_through_its_companion() {
    let repo = Repo {
        cache: Cache::in_memory(),
    };
    for id in 0..20 {
        repo.item(id).await;
    }
    let held = repo.item_local_entry_count();
    assert!((1..=5).contains(&held), "{held}");
    repo.item_clear_local();
    assert_eq!(repo.item_local_entry_count(), 0);
}
