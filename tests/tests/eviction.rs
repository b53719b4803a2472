//! Redis under memory pressure: every key has a TTL, so `maxmemory-policy volatile-lru` can
//! evict any of them, and an evicted value is just a miss.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::cached;
use cachemacro_tests::{current, on, RedisServer};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "page:<id>", ttl = "10m", cache = current())]
async fn page(id: u64) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("{id}:").repeat(500)
}

#[tokio::test]
async fn evicted_values_are_misses_and_reads_stay_correct() {
    let server =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "volatile-lru"]);
    let writer = small_l1(&server).await;
    for id in 0..4_000 {
        on(&writer, page(id)).await;
    }
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(evicted > 0, "the test must push Redis past maxmemory");

    let reader = small_l1(&server).await;
    let before = LOADS.load(Ordering::SeqCst);
    // Newest first: the most recently written values are the ones LRU kept.
    for id in (0..4_000).rev() {
        assert_eq!(on(&reader, page(id)).await, format!("{id}:").repeat(500));
    }
    let reloaded = LOADS.load(Ordering::SeqCst) - before;
    assert!(
        reloaded > 0 && reloaded < 4_000,
        "some values came from Redis, evicted ones were reloaded: {reloaded}"
    );
}

async fn small_l1(server: &RedisServer) -> cachemacro::Cache {
    cachemacro::Cache::builder()
        .namespace("app")
        .redis(server.url())
        .l1_capacity(100)
        .build()
        .await
        .unwrap()
}
