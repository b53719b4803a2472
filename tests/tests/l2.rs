//! L2 in Redis: values shared across instances, the envelope, TTLs, and what happens to
//! values a reader cannot use. Every test starts its own redis-server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Error};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

static SHARED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "user:<id>", ttl = "1m", cache = current())]
async fn shared_user(id: u64) -> User {
    SHARED_LOADS.fetch_add(1, Ordering::SeqCst);
    user(id, "ada")
}

#[tokio::test]
async fn a_second_instance_reads_l2_instead_of_running_the_body() {
    let server = RedisServer::start();
    let (a, b) = (
        instance(&server, "app").await,
        instance(&server, "app").await,
    );
    assert_eq!(on(&a, shared_user(1)).await, user(1, "ada"));
    assert_eq!(on(&b, shared_user(1)).await, user(1, "ada"));
    assert_eq!(
        SHARED_LOADS.load(Ordering::SeqCst),
        1,
        "B read A's value from Redis"
    );
    assert!(b.contains_local("user:1"), "the L2 hit filled B's L1");

    // Every L2 key has a TTL: the safety net, and what volatile-lru eviction needs.
    let mut conn = raw(&server).await;
    let pttl: i64 = conn.pttl("app:c1:k:user:1").await.unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
}

static SHORT_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "short:<id>", ttl = "2s", cache = current())]
async fn short_user(id: u64) -> User {
    SHORT_LOADS.fetch_add(1, Ordering::SeqCst);
    user(id, "bob")
}

#[tokio::test]
async fn an_l2_hit_fills_l1_for_the_remaining_ttl_only() {
    let server = RedisServer::start();
    let (a, b) = (
        instance(&server, "app").await,
        instance(&server, "app").await,
    );
    on(&a, short_user(1)).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    on(&b, short_user(1)).await;
    assert_eq!(SHORT_LOADS.load(Ordering::SeqCst), 1);
    assert!(b.contains_local("short:1"));
    // About 0.7 s were left in Redis; a full 2 s TTL in B's L1 would still hold it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !b.contains_local("short:1"),
        "B's copy expired with the Redis entry"
    );
}

static PLANTED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "planted:<id>", cache = current())]
async fn planted(id: u64) -> User {
    PLANTED_LOADS.fetch_add(1, Ordering::SeqCst);
    user(id, "carol")
}

#[tokio::test]
async fn corrupt_or_foreign_bytes_in_redis_are_a_miss_then_overwritten() {
    let server = RedisServer::start();
    let mut conn = raw(&server).await;
    let key = "app:c1:k:planted:1";
    let planted_values: [&[u8]; 4] = [
        b"\x00\x01garbage",
        b"{\"id\": 1, \"name\": \"json from another service\"}",
        b"cm\x09\x01future envelope format",
        b"",
    ];
    for (round, bytes) in planted_values.into_iter().enumerate() {
        let _: () = conn.set(key, bytes).await.unwrap();
        let fresh = instance(&server, "app").await;
        assert_eq!(
            on(&fresh, planted(1)).await,
            user(1, "carol"),
            "round {round}"
        );
        assert_eq!(
            PLANTED_LOADS.load(Ordering::SeqCst),
            round + 1,
            "round {round}: a miss"
        );
        let stored: Vec<u8> = conn.get(key).await.unwrap();
        assert_ne!(stored, bytes, "round {round}: overwritten");
        // Another fresh instance now reads the good value from Redis.
        let reader = instance(&server, "app").await;
        assert_eq!(on(&reader, planted(1)).await, user(1, "carol"));
        assert_eq!(PLANTED_LOADS.load(Ordering::SeqCst), round + 1);
    }
}

#[tokio::test]
async fn a_damaged_payload_of_the_right_type_is_a_miss() {
    let server = RedisServer::start();
    let mut conn = raw(&server).await;
    let writer = instance(&server, "app").await;
    writer.set("profile", user(1, "dan"), None).await.unwrap();
    let good: Vec<u8> = conn.get("app:c1:k:profile").await.unwrap();

    let truncated = &good[..good.len() - 1];
    let mut trailing = good.clone();
    trailing.push(0);
    for damaged in [truncated.to_vec(), trailing] {
        let _: () = conn.set("app:c1:k:profile", &damaged).await.unwrap();
        let reader = instance(&server, "app").await;
        assert_eq!(reader.get::<User>("profile").await.unwrap(), None);
    }
    let _: () = conn.set("app:c1:k:profile", &good).await.unwrap();
    let reader = instance(&server, "app").await;
    assert_eq!(
        reader.get::<User>("profile").await.unwrap(),
        Some(user(1, "dan"))
    );
}

static TYPED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "typed:<id>", cache = current())]
async fn typed_count(id: u64) -> u64 {
    TYPED_LOADS.fetch_add(1, Ordering::SeqCst);
    id * 100
}

#[tokio::test]
async fn a_value_of_another_type_in_redis_is_a_miss() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    a.set("typed:3", "a string, not a u64".to_string(), None)
        .await
        .unwrap();
    let b = instance(&server, "app").await;
    assert_eq!(on(&b, typed_count(3)).await, 300);
    assert_eq!(TYPED_LOADS.load(Ordering::SeqCst), 1);
    let c = instance(&server, "app").await;
    assert_eq!(
        on(&c, typed_count(3)).await,
        300,
        "B's value replaced the string"
    );
    assert_eq!(TYPED_LOADS.load(Ordering::SeqCst), 1);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ProfileV1 {
    id: u64,
    name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ProfileV2 {
    name: String,
    id: u64,
}

#[cached(key = "versioned:<id>", version = 1, cache = current())]
async fn profile_v1(id: u64) -> ProfileV1 {
    ProfileV1 {
        id,
        name: "v1".into(),
    }
}

#[cached(key = "versioned:<id>", version = 2, cache = current())]
async fn profile_v2(id: u64) -> ProfileV2 {
    ProfileV2 {
        name: "v2".into(),
        id,
    }
}

#[tokio::test]
async fn bumping_version_makes_old_values_misses_after_a_deploy() {
    let server = RedisServer::start();
    let old_deploy = instance(&server, "app").await;
    assert_eq!(on(&old_deploy, profile_v1(1)).await.name, "v1");
    let new_deploy = instance(&server, "app").await;
    assert_eq!(on(&new_deploy, profile_v2(1)).await.name, "v2");
}

#[tokio::test]
async fn an_oversized_value_stays_local_and_set_says_so() {
    let server = RedisServer::start();
    let small = || {
        cachemacro::Cache::builder()
            .namespace("app")
            .redis(server.url())
            .max_value_size(1024)
            .build()
    };
    let cache = small().await.unwrap();
    let peer = small().await.unwrap();
    cache.set("big", "old".to_string(), None).await.unwrap();
    assert_eq!(
        peer.get::<String>("big").await.unwrap().as_deref(),
        Some("old")
    );

    let big = "x".repeat(4096);
    let err = cache.set("big", big.clone(), None).await.unwrap_err();
    match &err {
        // The size is exact: 4096 bytes of text, its 3-byte varint length, the 20-byte
        // envelope.
        Error::TooLarge {
            limit: 1024, size, ..
        } => assert_eq!(*size, 4096 + 3 + 20, "{err}"),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert_eq!(
        cache.get::<String>("big").await.unwrap(),
        Some(big.clone()),
        "the builder's promise: a value too large for Redis stays in this process's L1"
    );
    let stored: Vec<u8> = raw(&server).await.get("app:c1:k:big").await.unwrap();
    assert_eq!(
        &stored[..4],
        b"cm\x01\x02",
        "Redis holds a tombstone, not the old value"
    );
    assert!(
        eventually(Duration::from_secs(3), || !peer.contains_local("big")).await,
        "the peer dropped its copy of the old value"
    );
    assert_eq!(
        peer.get::<String>("big").await.unwrap(),
        None,
        "and nobody serves the old value"
    );

    let loaded = peer.get_or_set("big", None, || async { big.clone() }).await;
    assert_eq!(loaded, big, "the caller still gets its value");
    assert!(peer.contains_local("big"));
    let stored: Vec<u8> = raw(&server).await.get("app:c1:k:big").await.unwrap();
    assert!(
        stored.len() <= 1024,
        "never stored in Redis: {} bytes",
        stored.len()
    );
}

static DOWN_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "down:<id>", cache = current())]
async fn while_down(id: u64) -> u64 {
    DOWN_LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn reads_fail_open_and_invalidations_report_when_redis_is_down() {
    let mut server = RedisServer::start();
    let cache = instance(&server, "app").await;
    server.kill();
    // Reads still answer, from the function and then from L1.
    assert_eq!(on(&cache, while_down(1)).await, 1);
    assert_eq!(on(&cache, while_down(1)).await, 1);
    assert!(DOWN_LOADS.load(Ordering::SeqCst) >= 1);
    // An invalidation says it may not have reached the others, after dropping the local copy.
    let err = on(&cache, while_down::remove_cached(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Redis { .. } | Error::Unavailable { .. } | Error::Timeout { .. }
        ),
        "{err}"
    );
    assert!(!cache.contains_local("down:1"));
    assert!(
        cache.get::<u64>("down:1").await.is_err(),
        "get reports the fault"
    );
}

#[tokio::test]
async fn an_invalid_redis_url_is_a_configuration_error() {
    let err = cachemacro::Cache::builder()
        .redis("not a url")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

static STAMPEDE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "stampede:<id>", cache = current())]
async fn stampede(id: u64) -> User {
    STAMPEDE_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    user(id, "erin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_instance_read_redis_once_and_run_the_body_once() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    let callers: Vec<_> = (0..300)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { on(&a, stampede(1)).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), user(1, "erin"));
    }
    assert_eq!(STAMPEDE_LOADS.load(Ordering::SeqCst), 1);
    // And a cold instance's concurrent misses share one L2 read.
    let callers: Vec<_> = (0..300)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { on(&b, stampede(1)).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), user(1, "erin"));
    }
    assert_eq!(
        STAMPEDE_LOADS.load(Ordering::SeqCst),
        1,
        "B's callers were served from Redis"
    );
}

static PAUSED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "paused:<id>", cache = current())]
async fn while_paused(id: u64) -> u64 {
    PAUSED_LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_hung_redis_opens_the_circuit_then_reads_skip_it_until_it_answers() {
    let server = RedisServer::start();
    let cache = cachemacro::Cache::builder()
        .namespace("app")
        .redis(server.url())
        .redis_timeout(Duration::from_millis(300))
        .redis_cooldown(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert!(cache.redis_available());
    // Redis hangs: connections stay open, nothing answers.
    server.pause();
    for id in 0..3 {
        assert_eq!(on(&cache, while_paused(id)).await, id, "reads fail open");
    }
    assert!(
        !cache.redis_available(),
        "three timeouts in a row open the circuit"
    );
    for id in 3..20 {
        assert_eq!(on(&cache, while_paused(id)).await, id);
    }
    assert!(matches!(
        cache.get::<u64>("anything").await,
        Err(Error::Unavailable { .. })
    ));
    server.resume();
    // After the cool-down, the next read tries Redis again and closes the circuit.
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        on(&cache, while_paused(100)).await;
        cache.remove_local("paused:100");
        if cache.redis_available() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the circuit closed once Redis answered");
    assert!(PAUSED_LOADS.load(Ordering::SeqCst) >= 20);
}

#[tokio::test]
async fn ttl_jitter_spreads_the_expiry_of_entries_loaded_together() {
    let server = RedisServer::start();
    let cache = cachemacro::Cache::builder()
        .namespace("app")
        .redis(server.url())
        .ttl_jitter(0.2)
        .build()
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    let mut ttls = Vec::new();
    for i in 0..100u32 {
        let key = format!("jitter:{i}");
        cache
            .get_or_set(&key, Duration::from_secs(100), || async move { i })
            .await;
        let pttl: i64 = conn.pttl(format!("app:c1:k:{key}")).await.unwrap();
        ttls.push(pttl);
    }
    let (min, max) = (*ttls.iter().min().unwrap(), *ttls.iter().max().unwrap());
    assert!(
        min >= 79_000 && max <= 100_000,
        "within [80 s, 100 s]: {min}..{max}"
    );
    assert!(max - min > 5_000, "spread out: {min}..{max}");

    let err = cachemacro::Cache::builder()
        .ttl_jitter(0.9)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn stats_count_hits_loads_invalidations_and_faults() {
    let mut server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    a.get_or_set("k", None, || async { 1u32 }).await; // a load
    b.get::<u32>("k").await.unwrap(); // an L2 hit
    b.get::<u32>("k").await.unwrap(); // an L1 hit
    let mut conn = raw(&server).await;
    let _: () = conn
        .set("app:c1:k:bad", b"garbage".as_slice())
        .await
        .unwrap();
    b.get::<u32>("bad").await.unwrap(); // an unusable value
    a.remove("k").await.unwrap(); // B hears it
    assert!(
        cachemacro_tests::eventually(Duration::from_secs(3), || b.stats().invalidations_received
            >= 1)
        .await
    );

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.loads, sa.l2_hits, sa.l1_hits), (1, 0, 0));
    assert_eq!(
        (sb.loads, sb.l2_hits, sb.l1_hits, sb.unusable_values),
        (0, 1, 1, 1)
    );
    assert_eq!(sb.redis_errors, 0);

    server.kill();
    assert!(b.get::<u32>("k").await.is_err());
    assert!(b.stats().redis_errors >= 1);
    assert!(
        cachemacro_tests::eventually(Duration::from_secs(3), || b.stats().bus_disconnects >= 1)
            .await
    );
}
