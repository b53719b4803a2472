//! Trust under faults: a real redis-server killed, restarted empty, paused (SIGSTOP), filled
//! up (`maxmemory` with `noeviction`), given a password, replaced by a port that is not
//! Redis, or holding hostile values. Never a wrong or stale value, never a lost
//! invalidation, and an outage costs the callers one timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, FakeServer, Logs, RedisServer};
use redis::AsyncCommands;
use tokio::sync::Notify;

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    // No response timeout: planting a 64 MiB value takes a while on a busy machine.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    server
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

fn builder(url: &str, timeout: Duration) -> cachemacro::CacheBuilder {
    Cache::builder()
        .namespace("app")
        .redis(url)
        .redis_timeout(timeout)
        .bus_heartbeat(Duration::from_millis(200))
}

// ---- item 2: a flight that went stale never writes L2 ----

static GATE: once_cell::sync::Lazy<Arc<Notify>> = once_cell::sync::Lazy::new(Default::default);
static GATED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "gated:<id>", cache = current())]
async fn gated(id: u64) -> String {
    let run = GATED_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        GATE.notified().await;
        return format!("old {id}");
    }
    format!("new {id}")
}

#[tokio::test]
async fn a_load_that_began_before_a_remove_stores_nothing_after_redis_lost_its_data() {
    let mut server = RedisServer::start();
    let a = instance(&server, "app").await;
    // The load reads "absent" from L2 and waits inside the body.
    let load = tokio::spawn({
        let a = a.clone();
        async move { on(&a, gated(1)).await }
    });
    assert!(
        eventually(Duration::from_secs(3), || GATED_RUNS.load(Ordering::SeqCst)
            == 1)
        .await
    );
    // The write path: the tombstone is written, the remove returns Ok.
    on(&a, gated::remove_cached(1)).await.unwrap();
    // Redis restarts empty (no persistence): the tombstone is gone.
    server.restart();
    assert!(
        eventually(Duration::from_secs(5), || a.redis_available()
            && a.bus_connected())
        .await,
        "the cache reconnects"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.set("unrelated", 1u8, None).await.is_err() {
        assert!(Instant::now() < deadline, "Redis takes writes again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The load finishes with the value it read before the remove.
    GATE.notify_one();
    assert_eq!(
        load.await.unwrap(),
        "old 1",
        "its caller gets what it loaded"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stored: Option<Vec<u8>> = raw(&server).await.get("app:c1:k:gated:1").await.unwrap();
    assert_eq!(stored, None, "the stale load did not fill Redis");
    assert!(a.stats().stale_loads_dropped >= 1);
    // Every instance's next read is fresh.
    let b = instance(&server, "app").await;
    assert_eq!(on(&b, gated(1)).await, "new 1");
    assert_eq!(on(&a, gated(1)).await, "new 1");
}

static SET_RACE_RUNS: AtomicUsize = AtomicUsize::new(0);
static SET_GATE: once_cell::sync::Lazy<Arc<Notify>> = once_cell::sync::Lazy::new(Default::default);

#[cached(key = "set-race:<id>", cache = current())]
async fn set_race(id: u64) -> String {
    SET_RACE_RUNS.fetch_add(1, Ordering::SeqCst);
    SET_GATE.notified().await;
    format!("loaded {id}")
}

#[tokio::test]
async fn a_set_wins_over_a_load_that_began_before_it() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let load = tokio::spawn({
        let a = a.clone();
        async move { on(&a, set_race(1)).await }
    });
    assert!(
        eventually(Duration::from_secs(3), || SET_RACE_RUNS
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    a.set("set-race:1", "written".to_string(), None)
        .await
        .unwrap();
    SET_GATE.notify_one();
    assert_eq!(load.await.unwrap(), "loaded 1");
    assert_eq!(
        on(&a, set_race(1)).await,
        "written",
        "the load that read before the write did not replace it, here"
    );
    let b = instance(&server, "app").await;
    assert_eq!(on(&b, set_race(1)).await, "written", "nor in Redis");
}

// ---- item 3: a failed invalidation can be retried to completion ----

static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "tagged:<id>", tags = ["all"], cache = current())]
async fn tagged(id: u64) -> String {
    let run = TAGGED_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{id} loaded by run {run}")
}

#[tokio::test]
async fn an_invalidation_that_failed_for_lack_of_memory_completes_when_retried() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    let mut before = Vec::new();
    for id in 0..50 {
        before.push(on(&a, tagged(id)).await);
        on(&b, tagged(id)).await;
    }
    // Redis refuses every write from now on.
    server.config_set("maxmemory", "1");
    let err = a.invalidate_tag("all").await;
    assert!(
        err.is_err(),
        "the invalidation reports the failure: {err:?}"
    );
    let version = a.bump_version("catalog").await;
    assert!(version.is_err(), "so does a version bump: {version:?}");
    // No instance serves the old values meanwhile.
    for id in 0..50 {
        assert!(
            eventually(Duration::from_secs(3), || !b
                .contains_local(&format!("tagged:{id}")))
            .await
        );
    }
    server.config_set("maxmemory", "0");
    assert_eq!(
        a.invalidate_tag("all").await.unwrap(),
        50,
        "the retry finds every entry the failed call could not finish"
    );
    assert!(a.bump_version("catalog").await.unwrap() > 0);
    for (id, old) in before.iter().enumerate() {
        let now = on(&b, tagged(id as u64)).await;
        assert_ne!(&now, old, "entry {id} was reloaded");
    }
}

#[tokio::test]
async fn a_purge_that_failed_half_way_completes_when_retried() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    for id in 0..20 {
        a.set(&format!("p:{id}"), id, None).await.unwrap();
    }
    server.pause();
    assert!(
        a.purge().await.is_err(),
        "Redis is hung: the purge reports it"
    );
    assert!(
        !a.contains_local("p:1"),
        "the local copies are gone all the same"
    );
    server.resume();
    assert!(eventually(Duration::from_secs(5), || a.redis_available()).await);
    assert!(a.purge().await.unwrap() >= 20);
    assert_eq!(a.get::<i32>("p:1").await.unwrap(), None);
}

// ---- item 4: recovery after an authentication or protocol error at connect ----

#[tokio::test]
async fn the_data_connection_recovers_after_a_wrong_password_is_fixed() {
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let url = format!("redis://:wrong@127.0.0.1:{}/", server.port());
    let (logs, _guard) = Logs::capture();
    let cache = builder(&url, Duration::from_millis(300))
        .build()
        .await
        .expect("a wrong password does not fail the build: the cache runs without Redis");
    assert!(!cache.redis_available());
    let warnings = logs.at_least(tracing::Level::WARN).join("\n");
    assert!(
        warnings.contains("credentials"),
        "the log says what is wrong:\n{warnings}"
    );
    assert!(
        !warnings.contains("not reachable"),
        "and not that Redis is unreachable:\n{warnings}"
    );
    // The operator fixes the server's password to the one the service uses.
    let mut admin = redis::Client::open(format!("redis://:right@127.0.0.1:{}/", server.port()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("wrong")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || cache.redis_available()
            && cache.bus_connected())
        .await,
        "both connections recover"
    );
    cache.set("k", 1u8, None).await.unwrap();
    let other = builder(&url, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert_eq!(other.get::<u8>("k").await.unwrap(), Some(1), "L2 works");
}

#[tokio::test]
async fn the_data_connection_recovers_after_the_port_spoke_another_protocol() {
    let fake = FakeServer::http();
    let url = fake.url();
    let cache = builder(&url, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert!(!cache.redis_available());
    assert!(cache.get::<u8>("k").await.is_err());
    // The port is given to a real Redis.
    let port = fake.stop();
    let server = RedisServer::start_on(port, &[]);
    assert!(
        eventually(Duration::from_secs(5), || cache.redis_available()
            && cache.bus_connected())
        .await,
        "both connections recover"
    );
    cache.set("k", 2u8, None).await.unwrap();
    let other = instance(&server, "app").await;
    assert_eq!(other.get::<u8>("k").await.unwrap(), Some(2));
}

// ---- item 5: a hung Redis costs one wave of timeouts ----

static HUNG_KEYS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_wave_of_timeouts_not_one_per_cool_down() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(200);
    let cache = builder(&server.url(), timeout).build().await.unwrap();
    let slow = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..48)
        .map(|_| {
            let (cache, slow, reads, stop) =
                (cache.clone(), slow.clone(), reads.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    // A new key each time: every read asks Redis.
                    let key = format!("hung:{}", HUNG_KEYS.fetch_add(1, Ordering::SeqCst));
                    let started = Instant::now();
                    cache.get_or_set(&key, None, || async { 1u8 }).await;
                    if started.elapsed() >= timeout * 3 / 4 {
                        slow.fetch_add(1, Ordering::SeqCst);
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.pause();
    tokio::time::sleep(Duration::from_secs(7)).await;
    server.resume();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    let slow = slow.load(Ordering::SeqCst);
    eprintln!(
        "reads that waited out the timeout during a 7 s hang: {slow} of {}",
        reads.load(Ordering::SeqCst)
    );
    assert!(
        slow <= 2 * 48,
        "{slow} reads paid the timeout: more than two waves of 48"
    );
    assert!(
        eventually(Duration::from_secs(3), || cache.redis_available()).await,
        "Redis is used again once it answers"
    );
}

// ---- item 6: the timeout bounds every call ----

#[tokio::test]
async fn a_port_that_never_answers_costs_one_timeout_per_call_at_most() {
    let silent = FakeServer::silent();
    for timeout in [Duration::from_millis(200), Duration::from_secs(1)] {
        let started = Instant::now();
        let cache = builder(&silent.url(), timeout).build().await.unwrap();
        let build = started.elapsed();
        let started = Instant::now();
        let value = cache.get_or_set("k", None, || async { 7u8 }).await;
        let read = started.elapsed();
        let started = Instant::now();
        let removed = cache.remove("k").await;
        let remove = started.elapsed();
        eprintln!("timeout {timeout:?}: build {build:?}, first read {read:?}, remove {remove:?}");
        assert_eq!(value, 7);
        assert!(removed.is_err());
        let bound = timeout + timeout / 2;
        assert!(
            build <= bound,
            "build took {build:?} with a {timeout:?} timeout"
        );
        assert!(
            read <= bound,
            "the first read took {read:?} with a {timeout:?} timeout"
        );
        assert!(
            remove <= bound,
            "a remove took {remove:?} with a {timeout:?} timeout"
        );
    }
}

// ---- item 7: the first call after a restart succeeds ----

#[tokio::test]
async fn the_first_call_after_a_redis_restart_succeeds() {
    let mut server = RedisServer::start();
    let cache = instance(&server, "app").await;
    let peer = instance(&server, "app").await;
    cache.set("k", 1u8, None).await.unwrap();
    let errors = cache.stats().redis_errors;
    server.restart();
    // No call in between: the cache notices the dead connection by itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(cache.redis_available(), "Redis is in use again");
    cache
        .remove("k")
        .await
        .expect("the first call after the restart succeeds");
    peer.set("k2", 2u8, None).await.unwrap();
    assert_eq!(
        cache.get::<u8>("k2").await.unwrap(),
        Some(2),
        "and reads use L2 again"
    );
    assert_eq!(
        cache.stats().redis_errors,
        errors,
        "no caller paid for the dead connection"
    );
}

// ---- item 8: callers of a failing load do not queue behind each other ----

static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "failing:<id>", cache = current())]
async fn failing(id: u64) -> Result<u64, String> {
    FAILING_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Err(format!("database down for {id}"))
}

/// An error type that cannot be cloned, as many are.
#[derive(Debug)]
struct Opaque;

static OPAQUE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "opaque:<id>", cache = current())]
async fn failing_opaque(id: u64) -> Result<u64, Opaque> {
    OPAQUE_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = id;
    Err(Opaque)
}

/// Runs 100 concurrent calls; returns the latencies, sorted.
async fn hundred<F, Fut>(call: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future + Send + 'static,
{
    let started = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let call = call();
            tokio::spawn(async move {
                call.await;
                started.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for call in calls {
        latencies.push(call.await.unwrap());
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_failing_function_do_not_queue_behind_each_other() {
    let server = RedisServer::start();
    let cache = instance(&server, "app").await;
    let latencies = hundred(|| {
        let cache = cache.clone();
        async move { on(&cache, failing(1)).await.unwrap_err() }
    })
    .await;
    let runs = FAILING_RUNS.load(Ordering::SeqCst);
    eprintln!(
        "cloneable error: p50 {:?}, max {:?}, body runs {runs}",
        latencies[50], latencies[99]
    );
    assert!(
        latencies[99] < Duration::from_millis(500),
        "max {:?}",
        latencies[99]
    );
    assert!(
        runs <= 3,
        "the error was shared, not reloaded per caller: {runs} runs"
    );

    let latencies = hundred(|| {
        let cache = cache.clone();
        async move { on(&cache, failing_opaque(1)).await.unwrap_err() }
    })
    .await;
    let runs = OPAQUE_RUNS.load(Ordering::SeqCst);
    eprintln!(
        "error that cannot be cloned: p50 {:?}, max {:?}, body runs {runs}",
        latencies[50], latencies[99]
    );
    assert!(
        latencies[99] < Duration::from_millis(800),
        "max {:?}",
        latencies[99]
    );
}

// ---- item 9: the bus comes back as fast as the data connection ----

#[tokio::test]
async fn a_peers_bus_is_back_soon_after_the_writers_data_connection() {
    let mut server = RedisServer::start();
    let writer = instance(&server, "app").await;
    let reader = instance(&server, "app").await;
    reader.set("k", "old".to_string(), None).await.unwrap();
    server.kill();
    // Long enough for the reconnect back-offs to grow.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    server.start_again();
    let started = Instant::now();
    while writer.remove("k").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the writer reconnects"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let written = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || reader.bus_connected()).await,
        "the reader's bus reconnects"
    );
    let lag = written.elapsed();
    eprintln!("the reader's bus was back {lag:?} after the writer's first Ok remove");
    assert!(lag < Duration::from_millis(600), "bus lag {lag:?}");
    assert_eq!(
        reader
            .get_or_set("k", None, || async { "fresh".to_string() })
            .await,
        "fresh",
        "the reader does not serve the removed value"
    );
}

// ---- item 10: tag registrations are pruned ----

static SHORT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "short:<id>", ttl = "1s", tags = ["every"], cache = current())]
async fn short_lived(id: u64) -> u64 {
    SHORT_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_tag_on_every_entry_stays_as_large_as_the_live_entries() {
    let server = RedisServer::start();
    // Without instances of 0.1 beside it: their plain tag sets have no deadlines, and grow
    // with every key registered while the tag lives (see `CacheBuilder::compat_0_1`).
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .tombstone_ttl(Duration::from_millis(100))
        .compat_0_1(false)
        .build()
        .await
        .unwrap();
    // A steady stream of entries that live 1 s, for 4 s: at any moment about a quarter of
    // them are alive.
    let started = Instant::now();
    let mut loaded = 0;
    while started.elapsed() < Duration::from_secs(4) {
        on(&cache, short_lived(loaded)).await;
        loaded += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let removed = cache.invalidate_tag("every").await.unwrap();
    eprintln!("{loaded} entries loaded over 4 s, each alive 1 s: the tag invalidation wrote {removed} tombstones");
    assert!(
        removed < loaded * 6 / 10,
        "the invalidation wrote {removed} tombstones for {loaded} entries, most of them long expired"
    );
}

// ---- item 12: a value of another Redis type is a miss, then overwritten ----

static TYPED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "typed:<id>", cache = current())]
async fn typed(id: u64) -> u64 {
    TYPED_RUNS.fetch_add(1, Ordering::SeqCst);
    id * 10
}

#[tokio::test]
async fn a_value_of_another_redis_type_is_an_unusable_miss_that_the_next_load_overwrites() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let mut conn = raw(&server).await;
    for id in 0..5u64 {
        let _: () = conn
            .rpush(format!("app:c1:k:typed:{id}"), "foreign")
            .await
            .unwrap();
    }
    for id in 0..5u64 {
        assert_eq!(on(&a, typed(id)).await, id * 10);
    }
    assert!(
        a.redis_available(),
        "not a Redis failure: the connection stays in use"
    );
    assert_eq!(a.stats().redis_errors, 0);
    assert_eq!(a.stats().unusable_values, 5);
    let kind: String = redis::cmd("TYPE")
        .arg("app:c1:k:typed:0")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "string", "the load overwrote the list");
    let b = instance(&server, "app").await;
    let runs = TYPED_RUNS.load(Ordering::SeqCst);
    assert_eq!(on(&b, typed(3)).await, 30);
    assert_eq!(
        TYPED_RUNS.load(Ordering::SeqCst),
        runs,
        "the peer reads it from L2"
    );
}

// ---- item 13: an oversized foreign value is not transferred ----

static BIG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "big:<id>", cache = current())]
async fn big(id: u64) -> u64 {
    BIG_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn an_oversized_foreign_value_is_neither_read_whole_nor_sent_back() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .max_value_size(64 << 10)
        .build()
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    let huge = vec![b'x'; 64 << 20];
    let _: () = conn.set("app:c1:k:big:1", &huge).await.unwrap();
    drop(huge);
    let out = server.info_number("total_net_output_bytes");
    let inp = server.info_number("total_net_input_bytes");
    assert_eq!(on(&cache, big(1)).await, 1);
    let sent = server.info_number("total_net_output_bytes") - out;
    let received = server.info_number("total_net_input_bytes") - inp;
    eprintln!(
        "a read and a load over a 64 MiB foreign value: {sent} bytes out of Redis, {received} in"
    );
    assert!(sent < 1 << 20, "{sent} bytes left Redis");
    assert!(received < 1 << 20, "{received} bytes went into Redis");
    assert_eq!(cache.stats().unusable_values, 1);
    let len: usize = conn.strlen("app:c1:k:big:1").await.unwrap();
    assert!(
        len < 1024,
        "the load replaced the foreign value ({len} bytes)"
    );
}

// ---- item 14: repeated warnings are rate-limited ----

static QUIET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "quiet:<id>", cache = current())]
async fn quiet(id: u64) -> u64 {
    QUIET_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_fault_does_not_flood_the_logs() {
    let (logs, _guard) = Logs::capture();
    let mut server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache = instance(&server, "app").await;
    // Under OOM every fill fails.
    server.config_set("maxmemory", "1");
    for id in 0..2000 {
        on(&cache, quiet(id)).await;
    }
    let under_oom = logs.at_least(tracing::Level::INFO).len();
    // With Redis gone every read skips it.
    server.kill();
    for id in 2000..12_000 {
        on(&cache, quiet(id)).await;
    }
    let lines = logs.at_least(tracing::Level::INFO);
    eprintln!(
        "{under_oom} lines for 2,000 loads under OOM, {} in all after 10,000 more reads with Redis down",
        lines.len()
    );
    assert!(
        under_oom <= 10,
        "{under_oom} lines under OOM:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.len() <= 20,
        "{} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
}

// ---- item 15: messages ----

#[tokio::test]
async fn a_failed_read_does_not_ask_to_retry_an_invalidation() {
    let mut server = RedisServer::start();
    let cache = instance(&server, "app").await;
    server.kill();
    let read = cache.get::<u8>("k").await.unwrap_err().to_string();
    assert!(!read.contains("invalidation"), "{read}");
    assert!(read.contains("not read from Redis"), "{read}");
    let remove = cache.remove("k").await.unwrap_err().to_string();
    assert!(remove.contains("retry"), "{remove}");
}
