//! When the source fails or is slow: serve the last good value (`stale_for`), answer
//! before a slow reload finishes (`soft_timeout`), give up on a reload (`hard_timeout`),
//! reload before expiry (`refresh_ahead`), one load per fleet (`fleet_single_flight`); and
//! an invalidation always wins over all of them. Each scenario runs in memory and against a
//! real redis-server with several instances.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};

/// A pretend database whose behaviour a test switches.
struct Source {
    mode: AtomicU8,
    value: AtomicU64,
    runs: AtomicUsize,
}

const OK: u8 = 0;
const FAIL: u8 = 1;
const SLOW: u8 = 2;
const PANIC: u8 = 3;
/// Never answers (until the mode changes).
const HANG: u8 = 4;

impl Source {
    const fn new() -> Self {
        Self {
            mode: AtomicU8::new(OK),
            value: AtomicU64::new(1),
            runs: AtomicUsize::new(0),
        }
    }

    async fn read(&self) -> Result<u64, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            FAIL => Err("database down".into()),
            SLOW => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(self.value.load(Ordering::SeqCst))
            }
            PANIC => panic!("the driver panicked"),
            HANG => loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if self.mode.load(Ordering::SeqCst) != HANG {
                    break Ok(self.value.load(Ordering::SeqCst));
                }
            },
            _ => Ok(self.value.load(Ordering::SeqCst)),
        }
    }

    fn set(&self, mode: u8, value: u64) {
        self.mode.store(mode, Ordering::SeqCst);
        self.value.store(value, Ordering::SeqCst);
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// The caches a scenario runs on: in memory, and two instances on one Redis.
async fn caches(server: &RedisServer) -> [Cache; 3] {
    [
        Cache::in_memory(),
        instance(server, "app").await,
        instance(server, "app").await,
    ]
}

// ---- (a), (b): stale_for ----

static FAIL_SAFE: Source = Source::new();

#[cached(key = "fail-safe:<id>", ttl = "1s", stale_for = "1h", cache = current())]
async fn fail_safe(id: u64) -> Result<u64, String> {
    let _ = id;
    FAIL_SAFE.read().await
}

#[tokio::test]
async fn a_failing_reload_serves_the_last_good_value_and_is_not_retried_at_once() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        FAIL_SAFE.set(OK, 1);
        assert_eq!(on(cache, fail_safe(id)).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        FAIL_SAFE.set(FAIL, 2);
        let runs = FAIL_SAFE.runs();
        assert_eq!(
            on(cache, fail_safe(id)).await,
            Ok(1),
            "the reload failed: the stale value"
        );
        assert_eq!(FAIL_SAFE.runs(), runs + 1);
        // The fail-safe throttle: the stale value is served again without a reload.
        for _ in 0..5 {
            assert_eq!(on(cache, fail_safe(id)).await, Ok(1));
        }
        assert_eq!(
            FAIL_SAFE.runs(),
            runs + 1,
            "the failing source is not hammered"
        );
    }
    // Another instance, which never had the value in memory, finds it stale in Redis.
    let runs = FAIL_SAFE.runs();
    assert_eq!(on(&b, fail_safe(2)).await, Ok(1));
    assert_eq!(FAIL_SAFE.runs(), runs + 1);
    assert!(b.stats().stale_served >= 1);
}

static REMOVED: Source = Source::new();

#[cached(key = "removed:<id>", ttl = "1s", stale_for = "1h", cache = current())]
async fn removed(id: u64) -> Result<u64, String> {
    let _ = id;
    REMOVED.read().await
}

#[tokio::test]
async fn after_an_invalidation_the_failure_is_returned_not_the_removed_value() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        REMOVED.set(OK, 1);
        assert_eq!(on(cache, removed(id)).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        on(cache, removed::remove_cached(id)).await.unwrap();
        REMOVED.set(FAIL, 2);
        assert_eq!(
            on(cache, removed(id)).await,
            Err("database down".into()),
            "a removed value is never served as stale"
        );
    }
    assert_eq!(on(&b, removed(2)).await, Err("database down".into()));
}

static GROUPED: Source = Source::new();

#[cached(key = "grouped:<id>", ttl = "1s", stale_for = "1h", tags = ["all"], cache = current())]
async fn grouped(id: u64) -> Result<u64, String> {
    let _ = id;
    GROUPED.read().await
}

#[tokio::test]
async fn tags_purge_and_clear_also_win_over_stale_values() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    let mut id = 0;
    for cache in [&memory, &a] {
        for how in ["tag", "purge", "clear"] {
            if how == "clear" && !std::ptr::eq(cache, &memory) {
                // `clear` drops copies in memory only; a value in Redis stays, as any does.
                continue;
            }
            id += 1;
            GROUPED.set(OK, 1);
            assert_eq!(on(cache, grouped(id)).await, Ok(1));
            tokio::time::sleep(Duration::from_millis(1100)).await;
            match how {
                "tag" => drop(cache.invalidate_tag("all").await.unwrap()),
                "purge" => drop(cache.purge().await.unwrap()),
                _ => cache.clear().await.unwrap(),
            }
            GROUPED.set(FAIL, 2);
            assert_eq!(
                on(cache, grouped(id)).await,
                Err("database down".into()),
                "after `{how}` the removed value is not served as stale"
            );
            if !std::ptr::eq(cache, &memory) {
                assert_eq!(on(&b, grouped(id)).await, Err("database down".into()));
            }
        }
    }
}

static PANICS: Source = Source::new();

#[cached(key = "panics:<id>", ttl = "1s", stale_for = "1h", cache = current())]
async fn panics(id: u64) -> u64 {
    let _ = id;
    PANICS.read().await.unwrap_or(0)
}

#[tokio::test]
async fn a_panicking_reload_serves_the_stale_value() {
    let cache = Cache::in_memory();
    PANICS.set(OK, 7);
    assert_eq!(on(&cache, panics(1)).await, 7);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    PANICS.set(PANIC, 8);
    assert_eq!(
        on(&cache, panics(1)).await,
        7,
        "the stale value, not the panic"
    );
}

// ---- (c): soft and hard timeouts ----

static SOFT: Source = Source::new();

#[cached(key = "soft:<id>", ttl = "1s", stale_for = "1h", soft_timeout = "100ms", cache = current())]
async fn soft(id: u64) -> Result<u64, String> {
    let _ = id;
    SOFT.read().await
}

#[tokio::test]
async fn a_slow_reload_answers_with_the_stale_value_and_stores_the_new_one_later() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        SOFT.set(OK, 1);
        assert_eq!(on(cache, soft(id)).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        SOFT.set(SLOW, 2);
        let runs = SOFT.runs();
        let started = Instant::now();
        assert_eq!(on(cache, soft(id)).await, Ok(1), "the stale value, at once");
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(500), "waited {waited:?}");
        // The reload finishes in the background and stores its value.
        let deadline = Instant::now() + Duration::from_secs(5);
        while on(cache, soft(id)).await != Ok(2) {
            assert!(Instant::now() < deadline, "the new value arrives");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(SOFT.runs(), runs + 1, "the body ran once for all of it");
    }
    assert_eq!(on(&b, soft(2)).await, Ok(2), "the peer reads the new value");
}

static HARD: Source = Source::new();

#[cached(key = "hard:<id>", ttl = "1s", stale_for = "1h", hard_timeout = "300ms", cache = current())]
async fn hard(id: &str) -> Result<u64, String> {
    let _ = id;
    HARD.read().await
}

#[tokio::test]
async fn a_reload_past_the_hard_timeout_counts_as_failed_even_for_a_borrowing_function() {
    let cache = Cache::in_memory();
    HARD.set(OK, 1);
    assert_eq!(on(&cache, hard("x")).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    HARD.set(SLOW, 2);
    let started = Instant::now();
    assert_eq!(on(&cache, hard("x")).await, Ok(1));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(900),
        "waited {waited:?}: about the hard timeout"
    );
}

// ---- (d): refresh ahead ----

static AHEAD: Source = Source::new();

#[cached(key = "ahead:<id>", ttl = "2s", refresh_ahead = 0.5, cache = current())]
async fn ahead(id: u64) -> Result<u64, String> {
    let _ = id;
    AHEAD.read().await
}

#[tokio::test]
async fn a_hit_past_the_refresh_point_answers_at_once_and_reloads_in_the_background() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        AHEAD.set(OK, 1);
        let runs = AHEAD.runs();
        assert_eq!(on(cache, ahead(id)).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        AHEAD.set(OK, 2);
        let started = Instant::now();
        assert_eq!(on(cache, ahead(id)).await, Ok(1), "the old value, at once");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(
            eventually(Duration::from_secs(2), || cache
                .contains_local(&ahead::key(id)))
            .await
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while on(cache, ahead(id)).await != Ok(2) {
            assert!(Instant::now() < deadline, "the new value arrives");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(AHEAD.runs(), runs + 2, "the body ran exactly twice");
    }
    assert_eq!(on(&b, ahead(2)).await, Ok(2));
}

static FLEET_AHEAD: Source = Source::new();

#[cached(key = "fleet-ahead:<id>", ttl = "2s", refresh_ahead = 0.5, cache = current())]
async fn fleet_ahead(id: u64) -> Result<u64, String> {
    let _ = id;
    FLEET_AHEAD.read().await
}

#[tokio::test]
async fn across_the_fleet_one_instance_refreshes_and_the_others_take_its_value() {
    let server = RedisServer::start();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(instance(&server, "app").await);
    }
    for cache in &fleet {
        assert_eq!(on(cache, fleet_ahead(1)).await, Ok(1));
    }
    assert_eq!(FLEET_AHEAD.runs(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    FLEET_AHEAD.set(OK, 2);
    for cache in &fleet {
        assert_eq!(on(cache, fleet_ahead(1)).await, Ok(1));
    }
    for cache in &fleet {
        let deadline = Instant::now() + Duration::from_secs(3);
        while on(cache, fleet_ahead(1)).await != Ok(2) {
            assert!(
                Instant::now() < deadline,
                "every instance gets the new value"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(FLEET_AHEAD.runs(), 2, "one refresh for the whole fleet");
}

// ---- (e): fleet-wide single flight ----

static COLD: Source = Source::new();

#[cached(key = "cold:<id>", fleet_single_flight = "5s", cache = current())]
async fn cold(id: u64) -> Result<u64, String> {
    let _ = id;
    tokio::time::sleep(Duration::from_millis(200)).await;
    COLD.read().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_and_a_thousand_callers_load_a_cold_key_once() {
    let server = RedisServer::start();
    let mut fleet = Vec::new();
    for _ in 0..4 {
        fleet.push(instance(&server, "app").await);
    }
    COLD.set(OK, 42);
    let started = Instant::now();
    let callers: Vec<_> = fleet
        .iter()
        .flat_map(|cache| {
            (0..250).map(move |_| {
                let cache = cache.clone();
                tokio::spawn(async move { on(&cache, cold(1)).await })
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(42), "every caller answered");
    }
    eprintln!(
        "1,000 callers on 4 instances answered in {:?}",
        started.elapsed()
    );
    assert_eq!(COLD.runs(), 1, "the body ran once for the fleet");
    let waited: u64 = fleet.iter().map(|c| c.stats().fleet_waits).sum();
    assert_eq!(waited, 3, "three instances waited for the fourth");
}

// ---- Redis down while entries are stale ----

static OUTAGE: Source = Source::new();

#[cached(key = "outage:<id>", ttl = "1s", stale_for = "1h", hard_timeout = "300ms", cache = current())]
async fn outage(id: u64) -> Result<u64, String> {
    let _ = id;
    OUTAGE.read().await
}

#[tokio::test]
async fn with_redis_down_or_hung_stale_values_are_served_within_the_bounds() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .redis_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    OUTAGE.set(OK, 1);
    assert_eq!(on(&cache, outage(1)).await, Ok(1));
    assert_eq!(on(&cache, outage(2)).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    OUTAGE.set(SLOW, 2);
    // Hung: the read waits the Redis timeout, the reload the hard timeout.
    server.pause();
    let started = Instant::now();
    assert_eq!(on(&cache, outage(1)).await, Ok(1));
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(900), "waited {waited:?}");
    server.resume();
    // Down: the stale value in memory is still served.
    server.kill();
    OUTAGE.set(FAIL, 3);
    let started = Instant::now();
    assert_eq!(on(&cache, outage(2)).await, Ok(1));
    assert!(started.elapsed() < Duration::from_millis(600));
}

// ---- per-call control ----

static CONTROLLED: Source = Source::new();

#[cached(key = "controlled:<id>", cache = current())]
async fn controlled(id: u64) -> Result<u64, String> {
    let _ = id;
    CONTROLLED.read().await
}

#[tokio::test]
async fn refresh_reloads_and_stores_and_uncached_bypasses_the_cache() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        CONTROLLED.set(OK, 1);
        assert_eq!(on(cache, controlled(id)).await, Ok(1));
        CONTROLLED.set(OK, 2);
        assert_eq!(on(cache, controlled(id)).await, Ok(1), "cached");
        assert_eq!(
            on(cache, controlled::refresh(id)).await.unwrap(),
            Ok(2),
            "refresh returns the fresh value"
        );
        let runs = CONTROLLED.runs();
        assert_eq!(on(cache, controlled(id)).await, Ok(2), "and stored it");
        assert_eq!(CONTROLLED.runs(), runs);
        CONTROLLED.set(OK, 3);
        assert_eq!(on(cache, controlled::uncached(id)).await, Ok(3));
        assert_eq!(
            on(cache, controlled(id)).await,
            Ok(2),
            "uncached stored nothing"
        );
    }
    assert!(
        eventually(Duration::from_secs(2), || !b
            .contains_local(&controlled::key(2)))
        .await
    );
    assert_eq!(
        on(&b, controlled(2)).await,
        Ok(2),
        "the peer reads the refreshed value"
    );
}

// ---- Timing: a refresh ahead past the hard timeout ----

/// Counts the panics of this process other than the deliberate "the driver panicked" (a
/// panic in a runtime worker's task would otherwise pass unseen: tokio catches it).
fn unexpected_panics() -> usize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if message != Some("the driver panicked") {
                COUNT.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
    COUNT.load(Ordering::SeqCst)
}

static HUNG_AHEAD: Source = Source::new();

/// The README's example: every slow-source option on.
#[cached(
    key = "hung-ahead:<id>",
    ttl = "2s",
    stale_for = "1h",
    soft_timeout = "50ms",
    hard_timeout = "300ms",
    refresh_ahead = 0.5,
    cache = current()
)]
async fn hung_ahead(id: u64) -> Result<u64, String> {
    let _ = id;
    HUNG_AHEAD.read().await
}

static HUNG_AHEAD_WIDE: Source = Source::new();

/// Refresh ahead per function, the hard timeout from the builder.
#[cached(key = "hung-ahead-wide:<id>", ttl = "2s", refresh_ahead = 0.5, cache = current())]
async fn hung_ahead_wide(id: u64) -> Result<u64, String> {
    let _ = id;
    HUNG_AHEAD_WIDE.read().await
}

fn load_errors(function: &str) -> u64 {
    cachemacro::global()
        .stats()
        .functions
        .iter()
        .filter(|f| f.function.ends_with(function))
        .map(|f| f.load_errors)
        .sum()
}

#[tokio::test]
async fn a_refresh_ahead_past_the_hard_timeout_is_a_failed_reload_not_a_panic() {
    let before = unexpected_panics();
    let server = RedisServer::start();
    let with_hard = |builder: cachemacro::CacheBuilder| {
        builder
            .namespace("app")
            .hard_timeout(Duration::from_millis(300))
    };
    let wide_memory = with_hard(Cache::builder()).build_in_memory().unwrap();
    let wide_redis = with_hard(Cache::builder())
        .redis(server.url())
        .build()
        .await
        .unwrap();
    let [memory, redis, _] = caches(&server).await;
    type Call =
        fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>>;
    let readme: Call = |id| Box::pin(hung_ahead(id));
    let wide: Call = |id| Box::pin(hung_ahead_wide(id));
    let cases = [
        (1, &memory, readme, &HUNG_AHEAD, "hung_ahead"),
        (2, &redis, readme, &HUNG_AHEAD, "hung_ahead"),
        (3, &wide_memory, wide, &HUNG_AHEAD_WIDE, "hung_ahead_wide"),
        (4, &wide_redis, wide, &HUNG_AHEAD_WIDE, "hung_ahead_wide"),
    ];
    for (id, cache, call, source, name) in cases {
        source.set(OK, 1);
        assert_eq!(on(cache, call(id)).await, Ok(1));
        // 60 % of the TTL: a hit starts a refresh, and the source hangs.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        source.set(HANG, 2);
        let errors = load_errors(name);
        let started = Instant::now();
        assert_eq!(on(cache, call(id)).await, Ok(1), "the hit answers at once");
        assert!(started.elapsed() < Duration::from_millis(200));
        // Past the hard timeout (300 ms), before the TTL (2 s) ends.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            unexpected_panics(),
            before,
            "{name} on cache {id}: no panic when the refresh passes the hard timeout"
        );
        assert_eq!(
            load_errors(name),
            errors + 1,
            "{name} on cache {id}: the refresh counts as a failed load"
        );
        let runs = source.runs();
        assert_eq!(
            on(cache, call(id)).await,
            Ok(1),
            "the value stays until its TTL"
        );
        assert_eq!(source.runs(), runs, "and is not refreshed again at once");
        // The source answers again: once the TTL has passed, the value is reloaded.
        source.set(OK, 3);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while on(cache, call(id)).await != Ok(3) {
            assert!(Instant::now() < deadline, "{name} on cache {id}: reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(unexpected_panics(), before);
}

// ---- Fleet-wide single flight through a bus blip ----

static BLIP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "blip:<id>", fleet_single_flight = "20s", cache = current())]
async fn blip(id: u64) -> u64 {
    BLIP_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    id * 7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_blip_during_a_fleet_load_costs_at_most_one_more_load_and_that_one_is_stored() {
    let server = RedisServer::start();
    let mut fleet = Vec::new();
    for _ in 0..6 {
        fleet.push(instance(&server, "app").await);
    }
    let started = Instant::now();
    // The first instance takes the lease and loads for 1.5 s.
    let first = tokio::spawn({
        let cache = fleet[0].clone();
        async move { on(&cache, blip(1)).await }
    });
    let mut conn = server.connection();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis::cmd("EXISTS")
        .arg("app:c1:f:k:blip:1")
        .query::<bool>(&mut conn)
        .unwrap()
    {
        assert!(
            Instant::now() < deadline,
            "the first instance takes the lease"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Five more instances, 20 callers each, wait for its value.
    let callers: Vec<_> = fleet[1..]
        .iter()
        .flat_map(|cache| {
            (0..20).map(move |_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let asked = Instant::now();
                    (on(&cache, blip(1)).await, asked.elapsed())
                })
            })
        })
        .collect();
    // A blip of the bus: every instance's subscription is cut, and comes back at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    assert!(killed >= 6, "every bus was cut ({killed})");
    assert_eq!(first.await.unwrap(), 7);
    let mut slowest = Duration::ZERO;
    for caller in callers {
        let (value, waited) = caller.await.unwrap();
        assert_eq!(value, 7, "every caller answered");
        slowest = slowest.max(waited);
    }
    let runs = BLIP_RUNS.load(Ordering::SeqCst);
    eprintln!(
        "bus blip during a fleet load: {runs} loads, slowest caller {slowest:?}, all done in {:?}",
        started.elapsed()
    );
    assert!(
        runs <= 2,
        "the blip cost at most one more load: {runs} loads"
    );
    assert!(
        server.stored_bytes("app:c1:k:blip:1").is_some(),
        "the load after the blip was stored in Redis"
    );
    let restarts: u64 = fleet.iter().map(|c| c.stats().fleet_restarts).sum();
    assert!(
        restarts >= 1,
        "the instance that loaded next started afresh"
    );
    let cold = instance(&server, "app").await;
    assert_eq!(on(&cold, blip(1)).await, 7);
    assert_eq!(
        BLIP_RUNS.load(Ordering::SeqCst),
        runs,
        "the fleet's next cold read is a Redis hit"
    );
}

// ---- a value written with `Cache::set` ----

static SET_SOURCE: Source = Source::new();

#[cached(key = "set-stale:<id>", ttl = "1s", stale_for = "1h", cache = current())]
async fn set_stale(id: u64) -> Result<u64, String> {
    let _ = id;
    SET_SOURCE.read().await
}

/// The port of the `cached` crate's `result_fallback` test: a value the application wrote
/// itself is the last good value too.
#[tokio::test]
async fn a_value_written_with_set_is_served_stale_like_a_loaded_one() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(1, &memory), (2, &a)] {
        SET_SOURCE.set(FAIL, 0);
        // The function's first load: the cache learns its stale window.
        assert_eq!(on(cache, set_stale(id)).await, Err("database down".into()));
        assert_eq!(cache.set_keep(), Duration::from_secs(3600));
        let key = set_stale::key(id);
        cache
            .set(&key, 7u64, Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(on(cache, set_stale(id)).await, Ok(7));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            cache.get::<u64>(&key).await.unwrap(),
            None,
            "past its TTL for a reader without a stale window"
        );
        let runs = SET_SOURCE.runs();
        assert_eq!(
            on(cache, set_stale(id)).await,
            Ok(7),
            "the reload failed: the value set, stale"
        );
        assert_eq!(SET_SOURCE.runs(), runs + 1);
    }
    // Redis kept it for its TTL only (the cache's own `stale_for` is off): the window a
    // function taught this process is not imposed on every value shared.
    assert_eq!(server.stored_bytes("app:c1:k:set-stale:2"), None);
    assert_eq!(on(&b, set_stale(2)).await, Err("database down".into()));
}

#[tokio::test]
async fn a_removed_set_value_is_never_served_stale() {
    let server = RedisServer::start();
    let [memory, a, b] = caches(&server).await;
    for (id, cache) in [(11, &memory), (12, &a)] {
        SET_SOURCE.set(FAIL, 0);
        assert!(on(cache, set_stale(id)).await.is_err());
        cache
            .set(&set_stale::key(id), 7u64, Duration::from_millis(500))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        on(cache, set_stale::remove_cached(id)).await.unwrap();
        assert_eq!(on(cache, set_stale(id)).await, Err("database down".into()));
    }
    assert_eq!(on(&b, set_stale(12)).await, Err("database down".into()));
}

#[tokio::test]
async fn the_caches_own_stale_for_keeps_set_values_before_any_load() {
    let server = RedisServer::start();
    let hour = Duration::from_secs(3600);
    let memory = Cache::builder().stale_for(hour).build().await.unwrap();
    let a = Cache::builder()
        .namespace("set-keep")
        .redis(server.url())
        .stale_for(hour)
        .build()
        .await
        .unwrap();
    for (id, cache) in [(21, &memory), (22, &a)] {
        assert_eq!(cache.set_keep(), hour);
        cache
            .set(&set_stale::key(id), 9u64, Duration::from_millis(500))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        SET_SOURCE.set(FAIL, 0);
        assert_eq!(on(cache, set_stale(id)).await, Ok(9));
    }
    // An instance that never held it finds it stale in Redis.
    let b = Cache::builder()
        .namespace("set-keep")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    assert_eq!(on(&b, set_stale(22)).await, Ok(9));
    assert!(b.stats().stale_served >= 1);
    // In Redis it lives its TTL and the window; without a window, its TTL only.
    let ttl: i64 = redis::cmd("PTTL")
        .arg("set-keep:c1:k:set-stale:22")
        .query(&mut server.connection())
        .unwrap();
    assert!(ttl > 3_500_000, "kept for the stale window: {ttl} ms");
    let plain = instance(&server, "set-plain").await;
    assert_eq!(plain.set_keep(), Duration::ZERO);
    plain.set("k", 1u8, Duration::from_secs(5)).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("set-plain:c1:k:k")
        .query(&mut server.connection())
        .unwrap();
    assert!((1..=5_000).contains(&ttl), "its TTL only: {ttl} ms");
}
