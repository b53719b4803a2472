//! Settings the builder takes, at their extremes: a duration it cannot honour is refused by
//! `build()` with an error naming the setting; a TTL given per call that Redis cannot take
//! is shortened to `MAX_TTL`, never lost, and never a panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache, CacheBuilder, Error, MAX_TTL};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};

/// A builder method that takes a duration.
type Setting = fn(CacheBuilder, Duration) -> CacheBuilder;

#[tokio::test]
async fn the_builder_refuses_durations_it_cannot_honour_and_names_them() {
    let server = RedisServer::start();
    let max = Duration::MAX;
    let settings: Vec<(&str, Setting)> = vec![
        ("redis_timeout", CacheBuilder::redis_timeout),
        ("tombstone_ttl", CacheBuilder::tombstone_ttl),
        ("default_ttl", CacheBuilder::default_ttl),
        ("bus_heartbeat", CacheBuilder::bus_heartbeat),
        ("redis_cooldown", CacheBuilder::redis_cooldown),
        ("version_refresh", CacheBuilder::version_refresh),
        ("shutdown_timeout", CacheBuilder::shutdown_timeout),
        ("stale_for", CacheBuilder::stale_for),
        ("soft_timeout", CacheBuilder::soft_timeout),
        ("hard_timeout", CacheBuilder::hard_timeout),
        ("fleet_single_flight", CacheBuilder::fleet_single_flight),
        ("fail_safe_throttle", CacheBuilder::fail_safe_throttle),
    ];
    for (name, set) in settings {
        let err = set(Cache::builder(), max)
            .redis(server.url())
            .build()
            .await
            .expect_err(name);
        assert!(matches!(err, Error::Config(_)), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name} is named: {err}");
        let err = set(Cache::builder(), max)
            .build_in_memory()
            .expect_err(name);
        assert!(err.to_string().contains(name), "{name} is named: {err}");
        // The largest value it takes builds.
        let largest = if ["tombstone_ttl", "default_ttl", "stale_for"].contains(&name) {
            MAX_TTL
        } else {
            cachemacro::MAX_WAIT
        };
        let cache = set(Cache::builder(), largest)
            .redis(server.url())
            .build()
            .await;
        assert!(cache.is_ok(), "{name} at {largest:?}: {:?}", cache.err());
    }
}

#[tokio::test]
async fn the_largest_settings_cache_and_invalidate_as_any() {
    let server = RedisServer::start();
    let build = || {
        Cache::builder()
            .namespace("app")
            .redis(server.url())
            .redis_timeout(cachemacro::MAX_WAIT)
            .tombstone_ttl(MAX_TTL)
            .default_ttl(MAX_TTL)
            .build()
    };
    let (a, b) = (build().await.unwrap(), build().await.unwrap());
    a.set("k", 1u32, None).await.unwrap();
    assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1));
    a.remove("k").await.unwrap();
    assert_eq!(a.get::<u32>("k").await.unwrap(), None, "removed here");
    assert!(
        eventually(Duration::from_secs(2), || !b.contains_local("k")).await,
        "and on the peer"
    );
    assert_eq!(b.get::<u32>("k").await.unwrap(), None, "and in Redis");
}

const FOREVER: Duration = Duration::MAX;
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "forever:<id>", ttl = FOREVER, cache = current())]
async fn forever(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_ttl_longer_than_redis_takes_is_shortened_to_max_ttl_not_lost() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;

    a.set("k", 5u32, Duration::MAX)
        .await
        .expect("a very long TTL is stored");
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(5));
    assert_eq!(
        b.get::<u32>("k").await.unwrap(),
        Some(5),
        "in Redis, for every instance"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("app:c1:k:k")
        .query(&mut server.connection())
        .unwrap();
    let max_ms = i64::try_from(MAX_TTL.as_millis()).unwrap();
    assert!(
        pttl > max_ms - 60_000 && pttl <= max_ms,
        "the TTL in Redis is MAX_TTL: {pttl} ms"
    );
    a.remove("k").await.unwrap();
    assert_eq!(a.get::<u32>("k").await.unwrap(), None);
    assert_eq!(b.get::<u32>("k").await.unwrap(), None);

    // A `ttl` expression of Duration::MAX: stored in Redis, so the peer reads it there.
    assert_eq!(on(&a, forever(1)).await, 1);
    let runs = RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, forever(1)).await, 1);
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "a Redis hit, not a load");
    on(&a, forever::remove_cached(1)).await.unwrap();
    assert_eq!(on(&b, forever(1)).await, 1);
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        runs + 1,
        "removed everywhere: loaded again"
    );
}
