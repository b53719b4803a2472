//! Behind Redis Sentinel: two instances find the primary through three sentinels, and
//! follow it (data connection and invalidation bus both) through a failover.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, on, RedisSentinel, RedisServer, SENTINEL_MASTER};
use once_cell::sync::Lazy;

/// The pretend database.
static ROWS: Lazy<Mutex<HashMap<u64, String>>> = Lazy::new(Default::default);
/// How many times each id was loaded from it.
static LOADS: Lazy<Mutex<HashMap<u64, usize>>> = Lazy::new(Default::default);
static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "user:<id>", cache = current())]
async fn user(id: u64) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    *LOADS.lock().unwrap().entry(id).or_default() += 1;
    ROWS.lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("v1 of {id}"))
}

fn loads(id: u64) -> usize {
    LOADS.lock().unwrap().get(&id).copied().unwrap_or(0)
}

fn write_row(id: u64, value: &str) {
    ROWS.lock().unwrap().insert(id, value.to_owned());
}

const CHANNEL: &str = "app:c1:bus";

async fn instance(setup: &RedisSentinel) -> Cache {
    let urls = setup.sentinel_urls();
    let sentinels: Vec<&str> = urls.iter().map(String::as_str).collect();
    Cache::builder()
        .namespace("app")
        .redis_sentinel(SENTINEL_MASTER, &sentinels)
        .redis_timeout(Duration::from_millis(500))
        .bus_heartbeat(Duration::from_millis(200))
        .build()
        .await
        .expect("the cache builds")
}

/// How many connections are subscribed to the bus's channel on `server`; `None` when the
/// server did not answer or refused the connection (a server being demoted by a failover
/// closes its connections, new ones included).
fn subscribers(server: &RedisServer) -> Option<u64> {
    let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(CHANNEL)
        .query(&mut server.try_connection()?)
        .ok()?;
    Some(counts.first()?.1)
}

async fn settled(a: &Cache, b: &Cache) -> bool {
    eventually(Duration::from_secs(15), || {
        a.redis_available() && b.redis_available() && a.bus_connected() && b.bus_connected()
    })
    .await
}

/// Values and invalidations between `a` and `b` work, on id `id`: B reads what A loaded
/// from Redis, and A's removal reaches B's L1.
async fn values_and_invalidations_work(a: &Cache, b: &Cache, id: u64) {
    assert_eq!(on(a, user(id)).await, format!("v1 of {id}"));
    assert_eq!(on(b, user(id)).await, format!("v1 of {id}"));
    assert_eq!(loads(id), 1, "B read the value A loaded from Redis");
    assert!(b.contains_local(&format!("user:{id}")));
    write_row(id, &format!("v2 of {id}"));
    on(a, user::remove_cached(id)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(3), || !b
            .contains_local(&format!("user:{id}")))
        .await,
        "A's removal reached B's L1"
    );
    assert_eq!(on(b, user(id)).await, format!("v2 of {id}"));
    assert_eq!(on(a, user(id)).await, format!("v2 of {id}"));
}

/// A read after a write is fresh, on both instances.
async fn a_read_after_a_write_is_fresh(a: &Cache, b: &Cache, key: &str) {
    a.set(key, "hello".to_string(), None).await.unwrap();
    assert_eq!(
        b.get::<String>(key).await.unwrap().as_deref(),
        Some("hello")
    );
    b.set(key, "bonjour".to_string(), None).await.unwrap();
    assert_eq!(
        b.get::<String>(key).await.unwrap().as_deref(),
        Some("bonjour")
    );
    assert!(eventually(Duration::from_secs(3), || !a.contains_local(key)).await);
    assert_eq!(
        a.get::<String>(key).await.unwrap().as_deref(),
        Some("bonjour")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_primary_is_killed_both_instances_follow_the_promoted_replica() {
    let mut setup = RedisSentinel::start();
    let a = instance(&setup).await;
    let b = instance(&setup).await;
    assert!(
        settled(&a, &b).await,
        "both instances connect through the sentinels"
    );
    let first = setup
        .primary_port()
        .expect("the sentinels name the primary");
    assert_eq!(
        subscribers(setup.server(first)),
        Some(2),
        "both buses on the primary"
    );
    values_and_invalidations_work(&a, &b, 1).await;
    assert!(b.contains_local("user:1"));

    let killed = setup.kill_primary();
    assert!(
        eventually(Duration::from_secs(5), || !a.redis_available()
            && !b.redis_available())
        .await,
        "both instances notice that the primary is gone"
    );
    // Reads fail open while there is no primary: the function answers.
    for id in 100..105 {
        assert_eq!(on(&a, user(id)).await, format!("v1 of {id}"));
        assert_eq!(on(&b, user(id)).await, format!("v1 of {id}"));
    }

    let promoted = setup.wait_new_primary(killed);
    assert!(
        settled(&a, &b).await,
        "both instances reconnect after the failover"
    );
    assert_eq!(
        subscribers(setup.server(promoted)),
        Some(2),
        "both buses followed the data connections to the promoted replica"
    );
    // The bus may have missed messages during the failover: L1 was cleared.
    assert!(!b.contains_local("user:1"), "B's L1 was cleared");
    assert!(b.stats().bus_disconnects >= 1);

    // After the failover, values and invalidations work on the new primary...
    values_and_invalidations_work(&a, &b, 2).await;
    values_and_invalidations_work(&b, &a, 3).await;
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg("app:c1:k:user:2")
        .query(&mut setup.server(promoted).connection())
        .unwrap();
    assert!(
        stored.is_some(),
        "the values are stored on the promoted replica"
    );
    // ... and a read after a write is fresh.
    a_read_after_a_write_is_fresh(&a, &b, "greeting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_that_keeps_the_old_primary_running_the_bus_leaves_it() {
    let mut setup = RedisSentinel::start();
    let a = instance(&setup).await;
    let b = instance(&setup).await;
    assert!(settled(&a, &b).await);
    let first = setup
        .primary_port()
        .expect("the sentinels name the primary");
    values_and_invalidations_work(&a, &b, 11).await;

    // The old primary stays up, demoted to a replica of the new one: a bus still
    // subscribed there would hear nothing from the instances that publish on the new one.
    setup.failover();
    let promoted = setup.wait_new_primary(first);
    assert!(
        eventually(Duration::from_secs(15), || subscribers(setup.server(first))
            == Some(0)
            && subscribers(setup.server(promoted)) == Some(2))
        .await,
        "both buses moved to the new primary"
    );
    assert!(settled(&a, &b).await);
    assert_eq!(
        setup.server(first).info_field("role").as_deref(),
        Some("slave"),
        "the old primary runs on, as a replica"
    );

    values_and_invalidations_work(&a, &b, 12).await;
    values_and_invalidations_work(&b, &a, 13).await;
    a_read_after_a_write_is_fresh(&a, &b, "greeting").await;
}
