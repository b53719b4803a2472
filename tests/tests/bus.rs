//! The invalidation bus: a write on any instance is visible on the next read on every
//! instance. Every test starts its own redis-server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer, RefusingPort};
use once_cell::sync::Lazy;
use redis::AsyncCommands;
use tokio::sync::Semaphore;

const PROPAGATION: Duration = Duration::from_secs(3);

/// The pretend database: one row per test, so tests do not share state.
static ROWS: Lazy<Mutex<std::collections::HashMap<String, String>>> = Lazy::new(Default::default);

fn row(table: &str, id: u64) -> String {
    ROWS.lock()
        .unwrap()
        .get(&format!("{table}:{id}"))
        .cloned()
        .unwrap_or_else(|| "v1".into())
}

fn write_row(table: &str, id: u64, value: &str) {
    ROWS.lock()
        .unwrap()
        .insert(format!("{table}:{id}"), value.into());
}

#[cached(key = "name:<id>", cache = current())]
async fn name(id: u64) -> String {
    row("name", id)
}

#[tokio::test]
async fn remove_cached_on_one_instance_is_seen_on_the_next_read_of_every_other() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    let c = instance(&server, "app").await;
    for cache in [&a, &b, &c] {
        assert_eq!(on(cache, name(1)).await, "v1");
        assert!(cache.contains_local("name:1"));
    }

    write_row("name", 1, "v2");
    on(&a, name::remove_cached(1)).await.unwrap();
    assert!(!a.contains_local("name:1"));
    assert!(
        eventually(PROPAGATION, || !b.contains_local("name:1")
            && !c.contains_local("name:1"))
        .await
    );
    for cache in [&a, &b, &c] {
        assert_eq!(on(cache, name(1)).await, "v2");
    }
}

#[tokio::test]
async fn set_on_one_instance_replaces_the_value_on_every_other() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    a.set("greeting", "hello".to_string(), None).await.unwrap();
    assert_eq!(
        b.get::<String>("greeting").await.unwrap().as_deref(),
        Some("hello")
    );
    a.set("greeting", "bonjour".to_string(), None)
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || !b.contains_local("greeting")).await);
    assert_eq!(
        b.get::<String>("greeting").await.unwrap().as_deref(),
        Some("bonjour")
    );
}

#[tokio::test]
async fn an_instance_does_not_apply_its_own_messages() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    a.set("k", 1u32, None).await.unwrap();
    // B is subscribed like A; once B has seen the message, A has had every chance to see
    // its own.
    b.set("probe", 0u8, None).await.unwrap();
    b.get::<u32>("k").await.unwrap();
    a.set("k", 2u32, None).await.unwrap();
    assert!(eventually(PROPAGATION, || !b.contains_local("k")).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        a.contains_local("k"),
        "A's own `set` message did not drop A's new value"
    );
}

#[tokio::test]
async fn clear_reaches_every_instance_and_keeps_l2() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    a.set("one", 1u8, None).await.unwrap();
    a.scope("users").set("two", 2u8, None).await.unwrap();
    assert_eq!(b.get::<u8>("one").await.unwrap(), Some(1));
    assert_eq!(b.scope("users").get::<u8>("two").await.unwrap(), Some(2));

    a.clear().await.unwrap();
    assert!(!a.contains_local("one"));
    assert!(
        eventually(PROPAGATION, || !b.contains_local("one")
            && !b.scope("users").contains_local("two"))
        .await
    );
    // The seed's semantics: clear() drops memory, not the shared entries.
    let exists: bool = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
        .exists("app:c1:k:one")
        .await
        .unwrap();
    assert!(exists, "L2 keys survive clear()");
    assert_eq!(
        b.get::<u8>("one").await.unwrap(),
        Some(1),
        "read back from L2"
    );
}

#[tokio::test]
async fn scope_clear_reaches_every_instance_for_that_scope_only() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    for cache in [&a, &b] {
        cache.scope("users").set("1", 1u8, None).await.unwrap();
        cache.scope("orders").set("1", 2u8, None).await.unwrap();
        cache.set("users:1", 3u8, None).await.unwrap();
    }
    // Let the writes' own invalidations settle before filling B's memory again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.scope("users").get::<u8>("1").await.unwrap();
    b.scope("orders").get::<u8>("1").await.unwrap();
    b.get::<u8>("users:1").await.unwrap();

    a.scope("users").clear().await.unwrap();
    assert!(eventually(PROPAGATION, || !b.scope("users").contains_local("1")).await);
    assert!(
        b.scope("orders").contains_local("1"),
        "another scope is untouched"
    );
    assert!(b.contains_local("users:1"), "unscoped keys are untouched");
}

#[tokio::test]
async fn remove_local_and_clear_memory_stay_in_the_process() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    a.set("k", 1u8, None).await.unwrap();
    b.get::<u8>("k").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.get::<u8>("k").await.unwrap();
    assert!(b.contains_local("k"));

    a.remove_local("k");
    a.clear_memory();
    a.scope("s").clear_memory();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.contains_local("k"), "nothing was published");
    assert_eq!(a.get::<u8>("k").await.unwrap(), Some(1), "L2 still has it");
}

// ---- the read/write race across instances ----

static GATE_ENTERED: Semaphore = Semaphore::const_new(0);
static GATE_RELEASE: Semaphore = Semaphore::const_new(0);
static RACE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "race:<id>", cache = current())]
async fn racy(id: u64) -> String {
    let value = row("race", id);
    if RACE_LOADS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The first load has read the old row; hold it until the writer is done.
        GATE_ENTERED.add_permits(1);
        GATE_RELEASE.acquire().await.unwrap().forget();
    }
    value
}

#[tokio::test]
async fn a_load_that_read_before_a_write_on_another_instance_stores_nothing() {
    let server = RedisServer::start();
    let reader = instance(&server, "app").await;
    let writer = instance(&server, "app").await;
    let observer = instance(&server, "app").await;

    // The reader misses everywhere and reads the old row...
    let pending = tokio::spawn({
        let reader = reader.clone();
        async move { on(&reader, racy(1)).await }
    });
    GATE_ENTERED.acquire().await.unwrap().forget();
    // ...the writer on another instance writes and invalidates...
    write_row("race", 1, "v2");
    on(&writer, racy::remove_cached(1)).await.unwrap();
    // ...and only then does the reader finish with the old row.
    GATE_RELEASE.add_permits(1);
    assert_eq!(
        pending.await.unwrap(),
        "v1",
        "the reader's own caller gets what it read"
    );

    assert!(!reader.contains_local("race:1"), "not in the reader's L1");
    for cache in [&observer, &reader, &writer] {
        assert_eq!(on(cache, racy(1)).await, "v2", "nothing stale in L2");
    }
}

// ---- outages ----

static OUTAGE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "outage:<id>", cache = current())]
async fn outage(id: u64) -> String {
    OUTAGE_LOADS.fetch_add(1, Ordering::SeqCst);
    row("outage", id)
}

#[tokio::test]
async fn after_a_redis_restart_no_instance_keeps_a_value_made_stale_around_the_outage() {
    let mut server = RedisServer::start();
    let listener = instance(&server, "app").await;
    let writer = instance(&server, "app").await;
    assert_eq!(on(&listener, outage(1)).await, "v1");
    assert_eq!(on(&listener, outage(2)).await, "v1");
    assert!(listener.contains_local("outage:1"));

    // Redis goes away. The listener notices and drops what it can no longer keep fresh.
    server.kill();
    assert!(eventually(PROPAGATION, || !listener.bus_connected()).await);
    // A write during the outage cannot be published; the writer is told.
    write_row("outage", 1, "v2");
    assert!(on(&writer, outage::remove_cached(1)).await.is_err());
    // The listener still answers during the outage (fail-open)...
    assert_eq!(on(&listener, outage(1)).await, "v2");

    server.restart();
    assert!(
        eventually(Duration::from_secs(10), || listener.bus_connected()
            && writer.bus_connected())
        .await
    );
    // ...a write right after the restart, seen by the listener...
    write_row("outage", 2, "v2");
    on(&writer, outage::remove_cached(2)).await.unwrap();
    assert!(eventually(PROPAGATION, || !listener.contains_local("outage:2")).await);
    // ...and nothing the listener held from before or during the outage survived.
    assert_eq!(on(&listener, outage(1)).await, "v2");
    assert_eq!(on(&listener, outage(2)).await, "v2");
}

#[tokio::test]
async fn a_cache_built_while_redis_is_down_serves_and_connects_later() {
    // Down: connections refused, and the port kept from other tests' servers.
    let down = RefusingPort::hold();
    let cache = Cache::builder()
        .namespace("app")
        .redis(format!("redis://127.0.0.1:{}/", down.port()))
        .redis_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("building does not need Redis up");
    assert!(!cache.bus_connected());
    assert_eq!(cache.get_or_set("k", None, || async { 5u8 }).await, 5);
    let _server = RedisServer::start_on(down.release(), &[]);
    assert!(eventually(Duration::from_secs(10), || cache.bus_connected()).await);
    cache.set("k", 6u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(6));
}
