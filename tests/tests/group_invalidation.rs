//! Invalidating groups of keys at once: group versions (the seeds' *versioned keys*) and
//! namespace purge.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};
use redis::AsyncCommands;

static ITEM_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "catalog:v<version>:item:<id>", cache = current())]
async fn item(version: u64, id: u64) -> String {
    ITEM_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("item {id} as of catalog v{version}")
}

/// Reads item `id` at the catalog's current version, as an application would.
async fn current_item(cache: &Cache, id: u64) -> String {
    let version = cache.version("catalog").await.unwrap();
    on(cache, item(version, id)).await
}

#[tokio::test]
async fn one_version_bump_retires_every_key_of_the_group_on_every_instance() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    for id in 0..3 {
        assert_eq!(
            current_item(&a, id).await,
            format!("item {id} as of catalog v0")
        );
        assert_eq!(
            current_item(&b, id).await,
            format!("item {id} as of catalog v0")
        );
    }
    assert_eq!(
        ITEM_LOADS.load(Ordering::SeqCst),
        3,
        "B read A's values from Redis"
    );

    let version = a.bump_version("catalog").await.unwrap();
    assert!(version > 0);
    // B learns of the bump over the bus (the README's bound for a peer is 100 ms; the test
    // gives a busy machine ten times that), not at once: the read right after the bump
    // could overtake the message.
    let heard = std::time::Instant::now();
    while b.version("catalog").await.unwrap() < version {
        assert!(
            heard.elapsed() < std::time::Duration::from_secs(1),
            "B learned of the bump"
        );
        tokio::task::yield_now().await;
    }
    for id in 0..3 {
        assert_eq!(
            current_item(&b, id).await,
            format!("item {id} as of catalog v{version}")
        );
    }
    assert_eq!(
        ITEM_LOADS.load(Ordering::SeqCst),
        6,
        "every item of the group reloaded"
    );
    assert_eq!(a.version("other-group").await.unwrap(), 0);
}

#[tokio::test]
async fn group_versions_work_in_memory_too() {
    let cache = Cache::in_memory();
    assert_eq!(cache.version("g").await.unwrap(), 0);
    cache.set("g:v0:k", 1u8, None).await.unwrap();
    assert_eq!(cache.bump_version("g").await.unwrap(), 1);
    assert_eq!(cache.bump_version("g").await.unwrap(), 2);
    let v = cache.version("g").await.unwrap();
    assert_eq!(cache.get::<u8>(&format!("g:v{v}:k")).await.unwrap(), None);
}

/// The keys matching `pattern` that hold something other than a tombstone (what a purge
/// leaves behind in place of a value), sorted.
async fn redis_keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let all: Vec<String> = conn.keys(pattern).await.unwrap();
    let mut keys = Vec::new();
    for key in all {
        let head: Result<Vec<u8>, _> = conn.getrange(&key, 0, 3).await;
        if head.as_deref() != Ok(b"cm\x01\x02".as_slice()) {
            keys.push(key);
        }
    }
    keys.sort();
    keys
}

#[tokio::test]
async fn purge_deletes_the_namespace_in_redis_and_clears_every_instance() {
    let server = RedisServer::start();
    let a = instance(&server, "shop").await;
    let b = instance(&server, "shop").await;
    // Names with glob characters must not widen the purge.
    let other = instance(&server, "shop*").await;
    for i in 0..50u32 {
        a.set(&format!("k:{i}"), i, None).await.unwrap();
        a.scope("users").set(&i.to_string(), i, None).await.unwrap();
    }
    other.set("k:1", 1u32, None).await.unwrap();
    a.bump_version("catalog").await.unwrap();
    // B reads k:1 into its L1 (again, if A's own `set` messages arrive after B's read).
    for _ in 0..100 {
        assert_eq!(b.get::<u32>("k:1").await.unwrap(), Some(1));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if b.contains_local("k:1") {
            break;
        }
    }
    assert!(b.contains_local("k:1"));

    let deleted = a.purge().await.unwrap();
    assert_eq!(deleted, 100, "50 keys and 50 scoped keys");
    assert_eq!(
        redis_keys(&server, "shop:*").await,
        ["shop:c1:v:catalog"],
        "every value is buried under a tombstone; the group version stays: a version never \
         goes back"
    );
    // A load in flight that saw the key absent cannot store over the tombstone.
    let stored: bool = redis::cmd("SET")
        .arg("shop:c1:k:k:1")
        .arg("late")
        .arg("NX")
        .query_async::<Option<String>>(
            &mut server
                .client()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap()
        .is_some();
    assert!(!stored, "the purge left a tombstone, not a hole");
    assert_eq!(redis_keys(&server, "shop%2A:*").await, ["shop%2A:c1:k:k:1"]);
    assert!(
        eventually(std::time::Duration::from_secs(3), || !b
            .contains_local("k:1"))
        .await
    );
    assert_eq!(other.get::<u32>("k:1").await.unwrap(), Some(1));
}

#[tokio::test]
async fn scope_purge_deletes_only_that_scope() {
    let server = RedisServer::start();
    let a = instance(&server, "shop").await;
    a.scope("users").set("1", 1u8, None).await.unwrap();
    a.scope("users").set("2", 2u8, None).await.unwrap();
    a.scope("users-archive").set("1", 3u8, None).await.unwrap();
    a.set("users:1", 4u8, None).await.unwrap();

    assert_eq!(a.scope("users").purge().await.unwrap(), 2);
    assert_eq!(a.scope("users").get::<u8>("1").await.unwrap(), None);
    assert_eq!(
        a.scope("users-archive").get::<u8>("1").await.unwrap(),
        Some(3)
    );
    assert_eq!(a.get::<u8>("users:1").await.unwrap(), Some(4));
}

#[tokio::test]
async fn purge_without_redis_clears_memory() {
    let cache = Cache::in_memory();
    cache.set("k", 1u8, None).await.unwrap();
    assert_eq!(cache.purge().await.unwrap(), 0);
    assert!(!cache.contains_local("k"));
}

#[tokio::test]
async fn a_version_is_read_from_memory_and_a_bump_reaches_the_peers_over_the_bus() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    assert_eq!(b.version("catalog").await.unwrap(), 0);
    let calls = server.info_number("total_commands_processed");
    for _ in 0..100 {
        b.version("catalog").await.unwrap();
    }
    let spent = server.info_number("total_commands_processed") - calls;
    assert!(
        spent <= 5,
        "100 reads of a version cost {spent} Redis commands"
    );

    let version = a.bump_version("catalog").await.unwrap();
    assert_eq!(a.version("catalog").await.unwrap(), version, "at once here");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while b.version("catalog").await.unwrap() != version {
        assert!(std::time::Instant::now() < deadline, "B learns of the bump");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_version_fails_open_and_never_goes_back_when_redis_loses_its_data() {
    let mut server = RedisServer::start();
    let build = |compat: bool| {
        Cache::builder()
            .namespace("app")
            .redis(server.url())
            .redis_timeout(std::time::Duration::from_millis(500))
            .compat_0_1(compat)
            .build()
    };
    let a = build(false).await.unwrap();
    // While instances of 0.1 may run beside it, a version it cannot confirm is an error,
    // as in 0.1: they announce no bump.
    let compat = build(true).await.unwrap();
    let before = a.bump_version("catalog").await.unwrap();
    assert_eq!(compat.version("catalog").await.unwrap(), before);
    server.kill();
    let started = std::time::Instant::now();
    assert_eq!(
        a.version("catalog").await.unwrap(),
        before,
        "Redis is down: the last known version"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert!(
        compat.version("catalog").await.is_err(),
        "with compat_0_1, an unconfirmed version is an error"
    );
    // Redis comes back empty: the counter is gone.
    server.start_again();
    assert!(
        eventually(std::time::Duration::from_secs(5), || a.redis_available()
            && a.bus_connected())
        .await
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let restored = a.version("catalog").await.unwrap();
    assert!(
        restored > before,
        "it does not go back to 0: the counter is moved past it ({restored} after {before})"
    );
    let b = instance(&server, "app").await;
    assert_eq!(
        b.version("catalog").await.unwrap(),
        restored,
        "in Redis too"
    );
    let after = b.bump_version("catalog").await.unwrap();
    assert!(
        after > restored,
        "a bump after the loss is not a version used before"
    );
}

#[tokio::test]
async fn a_removals_tombstone_outlives_a_purge_beside_it() {
    let server = RedisServer::start();
    let a = instance(&server, "shop").await;
    a.set("k", 1u8, None).await.unwrap();
    a.remove("k").await.unwrap();
    let tombstone = server
        .stored_bytes("shop:c1:k:k")
        .expect("the removal's tombstone");
    a.purge().await.unwrap();
    // A load that read before the removal compares with what it saw: the removal's own
    // tombstone must still be there to fail it.
    assert_eq!(server.stored_bytes("shop:c1:k:k"), Some(tombstone));
}

/// The source of the grouped functions below: each read counts, and says which edition of
/// the listing it saw.
static EDITION: AtomicUsize = AtomicUsize::new(1);
static LISTING_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A page of a listing, in the group `articles`: no version threaded through the handler.
#[cached(key = "articles:page:<page>", group = "articles", cache = current())]
async fn articles_page(page: u32) -> String {
    LISTING_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("page {page} of edition {}", EDITION.load(Ordering::SeqCst))
}

/// One user's feed, in a group per user.
#[cached(key = "feed:<user_id>:<page>", group = "feed:<user_id>", cache = current())]
async fn feed(user_id: u64, page: u32) -> String {
    format!(
        "feed {user_id} page {page} of edition {}",
        EDITION.load(Ordering::SeqCst)
    )
}

#[tokio::test]
async fn a_group_named_in_the_attribute_is_retired_by_one_bump_on_every_instance() {
    let server = RedisServer::start();
    let a = instance(&server, "attr").await;
    let b = instance(&server, "attr").await;
    for page in 0..3 {
        assert_eq!(
            on(&a, articles_page(page)).await,
            format!("page {page} of edition 1")
        );
        assert_eq!(
            on(&b, articles_page(page)).await,
            format!("page {page} of edition 1")
        );
    }
    assert_eq!(
        LISTING_LOADS.load(Ordering::SeqCst),
        3,
        "B read A's pages from Redis"
    );
    assert_eq!(on(&b, feed(1, 0)).await, "feed 1 page 0 of edition 1");
    assert_eq!(on(&b, feed(2, 0)).await, "feed 2 page 0 of edition 1");

    // A write changes the listing and user 1's feed; A retires both groups.
    EDITION.store(2, Ordering::SeqCst);
    let version = on(&a, articles_page::bump_group()).await.unwrap();
    assert!(version > 0);
    on(&a, feed::bump_group(1)).await.unwrap();
    assert_eq!(
        on(&a, articles_page(0)).await,
        "page 0 of edition 2",
        "at once on A"
    );
    // B learns of the bumps over the bus (within the README's bound; 1 s here).
    let fresh = |b: Cache| async move {
        on(&b, articles_page(2)).await == "page 2 of edition 2"
            && on(&b, feed(1, 0)).await == "feed 1 page 0 of edition 2"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !fresh(b.clone()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "B reads the new edition"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // User 2's feed is another group: untouched.
    assert_eq!(on(&b, feed(2, 0)).await, "feed 2 page 0 of edition 1");
    assert_eq!(
        on(&b, async { feed::scope(2) }).await,
        "feed:2@v0",
        "the group's scope: its name and version"
    );
}
