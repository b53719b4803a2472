//! Graceful shutdown: `cache.shutdown().await` waits for background work to store what it
//! loads, leaves the bus, closes its Redis connections, and later calls fail open.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachemacro::{cached, Error};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};

static VALUE: AtomicU64 = AtomicU64::new(1);
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A source that takes 400 ms to answer.
#[cached(key = "slow:<id>", ttl = "2s", refresh_ahead = 0.5, cache = current())]
async fn slow(id: u64) -> u64 {
    let _ = id;
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    VALUE.load(Ordering::SeqCst)
}

#[tokio::test]
async fn shutdown_lets_a_refresh_finish_then_leaves_redis_and_fails_open() {
    let server = RedisServer::start();
    let baseline = server.info_number("connected_clients");
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    assert!(a.bus_connected() && b.bus_connected());

    assert_eq!(on(&a, slow(1)).await, 1);
    // Past the refresh point: the hit answers at once and a refresh starts in the
    // background; shut down while it runs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    VALUE.store(2, Ordering::SeqCst);
    assert_eq!(on(&a, slow(1)).await, 1, "the old value, at once");
    let started = Instant::now();
    a.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the refresh ({:?})",
        started.elapsed()
    );
    // The refresh stored its value before the connection closed: B reads it from Redis.
    assert!(server.stored_bytes("app:c1:k:slow:1").is_some());
    let runs = RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, slow(1)).await, 2, "B got the refreshed value");
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "from Redis, not a load");

    // A left: no bus, no Redis, and its connections are gone.
    assert!(a.is_shut_down());
    assert!(!a.bus_connected());
    assert!(!a.redis_available());
    drop(b);
    assert!(
        eventually(Duration::from_secs(5), || server
            .info_number("connected_clients")
            == baseline)
        .await,
        "every connection closed: {} open, {baseline} before",
        server.info_number("connected_clients")
    );

    // Later calls fail open: the body runs every time, nothing is stored or served.
    VALUE.store(3, Ordering::SeqCst);
    let runs = RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&a, slow(1)).await, 3);
    assert_eq!(on(&a, slow(1)).await, 3);
    assert_eq!(RUNS.load(Ordering::SeqCst), runs + 2);
    a.set("k", 5u32, None).await.unwrap();
    assert_eq!(a.get::<u32>("k").await.unwrap(), None);
    assert_eq!(a.get_or_set("k", None, || async { 6u32 }).await, 6);
    // An invalidation cannot reach the others any more: an error, not a silent Ok.
    let err = on(&a, slow::remove_cached(1)).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    // A second shutdown returns at once.
    a.shutdown().await;
}

#[tokio::test]
async fn an_in_memory_cache_shuts_down_too() {
    let cache = cachemacro::Cache::in_memory();
    cache.set("k", 1u32, None).await.unwrap();
    cache.shutdown().await;
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    assert!(!cache.contains_local("k"));
}
