//! The read path of `#[cached]` on one instance: hits, misses, TTLs, single flight, the
//! invalidation-during-load race, cancellation and failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache};
use once_cell::sync::Lazy;
use tokio::sync::Semaphore;

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);

// ---- hits and misses ----

static PROFILE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "profile:<id>", ttl = "5m", cache = &*CACHE)]
async fn profile(id: u64) -> String {
    PROFILE_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("profile {id}")
}

#[tokio::test]
async fn second_call_is_a_hit_that_runs_no_body() {
    assert_eq!(profile(1).await, "profile 1");
    assert_eq!(profile(1).await, "profile 1");
    assert_eq!(profile(1).await, "profile 1");
    assert_eq!(PROFILE_LOADS.load(Ordering::SeqCst), 1);
    assert_eq!(profile(2).await, "profile 2");
    assert_eq!(PROFILE_LOADS.load(Ordering::SeqCst), 2);
    assert!(CACHE.contains_local("profile:1"));
}

// ---- TTL ----

static SHORT_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "short:<id>", ttl = "300ms", cache = &*CACHE)]
async fn short_lived(id: u64) -> usize {
    SHORT_LOADS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn entry_expires_after_its_ttl() {
    let first = short_lived(0).await;
    assert_eq!(short_lived(0).await, first, "a hit within the TTL");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_ne!(
        short_lived(0).await,
        first,
        "the entry expired and was reloaded"
    );
    assert_eq!(SHORT_LOADS.load(Ordering::SeqCst), 2);
}

// ---- invalidation ----

static PRICES: Lazy<std::sync::Mutex<u32>> = Lazy::new(|| std::sync::Mutex::new(10));

#[cached(key = "price:<sku>", cache = &*CACHE)]
async fn price(sku: String) -> u32 {
    *PRICES.lock().unwrap()
}

#[tokio::test]
async fn write_is_visible_on_the_next_read() {
    assert_eq!(price("a".into()).await, 10);
    *PRICES.lock().unwrap() = 12;
    assert_eq!(
        price("a".into()).await,
        10,
        "still cached before invalidation"
    );
    price::remove_cached("a".into()).await.unwrap();
    assert!(!CACHE.contains_local("price:a"));
    assert_eq!(
        price("a".into()).await,
        12,
        "the next read after the write is fresh"
    );
}

static SETTINGS_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "settings:<user_id>", cache = &*CACHE)]
async fn settings(user_id: u64) -> usize {
    SETTINGS_LOADS.fetch_add(1, Ordering::SeqCst)
}

#[tokio::test]
async fn cache_remove_takes_the_key_the_template_makes() {
    settings(123).await;
    assert_eq!(settings::key(123), "settings:123");
    CACHE.remove("settings:123").await.unwrap();
    settings(123).await;
    assert_eq!(SETTINGS_LOADS.load(Ordering::SeqCst), 2);

    settings(124).await;
    settings::remove_local(124);
    assert!(!CACHE.contains_local("settings:124"));
    settings(124).await;
    assert_eq!(SETTINGS_LOADS.load(Ordering::SeqCst), 4);
}

// ---- what is not cached ----

static FALLIBLE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
struct NotFound;

#[cached(key = "fallible:<id>", cache = &*CACHE)]
async fn fallible(id: u64) -> Result<u64, NotFound> {
    let n = FALLIBLE_CALLS.fetch_add(1, Ordering::SeqCst);
    // `?` works in the body: the error type comes from the signature.
    let value = if n == 0 { Err(NotFound) } else { Ok(id) }?;
    Ok(value)
}

#[tokio::test]
async fn err_is_never_cached() {
    assert_eq!(fallible(5).await, Err(NotFound));
    assert_eq!(fallible(5).await, Ok(5), "the error was not cached");
    assert_eq!(fallible(5).await, Ok(5));
    assert_eq!(FALLIBLE_CALLS.load(Ordering::SeqCst), 2);
}

static MAYBE_CALLS: AtomicUsize = AtomicUsize::new(0);
static MAYBE_NONE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "maybe:<id>", cache = &*CACHE)]
async fn maybe(id: u64) -> Option<u64> {
    MAYBE_CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cached(key = "maybe-none:<id>", cache = &*CACHE, cache_none = true)]
async fn maybe_cached_none(id: u64) -> Option<u64> {
    MAYBE_NONE_CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[tokio::test]
async fn none_is_cached_only_with_cache_none() {
    assert_eq!(maybe(1).await, None);
    assert_eq!(maybe(1).await, None);
    assert_eq!(MAYBE_CALLS.load(Ordering::SeqCst), 2, "None is not cached");
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(MAYBE_CALLS.load(Ordering::SeqCst), 3, "Some is cached");

    assert_eq!(maybe_cached_none(1).await, None);
    assert_eq!(maybe_cached_none(1).await, None);
    assert_eq!(MAYBE_NONE_CALLS.load(Ordering::SeqCst), 1, "None is cached");
}

// ---- single flight ----

static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "slow:<id>", cache = &*CACHE)]
async fn slow(id: u64) -> u64 {
    SLOW_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    id * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_body_once() {
    let callers: Vec<_> = (0..200).map(|_| tokio::spawn(slow(7))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 70);
    }
    assert_eq!(SLOW_LOADS.load(Ordering::SeqCst), 1);
}

// ---- the invalidation-during-load race ----

/// Lets a test hold a load at a chosen point.
struct Gate {
    entered: Semaphore,
    release: Semaphore,
}

impl Gate {
    const fn new() -> Self {
        Self {
            entered: Semaphore::const_new(0),
            release: Semaphore::const_new(0),
        }
    }

    /// Called by the loader: announce, then wait for the test.
    async fn pass(&self) {
        self.entered.add_permits(1);
        self.release.acquire().await.unwrap().forget();
    }

    async fn wait_entered(&self) {
        self.entered.acquire().await.unwrap().forget();
    }

    fn open(&self) {
        self.release.add_permits(1);
    }
}

static ROW: Lazy<std::sync::Mutex<&'static str>> = Lazy::new(|| std::sync::Mutex::new("old"));
static ROW_GATE: Gate = Gate::new();
static ROW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "row:<id>", cache = &*CACHE)]
async fn row(id: u64) -> String {
    let n = ROW_LOADS.fetch_add(1, Ordering::SeqCst);
    let value = format!("{id}:{}", *ROW.lock().unwrap());
    if n == 0 {
        // The first load read the row, and now stalls before returning it.
        ROW_GATE.pass().await;
    }
    value
}

#[tokio::test]
async fn remove_during_a_load_is_not_undone_by_the_load() {
    // A reader misses and reads the old row...
    let reader = tokio::spawn(row(1));
    ROW_GATE.wait_entered().await;
    // ...a writer changes the row and invalidates while the reader is still loading...
    *ROW.lock().unwrap() = "new";
    row::remove_cached(1).await.unwrap();
    // ...then the reader finishes with the value it read before the write.
    ROW_GATE.open();
    assert_eq!(
        reader.await.unwrap(),
        "1:old",
        "the reader gets what it loaded"
    );
    assert!(
        !CACHE.contains_local("row:1"),
        "the stale value was not cached"
    );
    assert_eq!(row(1).await, "1:new", "the next read sees the write");
    assert_eq!(row(1).await, "1:new");
    assert_eq!(ROW_LOADS.load(Ordering::SeqCst), 2);
}

static SET_GATE: Gate = Gate::new();

#[tokio::test]
async fn set_during_a_load_wins_over_the_load() {
    let cache = Cache::in_memory();
    let loader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_set("k", None, || async {
                    SET_GATE.pass().await;
                    "loaded before the write".to_string()
                })
                .await
        })
    };
    SET_GATE.wait_entered().await;
    cache.set("k", "written".to_string(), None).await.unwrap();
    SET_GATE.open();
    assert_eq!(loader.await.unwrap(), "loaded before the write");
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("written")
    );
}

static CLEAR_GATE: Gate = Gate::new();

#[tokio::test]
async fn clear_during_a_load_is_not_undone_by_the_load() {
    let cache = Cache::in_memory();
    let loader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .scope("s")
                .get_or_set("k", None, || async {
                    CLEAR_GATE.pass().await;
                    1u8
                })
                .await
        })
    };
    CLEAR_GATE.wait_entered().await;
    cache.scope("s").clear().await.unwrap();
    CLEAR_GATE.open();
    assert_eq!(loader.await.unwrap(), 1);
    assert!(!cache.scope("s").contains_local("k"));
}

// ---- cancellation and failures ----

static HANG_CALLS: AtomicUsize = AtomicUsize::new(0);
static HANG_GATE: Gate = Gate::new();

#[cached(key = "hang:<id>", cache = &*CACHE)]
async fn hangs_first_time(id: u64) -> u64 {
    if HANG_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        HANG_GATE.pass().await;
        unreachable!("the first caller is cancelled before the gate opens");
    }
    id
}

#[tokio::test]
async fn a_cancelled_loader_does_not_poison_the_key() {
    let leader = tokio::spawn(hangs_first_time(3));
    HANG_GATE.wait_entered().await;
    // A second caller joins the flight, then the leader is cancelled.
    let follower = tokio::spawn(hangs_first_time(3));
    tokio::task::yield_now().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let value = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the waiting caller took over instead of hanging")
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(hangs_first_time(3).await, 3);
    assert_eq!(HANG_CALLS.load(Ordering::SeqCst), 2);
}

static PANIC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "panics:<id>", cache = &*CACHE)]
async fn panics_first_time(id: u64) -> u64 {
    if PANIC_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("the loader failed");
    }
    id
}

#[tokio::test]
async fn a_panicking_loader_leaves_the_key_loadable() {
    let first = tokio::spawn(panics_first_time(4)).await;
    assert!(first.unwrap_err().is_panic());
    assert_eq!(panics_first_time(4).await, 4);
    assert_eq!(panics_first_time(4).await, 4);
    assert_eq!(PANIC_CALLS.load(Ordering::SeqCst), 2);
}

static FAILING_FLIGHT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "failing-flight:<id>", cache = &*CACHE)]
async fn fails_first_time(id: u64) -> Result<u64, String> {
    let n = FAILING_FLIGHT_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if n == 0 {
        Err("database down".into())
    } else {
        Ok(id)
    }
}

#[tokio::test]
async fn waiting_callers_share_the_leaders_error_when_it_can_be_cloned() {
    let leader = tokio::spawn(fails_first_time(9));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let followers: Vec<_> = (0..5).map(|_| tokio::spawn(fails_first_time(9))).collect();
    assert_eq!(leader.await.unwrap(), Err("database down".to_string()));
    for f in followers {
        assert_eq!(
            f.await.unwrap(),
            Err("database down".to_string()),
            "a waiter gets the result of the load it waited for"
        );
    }
    assert_eq!(
        FAILING_FLIGHT_CALLS.load(Ordering::SeqCst),
        1,
        "one load in all"
    );
    assert_eq!(fails_first_time(9).await, Ok(9), "the error was not cached");
}

/// An error that cannot be cloned.
#[derive(Debug, PartialEq)]
struct Down;

static OPAQUE_FLIGHT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "opaque-flight:<id>", cache = &*CACHE)]
async fn fails_first_time_opaquely(id: u64) -> Result<u64, Down> {
    let n = OPAQUE_FLIGHT_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if n == 0 {
        Err(Down)
    } else {
        Ok(id)
    }
}

#[tokio::test]
async fn waiting_callers_load_once_more_together_when_the_error_cannot_be_shared() {
    let leader = tokio::spawn(fails_first_time_opaquely(9));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let followers: Vec<_> = (0..5)
        .map(|_| tokio::spawn(fails_first_time_opaquely(9)))
        .collect();
    assert_eq!(leader.await.unwrap(), Err(Down));
    for f in followers {
        assert_eq!(
            f.await.unwrap(),
            Ok(9),
            "a waiter is not handed an error it cannot be given a copy of"
        );
    }
    // One of the waiters loaded again; the others shared its value.
    assert_eq!(OPAQUE_FLIGHT_CALLS.load(Ordering::SeqCst), 2);
}

// ---- the wrong type under a key ----

static TYPED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "shared:<id>", cache = &*CACHE)]
async fn as_text(id: u64) -> String {
    TYPED_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("#{id}")
}

#[tokio::test]
async fn a_value_of_another_type_under_the_key_is_a_miss() {
    CACHE.set("shared:1", 41u32, None).await.unwrap();
    assert_eq!(as_text(1).await, "#1", "not a panic, not the u32");
    assert_eq!(TYPED_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(as_text(1).await, "#1");
    assert_eq!(TYPED_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(CACHE.get::<u32>("shared:1").await.unwrap(), None);
}

// ---- two functions on one key template ----

static CLASH_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Types of their own: a conflict is reported once per pair of types per process.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ClashName(String);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ClashAge(u32);

#[cached(key = "clash:<id>", cache = &*CACHE)]
async fn clash_name(id: u64) -> ClashName {
    CLASH_LOADS.fetch_add(1, Ordering::SeqCst);
    ClashName(format!("name {id}"))
}

#[cached(key = "clash:<id>", cache = &*CACHE)]
async fn clash_age(id: u64) -> ClashAge {
    CLASH_LOADS.fetch_add(1, Ordering::SeqCst);
    ClashAge(id as u32)
}

#[tokio::test]
async fn two_functions_on_one_key_template_are_reported_once_and_counted() {
    let (logs, _guard) = cachemacro_tests::Logs::capture();
    let before = CACHE.stats().type_conflicts;
    for _ in 0..3 {
        assert_eq!(clash_name(1).await, ClashName("name 1".into()));
        assert_eq!(clash_age(1).await, ClashAge(1));
    }
    assert_eq!(
        CLASH_LOADS.load(Ordering::SeqCst),
        6,
        "each evicts the other"
    );
    assert!(CACHE.stats().type_conflicts - before >= 5);
    let warnings: Vec<String> = logs
        .at_least(tracing::Level::WARN)
        .into_iter()
        .filter(|line| line.contains("clash:1"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one line per pair of types: {warnings:?}"
    );
    assert!(
        warnings[0].contains("ClashName") && warnings[0].contains("ClashAge"),
        "{}",
        warnings[0]
    );
}

// ---- values of every size and alignment ----

/// Over-aligned: L1 keeps it behind an `Arc` rather than in the slot.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[repr(align(128))]
struct Aligned(u64);

/// Loads `value` under `key` through `get_or_set`, then reads it back twice: each read must
/// be a hit (the loader runs once) and equal to what was loaded.
async fn loads_once_and_hits<T>(cache: &Cache, key: &str, value: T)
where
    T: Clone
        + PartialEq
        + std::fmt::Debug
        + Send
        + Sync
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static,
{
    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let got = cache
            .get_or_set(key, None, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                value.clone()
            })
            .await;
        assert_eq!(got, value, "{key}");
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "{key}: read from L1 after the load"
    );
}

#[tokio::test]
async fn values_of_every_size_and_alignment_come_back_intact_from_l1() {
    // L1 keeps values of up to 64 bytes in its slot and larger or over-aligned ones behind
    // an `Arc`; keys of up to 38 bytes in the slot, longer ones on the heap.
    let cache = Cache::in_memory();
    loads_once_and_hits(&cache, "unit", ()).await;
    loads_once_and_hits(&cache, "byte", 7u8).await;
    loads_once_and_hits(&cache, "text", String::from("hello")).await;
    loads_once_and_hits(&cache, "64 bytes", [7u64; 8]).await;
    loads_once_and_hits(&cache, "72 bytes", [9u64; 9]).await;
    loads_once_and_hits(&cache, "a megabyte", vec![3u8; 1 << 20]).await;
    loads_once_and_hits(&cache, "aligned", Aligned(11)).await;
    let long_key = "k".repeat(200);
    loads_once_and_hits(
        &cache,
        &long_key,
        (1u64, String::from("a"), String::from("b")),
    )
    .await;
    // A value kept in the slot and one behind an `Arc` under one key are two types: a miss.
    cache.set("either", [1u64; 8], None).await.unwrap();
    assert_eq!(cache.get::<[u64; 9]>("either").await.unwrap(), None);
    assert_eq!(
        cache.get::<[u64; 8]>("either").await.unwrap(),
        Some([1u64; 8])
    );
    cache.set("either", [2u64; 9], None).await.unwrap();
    assert_eq!(cache.get::<[u64; 8]>("either").await.unwrap(), None);
    assert_eq!(
        cache.get::<[u64; 9]>("either").await.unwrap(),
        Some([2u64; 9])
    );
}
