//! Tags: dependency tracking. A list that embeds user 1 is invalidated together with user 1
//! (the seeds' "partial keys" gotcha), on every instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{
    current, eventually, instance, on, race_reads_with_tag_invalidations, RedisServer,
};
use once_cell::sync::Lazy;
use tokio::sync::Semaphore;

/// The pretend database: user names, per test table.
static NAMES: Lazy<Mutex<HashMap<(String, u64), String>>> = Lazy::new(Default::default);

fn name(table: &str, id: u64) -> String {
    NAMES
        .lock()
        .unwrap()
        .get(&(table.to_owned(), id))
        .cloned()
        .unwrap_or_else(|| format!("user{id}"))
}

fn rename(table: &str, id: u64, to: &str) {
    NAMES
        .lock()
        .unwrap()
        .insert((table.to_owned(), id), to.to_owned());
}

#[cached(key = "profile:<id>", tags = ["user:<id>"], cache = current())]
async fn profile(id: u64) -> String {
    name("tags", id)
}

/// A list that embeds users 1..=n: it depends on each of them.
#[cached(key = "team:<team>", tags = ["team:<team>", "user:1", "user:2"], cache = current())]
async fn team(team: u64) -> Vec<String> {
    vec![name("tags", 1), name("tags", 2), format!("team {team}")]
}

#[tokio::test]
async fn invalidating_a_tag_removes_every_dependent_entry_on_every_instance() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    for cache in [&a, &b] {
        on(cache, profile(1)).await;
        on(cache, profile(2)).await;
        on(cache, team(7)).await;
    }
    assert!(b.contains_local("team:7") && b.contains_local("profile:1"));

    rename("tags", 1, "Ada");
    assert_eq!(
        a.invalidate_tag("user:1").await.unwrap(),
        2,
        "profile:1 and team:7"
    );
    let peers_dropped = eventually(Duration::from_secs(3), || {
        !b.contains_local("profile:1") && !b.contains_local("team:7")
    });
    assert!(peers_dropped.await);
    assert!(
        b.contains_local("profile:2"),
        "entries without the tag stay"
    );
    for cache in [&a, &b] {
        assert_eq!(on(cache, profile(1)).await, "Ada");
        assert_eq!(
            on(cache, team(7)).await[0],
            "Ada",
            "the list that embeds user 1 is fresh"
        );
    }
    // The reloads registered again: a second invalidation finds them.
    assert_eq!(a.invalidate_tag("user:1").await.unwrap(), 2);
    assert_eq!(a.invalidate_tag("user:404").await.unwrap(), 0);
}

#[tokio::test]
async fn tags_work_in_memory() {
    let cache = Cache::in_memory();
    on(&cache, profile(5)).await;
    assert!(cache.contains_local("profile:5"));
    assert_eq!(cache.invalidate_tag("user:5").await.unwrap(), 1);
    assert!(!cache.contains_local("profile:5"));
}

static GATE_ENTERED: Semaphore = Semaphore::const_new(0);
static GATE_RELEASE: Semaphore = Semaphore::const_new(0);
static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "slow-profile:<id>", tags = ["user:<id>"], cache = current())]
async fn slow_profile(id: u64) -> String {
    let value = name("race", id);
    if SLOW_LOADS.fetch_add(1, Ordering::SeqCst) == 0 {
        GATE_ENTERED.add_permits(1);
        GATE_RELEASE.acquire().await.unwrap().forget();
    }
    value
}

#[tokio::test]
async fn a_tag_invalidation_during_a_load_on_another_instance_is_not_undone() {
    let server = RedisServer::start();
    let reader = instance(&server, "app").await;
    let writer = instance(&server, "app").await;
    let pending = tokio::spawn({
        let reader = reader.clone();
        async move { on(&reader, slow_profile(3)).await }
    });
    GATE_ENTERED.acquire().await.unwrap().forget();
    rename("race", 3, "new");
    assert_eq!(
        writer.invalidate_tag("user:3").await.unwrap(),
        1,
        "the load in flight is registered"
    );
    GATE_RELEASE.add_permits(1);
    assert_eq!(pending.await.unwrap(), "user3");
    for cache in [&writer, &reader] {
        assert_eq!(
            on(cache, slow_profile(3)).await,
            "new",
            "nothing stale was stored"
        );
    }
}

static PRUNE_GATE_ENTERED: Semaphore = Semaphore::const_new(0);
static PRUNE_GATE_RELEASE: Semaphore = Semaphore::const_new(0);

#[cached(key = "held:<id>", tags = ["held:<id>"], cache = current())]
async fn held(id: u64) -> u64 {
    PRUNE_GATE_ENTERED.add_permits(1);
    PRUNE_GATE_RELEASE.acquire().await.unwrap().forget();
    id
}

#[tokio::test]
async fn pruning_in_memory_tag_registrations_keeps_loads_in_flight() {
    let cache = Cache::builder().l1_capacity(10).build_in_memory().unwrap();
    let pending = tokio::spawn({
        let cache = cache.clone();
        async move { on(&cache, held(1)).await }
    });
    PRUNE_GATE_ENTERED.acquire().await.unwrap().forget();
    // Far more tags than a 10-entry L1 can hold: the registrations get pruned.
    for id in 0..3_000 {
        on(&cache, profile(id)).await;
    }
    assert_eq!(
        cache.invalidate_tag("held:1").await.unwrap(),
        1,
        "the load in flight is still registered"
    );
    PRUNE_GATE_RELEASE.add_permits(1);
    assert_eq!(pending.await.unwrap(), 1);
    assert!(
        !cache.contains_local("held:1"),
        "the invalidated load was not cached"
    );
}

// ---- a rolling deploy from the version that kept tags in plain sets ----

#[cached(key = "rolling:<id>", tags = ["rolling"], cache = current())]
async fn rolling(id: u64) -> String {
    name("rolling", id)
}

#[tokio::test]
async fn tags_registered_by_an_older_version_are_invalidated_and_it_sees_ours() {
    use redis::AsyncCommands;
    let server = RedisServer::start();
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // An instance of the older version registered an entry in the plain set of the tag.
    let legacy = "app:c1:t:rolling";
    let _: () = raw.sadd(legacy, "app:c1:k:rolling:1").await.unwrap();
    let _: () = raw.pexpire(legacy, 60_000).await.unwrap();
    let cache = instance(&server, "app").await;
    assert_eq!(on(&cache, rolling(1)).await, "user1");
    // Our loads also go into the older version's set while it exists, so that an older
    // instance's invalidation of the tag finds them.
    assert_eq!(on(&cache, rolling(2)).await, "user2");
    let members: Vec<String> = raw.smembers(legacy).await.unwrap();
    assert!(
        members.contains(&"app:c1:k:rolling:2".to_owned()),
        "{members:?}"
    );
    // Our invalidation finds what the older version registered.
    rename("rolling", 1, "Ada");
    rename("rolling", 2, "Bob");
    assert_eq!(cache.invalidate_tag("rolling").await.unwrap(), 2);
    assert_eq!(on(&cache, rolling(1)).await, "Ada");
    assert_eq!(on(&cache, rolling(2)).await, "Bob");
}

// ---- Redis loses a tag's registrations ----

#[cached(key = "lost:<id>", tags = ["lost:<id>"], cache = current())]
async fn lost(id: u64) -> String {
    name("lost", id)
}

#[tokio::test]
async fn a_tag_whose_registrations_redis_lost_still_drops_every_instances_copy() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    for cache in [&a, &b] {
        assert_eq!(on(cache, lost(1)).await, "user1");
    }
    // Redis loses everything, as a restart without persistence or a failover to a replica
    // that lagged does, while the instances keep their connections (and their L1).
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    rename("lost", 1, "Ada");
    assert_eq!(
        a.invalidate_tag("lost:1").await.unwrap(),
        1,
        "the entry this instance loaded is found in its own registry"
    );
    assert_eq!(
        on(&a, lost(1)).await,
        "Ada",
        "the invalidating instance reads the write at once"
    );
    let peer_dropped = eventually(Duration::from_secs(3), || !b.contains_local("lost:1"));
    assert!(
        peer_dropped.await,
        "the peer dropped its copy on the message"
    );
    assert_eq!(on(&b, lost(1)).await, "Ada");
}

#[cached(key = "evicted:<id>", tags = ["evicted:<id>"], cache = current())]
async fn evicted(id: u64) -> String {
    name("evicted", id)
}

#[cached(key = "evicted:<id>", batch(id in ids), tags = ["evicted:<id>"], cache = current())]
async fn evicted_many(ids: Vec<u64>) -> HashMap<u64, String> {
    ids.into_iter()
        .map(|id| (id, name("evicted", id)))
        .collect()
}

#[tokio::test]
async fn a_value_whose_tag_registration_redis_evicted_is_not_served_from_redis() {
    let server = RedisServer::start();
    let writer = instance(&server, "app").await;
    for id in [1, 2] {
        assert_eq!(on(&writer, evicted(id)).await, format!("user{id}"));
    }
    // Under `maxmemory-policy volatile-lru` Redis may evict a tag's set (it has a TTL) and
    // keep the values it covered.
    let mut raw = server.connection();
    for id in [1, 2] {
        // Both sets: the tag's, and the one kept for instances of 0.1.
        let sets = [
            format!("app:c1:tz:{{evicted:{id}}}"),
            format!("app:c1:t:evicted:{id}"),
        ];
        let deleted: u64 = redis::cmd("DEL").arg(&sets).query(&mut raw).unwrap();
        assert_eq!(deleted, 2, "{sets:?} were the tag's sets");
    }
    rename("evicted", 1, "Ada");
    rename("evicted", 2, "Bob");
    for id in [1, 2] {
        writer
            .invalidate_tag(&format!("evicted:{id}"))
            .await
            .unwrap();
    }
    // The value still in Redis escaped the invalidation: it is not served, whoever reads it,
    // one key at a time or in a batch.
    let reader = instance(&server, "app").await;
    assert_eq!(on(&reader, evicted(1)).await, "Ada");
    let found = on(&reader, evicted_many(vec![2])).await;
    assert_eq!(found[&2], "Bob");
    assert_eq!(
        reader.stats().unusable_values,
        2,
        "each value found unlisted is counted"
    );
    assert_eq!(on(&writer, evicted(1)).await, "Ada");
    assert_eq!(on(&writer, evicted(2)).await, "Bob");
    // What was loaded instead is registered again and shared through Redis.
    let other = instance(&server, "app").await;
    assert_eq!(on(&other, evicted(2)).await, "Bob");
    assert_eq!(writer.invalidate_tag("evicted:2").await.unwrap(), 1);
}

static KEPT_FAILS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cached(key = "kept:<id>", ttl = "50ms", stale_for = "1h", tags = ["kept:<id>"], cache = current())]
async fn kept(id: u64) -> Result<String, String> {
    if KEPT_FAILS.load(Ordering::SeqCst) {
        return Err("the source is down".into());
    }
    Ok(name("kept", id))
}

#[tokio::test]
async fn a_stale_value_kept_for_failures_stays_registered_and_its_tag_removes_it() {
    let cache = Cache::in_memory();
    assert_eq!(on(&cache, kept(1)).await.unwrap(), "user1");
    // Past its freshness: kept only to be served if a reload fails.
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Enough other registrations that the registry sweeps the dead ones.
    for id in 0..6_000 {
        on(&cache, profile(100_000 + id)).await;
    }
    assert_eq!(cache.invalidate_tag("kept:1").await.unwrap(), 1);
    KEPT_FAILS.store(true, Ordering::SeqCst);
    assert_eq!(
        on(&cache, kept(1)).await,
        Err("the source is down".to_owned()),
        "the invalidated value is not served as a stale fallback"
    );
}

#[cached(key = "member:<id>", tags = ["club"], cache = current())]
async fn member(id: u64) -> String {
    name("race", id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_a_tag_invalidation_is_not_taken_for_a_lost_tag_set() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    let (unlisted, invalidations) =
        race_reads_with_tag_invalidations(&a, &b, "club", member, 50).await;
    eprintln!("{invalidations} invalidations, {unlisted} reads found a value unlisted");
    assert!(invalidations >= 20, "the race ran");
    assert_eq!(
        unlisted, 0,
        "a key that an invalidation still has to tombstone is listed"
    );
}

cachemacro::tags! {
    /// Everything that shows a member of the club.
    member_tag(id: u64) = "member:<id>";
}

/// A page that shows two members: tagged with both, through the tag declared once above.
#[cached(key = "pair:<first>:<second>", tags = [member_tag(first), member_tag(second)], cache = current())]
async fn pair(first: u64, second: u64) -> String {
    format!("{} & {}", name("typed", first), name("typed", second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_declared_once_invalidates_through_its_typed_function_on_every_instance() {
    let server = RedisServer::start();
    let a = instance(&server, "typed").await;
    let b = instance(&server, "typed").await;
    assert_eq!(on(&a, pair(1, 2)).await, "user1 & user2");
    assert_eq!(on(&b, pair(1, 2)).await, "user1 & user2");
    assert_eq!(on(&b, pair(2, 3)).await, "user2 & user3");
    assert!(b.contains_local("pair:1:2") && b.contains_local("pair:2:3"));

    // Member 2 is renamed; the write path names the tag by its type, on A.
    rename("typed", 2, "Zoe");
    assert_eq!(member_tag::tag(&2), "member:2");
    let removed = member_tag::invalidate_in(&a, &2).await.unwrap();
    assert!(removed >= 2, "both pages show member 2: {removed}");
    assert!(
        eventually(Duration::from_secs(1), || !b.contains_local("pair:1:2")
            && !b.contains_local("pair:2:3"))
        .await,
        "B drops both pages"
    );
    assert_eq!(on(&b, pair(1, 2)).await, "user1 & Zoe");
    assert_eq!(on(&b, pair(2, 3)).await, "Zoe & user3");
}
