//! The body decides its entry (`cachemacro::entry()`): its TTL from the value, extra tags,
//! or not to cache it; and no choice weakens an invalidation. In memory and on Redis with
//! two instances.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};

/// The caches a scenario runs on: in memory, and two instances on one Redis.
async fn caches(server: &RedisServer, ns: &str) -> [Cache; 3] {
    [
        Cache::in_memory(),
        instance(server, ns).await,
        instance(server, ns).await,
    ]
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

static SHORT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A token valid for 400 ms, whatever the function's hour.
#[cached(key = "short:<id>", ttl = "1h", cache = current())]
async fn short(id: u64) -> u64 {
    SHORT_RUNS.fetch_add(1, Ordering::SeqCst);
    cachemacro::entry().ttl(ms(400));
    id
}

#[tokio::test]
async fn a_ttl_the_body_chooses_ends_the_entry_in_both_tiers() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server, "short").await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        let runs = SHORT_RUNS.load(Ordering::SeqCst);
        assert_eq!(on(cache, short(id)).await, id);
        assert_eq!(on(cache, short(id)).await, id);
        assert_eq!(SHORT_RUNS.load(Ordering::SeqCst), runs + 1, "a hit");
        tokio::time::sleep(ms(500)).await;
        assert_eq!(on(cache, short(id)).await, id);
        assert_eq!(
            SHORT_RUNS.load(Ordering::SeqCst),
            runs + 2,
            "expired at 400 ms"
        );
    }
    // In Redis it lives 400 ms too.
    let ttl: i64 = redis::cmd("PTTL")
        .arg("short:c1:k:short:2")
        .query(&mut server.connection())
        .unwrap();
    assert!((1..=400).contains(&ttl), "{ttl} ms");
    let runs = SHORT_RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, short(2)).await, 2);
    assert_eq!(
        SHORT_RUNS.load(Ordering::SeqCst),
        runs,
        "the peer read Redis"
    );
}

static LONG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "long:<id>", ttl = "300ms", cache = current())]
async fn long(id: u64) -> u64 {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    cachemacro::entry().ttl(Duration::from_secs(3600));
    id
}

#[tokio::test]
async fn a_ttl_longer_than_the_functions_keeps_the_entry_longer() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server, "long").await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        on(cache, long(id)).await;
        let runs = LONG_RUNS.load(Ordering::SeqCst);
        tokio::time::sleep(ms(400)).await;
        assert_eq!(on(cache, long(id)).await, id);
        assert_eq!(LONG_RUNS.load(Ordering::SeqCst), runs, "still cached");
    }
    let runs = LONG_RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, long(2)).await, 2);
    assert_eq!(LONG_RUNS.load(Ordering::SeqCst), runs, "from Redis");
}

static ODD_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Odd values are answered, never cached.
#[cached(key = "odd:<id>", ttl = "1h", cache = current())]
async fn odd(id: u64) -> u64 {
    ODD_RUNS.fetch_add(1, Ordering::SeqCst);
    if id % 2 == 1 {
        cachemacro::entry().skip();
    }
    id
}

#[tokio::test]
async fn a_value_the_body_skips_is_returned_and_not_cached() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server, "odd").await;
    for (id, cache) in [(1, &memory), (3, &a)] {
        let runs = ODD_RUNS.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(on(cache, odd(id)).await, id);
        }
        assert_eq!(
            ODD_RUNS.load(Ordering::SeqCst),
            runs + 3,
            "every call loads"
        );
        // An even one is cached as usual.
        on(cache, odd(id + 1)).await;
        on(cache, odd(id + 1)).await;
        assert_eq!(ODD_RUNS.load(Ordering::SeqCst), runs + 4);
    }
    assert_eq!(server.stored_bytes("odd:c1:k:odd:3"), None, "not in Redis");
    assert!(server.stored_bytes("odd:c1:k:odd:4").is_some());
    let runs = ODD_RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, odd(3)).await, 3);
    assert_eq!(ODD_RUNS.load(Ordering::SeqCst), runs + 1);
}

static ZERO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "zero:<id>", ttl = "1h", cache = current())]
async fn zero(id: u64) -> Result<u64, String> {
    ZERO_RUNS.fetch_add(1, Ordering::SeqCst);
    cachemacro::entry().ttl(Duration::ZERO);
    Ok(id)
}

#[tokio::test]
async fn a_zero_ttl_from_the_body_caches_nothing() {
    let cache = Cache::in_memory();
    on(&cache, zero(1)).await.unwrap();
    on(&cache, zero(1)).await.unwrap();
    assert_eq!(ZERO_RUNS.load(Ordering::SeqCst), 2);
}

static PRODUCT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A product whose category is known from the value only.
#[cached(key = "product:<id>", ttl = "1h", cache = current())]
async fn product(id: u64) -> (u64, u64) {
    PRODUCT_RUNS.fetch_add(1, Ordering::SeqCst);
    let category = id / 10;
    cachemacro::entry().tag(format!("category:{category}"));
    (id, category)
}

#[tokio::test]
async fn a_tag_the_body_chooses_is_invalidated_here_and_from_a_peer() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server, "product").await;
    for (id, cache) in [(11, &memory), (21, &a)] {
        on(cache, product(id)).await;
        on(cache, product(id)).await;
        let runs = PRODUCT_RUNS.load(Ordering::SeqCst);
        assert_eq!(runs_since(runs), 0, "a hit");
        let removed = cache
            .invalidate_tag(&format!("category:{}", id / 10))
            .await
            .unwrap();
        assert_eq!(removed, 1);
        on(cache, product(id)).await;
        assert_eq!(runs_since(runs), 1, "loaded again");
    }
    // Kept in the loading process only: Redis has no copy to outlive a tag it never listed.
    assert_eq!(server.stored_bytes("product:c1:k:product:21"), None);
    // A peer's invalidation reaches it through the bus.
    let runs = PRODUCT_RUNS.load(Ordering::SeqCst);
    on(&a, product(21)).await;
    assert_eq!(runs_since(runs), 0);
    b.invalidate_tag("category:2").await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !a
            .contains_local(&product::key(21)))
        .await
    );
    on(&a, product(21)).await;
    assert_eq!(runs_since(runs), 1);
}

fn runs_since(before: usize) -> usize {
    PRODUCT_RUNS.load(Ordering::SeqCst) - before
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
static SLOW_VALUE: AtomicU64 = AtomicU64::new(1);

/// Reads its value, then takes 400 ms to find its tag.
#[cached(key = "slow-tag:<id>", ttl = "1h", cache = current())]
async fn slow_tag(id: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    let value = SLOW_VALUE.load(Ordering::SeqCst);
    tokio::time::sleep(ms(400)).await;
    cachemacro::entry().tag(format!("slow:{id}"));
    value
}

#[tokio::test]
async fn an_invalidation_of_a_tag_before_the_body_chose_it_still_wins() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server, "slow-tag").await;
    for (id, cache, invalidator) in [(1, &memory, &memory), (2, &a, &a), (3, &a, &b)] {
        SLOW_VALUE.store(1, Ordering::SeqCst);
        let load = on(cache, slow_tag(id));
        let write = async {
            // The body has read 1; the source changes, and the tag is invalidated, before
            // the body names the tag.
            tokio::time::sleep(ms(100)).await;
            SLOW_VALUE.store(2, Ordering::SeqCst);
            invalidator
                .invalidate_tag(&format!("slow:{id}"))
                .await
                .unwrap();
        };
        let (old, ()) = tokio::join!(load, write);
        assert_eq!(old, 1, "the load in flight answers what it read");
        assert_eq!(
            on(cache, slow_tag(id)).await,
            2,
            "the old value was not cached (invalidated by {})",
            if std::ptr::eq(invalidator, cache) {
                "this instance"
            } else {
                "a peer"
            }
        );
    }
}

static OUTER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "skipping-inner:<id>", ttl = "1h", cache = current())]
async fn skipping_inner(id: u64) -> u64 {
    cachemacro::entry().skip();
    id
}

#[cached(key = "outer:<id>", ttl = "1h", cache = current())]
async fn outer(id: u64) -> u64 {
    OUTER_RUNS.fetch_add(1, Ordering::SeqCst);
    assert!(cachemacro::entry().is_deciding());
    skipping_inner(id).await + 1
}

#[tokio::test]
async fn a_choice_is_the_loads_own_not_its_callers_nor_outside_a_load() {
    assert!(!cachemacro::entry().is_deciding());
    // Changes nothing outside a load, and does not panic.
    cachemacro::entry().ttl(ms(1)).skip().tag("x");
    let cache = Cache::in_memory();
    // The inner function skips its own entry; the outer one's is cached.
    assert_eq!(on(&cache, outer(1)).await, 2);
    assert_eq!(on(&cache, outer(1)).await, 2);
    assert_eq!(OUTER_RUNS.load(Ordering::SeqCst), 1);
    assert!(!cache.contains_local(&skipping_inner::key(1)));
    // A body run without the cache decides nothing.
    let deciding = on(
        &cache,
        cachemacro::without_cache(async { cachemacro::entry().is_deciding() }),
    )
    .await;
    assert!(!deciding);
}

static MANY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "many-tags:<id>", ttl = "1h", cache = current())]
async fn many_tags(id: u64) -> u64 {
    MANY_RUNS.fetch_add(1, Ordering::SeqCst);
    for i in 0..=cachemacro::MAX_ENTRY_TAGS {
        cachemacro::entry().tag(format!("t{i}"));
    }
    id
}

#[tokio::test]
async fn more_tags_than_an_entry_takes_keep_the_value_out() {
    let cache = Cache::in_memory();
    on(&cache, many_tags(1)).await;
    on(&cache, many_tags(1)).await;
    assert_eq!(MANY_RUNS.load(Ordering::SeqCst), 2);
}

static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Declared tags, registered in Redis for the function's 300 ms; the body asks an hour.
#[cached(key = "tagged-long:<id>", ttl = "300ms", tags = ["owner:<id>"], cache = current())]
async fn tagged_long(id: u64) -> u64 {
    TAGGED_RUNS.fetch_add(1, Ordering::SeqCst);
    cachemacro::entry().ttl(Duration::from_secs(3600));
    id
}

#[tokio::test]
async fn a_tagged_entry_the_body_keeps_longer_stays_out_of_redis_and_is_still_invalidated() {
    let server = RedisServer::start();
    let [_, a, b] = caches(&server, "tagged-long").await;
    on(&a, tagged_long(1)).await;
    tokio::time::sleep(ms(400)).await;
    let runs = TAGGED_RUNS.load(Ordering::SeqCst);
    on(&a, tagged_long(1)).await;
    assert_eq!(
        TAGGED_RUNS.load(Ordering::SeqCst),
        runs,
        "kept an hour here"
    );
    assert_eq!(server.stored_bytes("tagged-long:c1:k:tagged-long:1"), None);
    b.invalidate_tag("owner:1").await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !a
            .contains_local(&tagged_long::key(1)))
        .await
    );
    on(&a, tagged_long(1)).await;
    assert_eq!(TAGGED_RUNS.load(Ordering::SeqCst), runs + 1);
}

#[tokio::test]
async fn a_get_or_set_loader_decides_its_entry_too() {
    let cache = Cache::in_memory();
    let loads = AtomicUsize::new(0);
    for _ in 0..2 {
        cache
            .get_or_set("k", None, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                cachemacro::entry().skip();
                1u8
            })
            .await;
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2, "skipped: loaded twice");
    for _ in 0..2 {
        cache
            .get_or_set("short", Duration::from_secs(3600), || async {
                loads.fetch_add(1, Ordering::SeqCst);
                cachemacro::entry().ttl(ms(200));
                1u8
            })
            .await;
    }
    assert_eq!(loads.load(Ordering::SeqCst), 3, "cached");
    tokio::time::sleep(ms(300)).await;
    assert_eq!(cache.get::<u8>("short").await.unwrap(), None, "for 200 ms");
}
