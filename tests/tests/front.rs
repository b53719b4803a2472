//! The typed front of L1: a function's hits served by its arguments, without writing the
//! key, and every way of invalidating a value reaching the copy there.
//!
//! A value reaches the front on its second read (the first loads it, the second finds it in
//! L1 and copies it), so each test reads a key three times before it changes anything, and
//! checks with `Stats::front_hits` that the front did serve it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};
use once_cell::sync::Lazy;

/// The pretend database, one row per `(table, id)`.
static ROWS: Lazy<Mutex<HashMap<String, u64>>> = Lazy::new(Default::default);

fn row(table: &str, id: impl std::fmt::Display) -> u64 {
    *ROWS
        .lock()
        .unwrap()
        .get(&format!("{table}:{id}"))
        .unwrap_or(&1)
}

fn write_row(table: &str, id: impl std::fmt::Display, value: u64) {
    ROWS.lock().unwrap().insert(format!("{table}:{id}"), value);
}

fn memory_cache() -> Cache {
    Cache::builder().build_in_memory().expect("valid settings")
}

/// Reads `read` three times on `cache`, and checks that the third came from the front (the
/// first may load, the second finds the value in L1 and copies it to the front).
async fn warm<F, Fut>(cache: &Cache, read: F) -> Fut::Output
where
    F: Fn() -> Fut,
    Fut: std::future::Future,
    Fut::Output: PartialEq + std::fmt::Debug,
{
    let first = on(cache, read()).await;
    assert_eq!(on(cache, read()).await, first);
    let before = cache.stats().front_hits;
    assert_eq!(on(cache, read()).await, first);
    assert_eq!(
        cache.stats().front_hits,
        before + 1,
        "the third read came from the front"
    );
    first
}

#[cached(key = "item:<id>", cache = current())]
async fn item(id: u64) -> u64 {
    row("item", id)
}

#[tokio::test]
async fn repeated_hits_come_from_the_front_and_count_as_l1_hits() {
    let cache = memory_cache();
    assert_eq!(warm(&cache, || item(1)).await, 1);
    for _ in 0..10 {
        assert_eq!(on(&cache, item(1)).await, 1);
    }
    let stats = cache.stats();
    assert_eq!(stats.front_hits, 11);
    assert_eq!(
        stats.l1_hits, 12,
        "the L1 hit that copied it, and the front's"
    );
    assert_eq!(stats.loads, 1);
    assert_eq!(
        on(&cache, item(2)).await,
        1,
        "another argument is another entry"
    );
    assert_eq!(cache.stats().loads, 2);
}

#[tokio::test]
async fn remove_cached_ends_the_copy_in_the_front() {
    let cache = memory_cache();
    write_row("item", 10, 1);
    warm(&cache, || item(10)).await;
    write_row("item", 10, 2);
    on(&cache, item::remove_cached(10)).await.unwrap();
    assert_eq!(
        on(&cache, item(10)).await,
        2,
        "the write is visible on the next read"
    );

    warm(&cache, || item(10)).await;
    write_row("item", 10, 3);
    on(&cache, async { item::remove_local(10) }).await;
    assert_eq!(on(&cache, item(10)).await, 3);
}

#[tokio::test]
async fn a_value_set_under_the_functions_key_replaces_the_copy() {
    let cache = memory_cache();
    write_row("item", 20, 1);
    warm(&cache, || item(20)).await;
    cache.set(&item::key(20), 7u64, None).await.unwrap();
    assert_eq!(on(&cache, item(20)).await, 7);
    cache.remove(&item::key(20)).await.unwrap();
    assert_eq!(on(&cache, item(20)).await, 1, "removed by its key text");
}

#[tokio::test]
async fn clearing_memory_ends_every_copy() {
    let cache = memory_cache();
    write_row("item", 30, 1);
    warm(&cache, || item(30)).await;
    write_row("item", 30, 2);
    cache.clear_memory();
    assert_eq!(on(&cache, item(30)).await, 2);

    warm(&cache, || item(30)).await;
    write_row("item", 30, 3);
    cache.clear().await.unwrap();
    assert_eq!(on(&cache, item(30)).await, 3);

    warm(&cache, || item(30)).await;
    write_row("item", 30, 4);
    cache.purge().await.unwrap();
    assert_eq!(on(&cache, item(30)).await, 4);
}

#[cached(key = "member:<team>:<id>", tags = ["team:<team>"], cache = current())]
async fn member(team: u64, id: u64) -> u64 {
    row("member", id)
}

#[tokio::test]
async fn a_tag_invalidation_ends_the_copies_of_its_entries() {
    let cache = memory_cache();
    write_row("member", 1, 1);
    write_row("member", 2, 1);
    warm(&cache, || member(5, 1)).await;
    warm(&cache, || member(5, 2)).await;
    write_row("member", 1, 2);
    write_row("member", 2, 2);
    assert_eq!(cache.invalidate_tag("team:5").await.unwrap(), 2);
    assert_eq!(on(&cache, member(5, 1)).await, 2);
    assert_eq!(on(&cache, member(5, 2)).await, 2);
}

#[cached(key = "doc:<id>", scope = "tenant:<tenant>", cache = current())]
async fn doc(tenant: String, id: u64) -> u64 {
    row(&format!("doc:{tenant}"), id)
}

#[tokio::test]
async fn a_scope_clear_ends_the_copies_in_that_scope_only() {
    let cache = memory_cache();
    warm(&cache, || doc("a".into(), 1)).await;
    warm(&cache, || doc("b".into(), 1)).await;
    write_row("doc:a", 1, 2);
    write_row("doc:b", 1, 2);
    cache.scope("tenant:a").clear().await.unwrap();
    assert_eq!(on(&cache, doc("a".into(), 1)).await, 2);
    assert_eq!(
        on(&cache, doc("b".into(), 1)).await,
        1,
        "the other tenant's copy stays until its key changes"
    );
}

#[cached(key = "label:<name>", cache = current())]
async fn label(name: &str) -> u64 {
    row("label", name)
}

#[tokio::test]
async fn text_arguments_are_looked_up_borrowed_and_kept_apart() {
    let cache = memory_cache();
    write_row("label", "x", 1);
    write_row("label", "x:y", 2);
    assert_eq!(warm(&cache, || label("x")).await, 1);
    assert_eq!(warm(&cache, || label("x:y")).await, 2);
    write_row("label", "x", 3);
    on(&cache, label::remove_cached("x")).await.unwrap();
    assert_eq!(on(&cache, label("x")).await, 3);
    assert_eq!(on(&cache, label("x:y")).await, 2);
}

#[derive(Clone)]
struct Owner {
    id: u64,
}

#[cached(key = "order:<owner.id>:<n>", cache = current())]
async fn order(owner: &Owner, n: u32) -> u64 {
    row("order", format!("{}:{n}", owner.id))
}

#[tokio::test]
async fn fields_and_several_arguments_key_the_front_together() {
    let cache = memory_cache();
    let ada = Owner { id: 1 };
    let bob = Owner { id: 2 };
    write_row("order", "1:1", 11);
    write_row("order", "2:1", 21);
    assert_eq!(warm(&cache, || order(&ada, 1)).await, 11);
    assert_eq!(warm(&cache, || order(&bob, 1)).await, 21);
    write_row("order", "1:1", 12);
    on(&cache, order::remove_cached(&ada, 1)).await.unwrap();
    assert_eq!(on(&cache, order(&ada, 1)).await, 12);
    assert_eq!(on(&cache, order(&bob, 1)).await, 21);
}

#[derive(cachemacro::KeyPart)]
struct Sku(String);

#[cached(key = "stock:<sku>:<day>", cache = current())]
async fn stock(sku: Sku, day: chrono::NaiveDate) -> u64 {
    row("stock", format!("{}:{day}", sku.0))
}

#[tokio::test]
async fn values_of_other_key_part_types_key_the_front_by_their_text() {
    let cache = memory_cache();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let next = day.succ_opt().unwrap();
    write_row("stock", format!("a:b:{day}"), 5);
    assert_eq!(warm(&cache, || stock(Sku("a:b".into()), day)).await, 5);
    assert_eq!(warm(&cache, || stock(Sku("a".into()), day)).await, 1);
    assert_eq!(warm(&cache, || stock(Sku("a:b".into()), next)).await, 1);
    write_row("stock", format!("a:b:{day}"), 6);
    on(&cache, stock::remove_cached(Sku("a:b".into()), day))
        .await
        .unwrap();
    assert_eq!(on(&cache, stock(Sku("a:b".into()), day)).await, 6);
    assert_eq!(on(&cache, stock(Sku("a".into()), day)).await, 1);
    assert_eq!(on(&cache, stock(Sku("a:b".into()), next)).await, 1);
}

static SHORT_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "short:<id>", ttl = "300ms", cache = current())]
async fn short(id: u64) -> usize {
    SHORT_LOADS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn a_copy_never_outlives_the_entrys_ttl() {
    let cache = memory_cache();
    let first = warm(&cache, || short(0)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_ne!(on(&cache, short(0)).await, first, "expired, so reloaded");
}

static AHEAD_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "ahead:<id>", ttl = "600ms", refresh_ahead = 0.5, cache = current())]
async fn ahead(id: u64) -> usize {
    AHEAD_LOADS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn a_copy_stops_at_the_refresh_point_so_a_hit_there_refreshes() {
    let cache = memory_cache();
    let first = warm(&cache, || ahead(0)).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Past half its TTL: this hit returns the value and refreshes it in the background.
    assert_eq!(on(&cache, ahead(0)).await, first);
    assert!(
        eventually(Duration::from_secs(2), || AHEAD_LOADS
            .load(Ordering::SeqCst)
            == 2)
        .await,
        "the hit past the refresh point started a refresh"
    );
    assert!(eventually(Duration::from_secs(2), || cache.stats().refreshes == 1).await);
}

trait Flavor {
    const VALUE: u64;
}
struct Sweet;
struct Salty;
impl Flavor for Sweet {
    const VALUE: u64 = 1;
}
impl Flavor for Salty {
    const VALUE: u64 = 2;
}

#[cached(key = "snack:<id>", cache = current())]
async fn snack<F: Flavor>(id: u64) -> u64 {
    F::VALUE * 100 + id
}

#[tokio::test]
async fn a_generic_function_has_no_front_so_its_instances_stay_apart() {
    let cache = memory_cache();
    for _ in 0..5 {
        assert_eq!(on(&cache, snack::<Sweet>(1)).await, 101);
        assert_eq!(on(&cache, snack::<Salty>(1)).await, 201);
    }
    assert_eq!(cache.stats().front_hits, 0);
}

#[tokio::test]
async fn fronts_can_be_turned_off() {
    let cache = Cache::builder()
        .l1_front_capacity(0)
        .build_in_memory()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(on(&cache, item(40)).await, 1);
    }
    let stats = cache.stats();
    assert_eq!((stats.front_hits, stats.l1_hits), (0, 4));

    let bytes = Cache::builder()
        .l1_max_bytes(1 << 20)
        .build_in_memory()
        .unwrap();
    for _ in 0..5 {
        on(&bytes, item(40)).await;
    }
    assert_eq!(
        bytes.stats().front_hits,
        0,
        "off by default under a byte bound, which they would not count"
    );
}

#[cached(key = "shared:<id>", cache = current())]
async fn shared_as_number(id: u64) -> u64 {
    id
}

#[cached(key = "shared:<id>", cache = current())]
async fn shared_as_text(id: u64) -> String {
    format!("text {id}")
}

#[tokio::test]
async fn a_value_of_another_type_under_the_key_ends_the_copy() {
    let cache = memory_cache();
    assert_eq!(warm(&cache, || shared_as_number(1)).await, 1);
    // Two functions sharing a key: the other one's value replaces this one's in L1, and
    // with it the copy in this one's front.
    assert_eq!(on(&cache, shared_as_text(1)).await, "text 1");
    let before = cache.stats();
    assert_eq!(on(&cache, shared_as_number(1)).await, 1);
    let after = cache.stats();
    assert_eq!(
        after.front_hits, before.front_hits,
        "not served from the front"
    );
    assert_eq!(after.type_conflicts, before.type_conflicts + 1);
    assert_eq!(on(&cache, shared_as_text(1)).await, "text 1");
}

#[cached(key = "price:<id>", cache = current())]
async fn price(id: u64) -> u64 {
    row("price", id)
}

#[tokio::test]
async fn a_write_on_one_instance_ends_the_copy_in_every_others_front() {
    let server = RedisServer::start();
    let a = instance(&server, "front").await;
    let b = instance(&server, "front").await;
    write_row("price", 1, 1);
    warm(&a, || price(1)).await;
    warm(&b, || price(1)).await;
    write_row("price", 1, 2);
    on(&a, price::remove_cached(1)).await.unwrap();
    assert!(eventually(Duration::from_secs(3), || !b.contains_local(&price::key(1))).await);
    assert_eq!(on(&b, price(1)).await, 2);
    assert_eq!(on(&a, price(1)).await, 2);

    warm(&b, || price(1)).await;
    write_row("price", 1, 3);
    a.invalidate_tag("unused").await.unwrap();
    a.scope("elsewhere").clear().await.unwrap();
    assert_eq!(
        on(&b, price(1)).await,
        2,
        "unrelated invalidations change nothing"
    );
    a.purge().await.unwrap();
    assert!(eventually(Duration::from_secs(3), || !b.contains_local(&price::key(1))).await);
    assert_eq!(
        on(&b, price(1)).await,
        3,
        "a purge reaches the other fronts too"
    );
}

static RACE_ROW: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "race:<id>", cache = current())]
async fn race(id: u64) -> usize {
    let value = RACE_ROW.load(Ordering::SeqCst);
    // Widen the window between reading the row and storing the value.
    tokio::task::yield_now().await;
    value + id as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_a_returned_removal_sees_the_value_it_removed() {
    let cache = memory_cache();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        readers.push(tokio::spawn(cachemacro_tests::INSTANCE.scope(
            cache.clone(),
            async move {
                while !stop.load(Ordering::Relaxed) {
                    race(0).await;
                    tokio::task::yield_now().await;
                }
            },
        )));
    }
    for written in 1..=300 {
        RACE_ROW.store(written, Ordering::SeqCst);
        on(&cache, race::remove_cached(0)).await.unwrap();
        for _ in 0..3 {
            let read = on(&cache, race(0)).await;
            assert!(
                read >= written,
                "read {read} after the removal that followed write {written} returned"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(cache.stats().front_hits > 0, "the front was in the race");
}
