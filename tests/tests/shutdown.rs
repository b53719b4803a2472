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

// ---- A bounded shutdown ----

/// While set, the sources below do not answer.
static HUNG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// How many of their loads ran to the end.
static COMPLETED: AtomicUsize = AtomicUsize::new(0);
/// What they answer, plus the id.
static ANSWER: AtomicU64 = AtomicU64::new(100);

async fn hanging_source(value: u64) -> u64 {
    while HUNG.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    COMPLETED.fetch_add(1, Ordering::SeqCst);
    value
}

#[cached(key = "hung-ahead:<id>", ttl = "4s", refresh_ahead = 0.5, cache = current())]
async fn hung_ahead(id: u64) -> u64 {
    hanging_source(id + ANSWER.load(Ordering::SeqCst)).await
}

#[cached(key = "hung-soft:<id>", ttl = "1s", stale_for = "1h", soft_timeout = "50ms", cache = current())]
async fn hung_soft(id: u64) -> u64 {
    hanging_source(id + ANSWER.load(Ordering::SeqCst)).await
}

#[tokio::test]
async fn shutdown_abandons_background_loads_that_outlive_its_bound_and_they_store_nothing() {
    let server = RedisServer::start();
    let a = cachemacro::Cache::builder()
        .namespace("bounded")
        .redis(server.url())
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert_eq!(on(&a, hung_ahead(1)).await, 101);
    assert_eq!(on(&a, hung_soft(1)).await, 101);
    // Past hung_ahead's refresh point (2 s) and hung_soft's TTL (1 s).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The source hangs: a refresh ahead and a reload past its soft timeout go on in the
    // background, with no hard timeout to end them.
    HUNG.store(true, Ordering::SeqCst);
    ANSWER.store(200, Ordering::SeqCst);
    assert_eq!(on(&a, hung_ahead(1)).await, 101, "the hit answers at once");
    assert_eq!(
        on(&a, hung_soft(1)).await,
        101,
        "the stale value after 50 ms"
    );
    let stored = [
        server.stored_bytes("bounded:c1:k:hung-ahead:1"),
        server.stored_bytes("bounded:c1:k:hung-soft:1"),
    ];
    let completed = COMPLETED.load(Ordering::SeqCst);

    let started = Instant::now();
    let bounded = tokio::time::timeout(Duration::from_secs(10), a.shutdown()).await;
    let took = started.elapsed();
    eprintln!("shutdown with two hung background loads took {took:?} (bound 500 ms)");
    assert!(bounded.is_ok(), "shutdown returned (after {took:?})");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "shutdown waited its bound, about 500 ms, then gave up: {took:?}"
    );

    // The source answers again: the abandoned loads are gone, they finish nothing.
    HUNG.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        COMPLETED.load(Ordering::SeqCst),
        completed,
        "no abandoned load ran on"
    );
    assert_eq!(
        [
            server.stored_bytes("bounded:c1:k:hung-ahead:1"),
            server.stored_bytes("bounded:c1:k:hung-soft:1"),
        ],
        stored,
        "nothing was stored in Redis"
    );
}
