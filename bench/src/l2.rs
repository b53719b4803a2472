//! Scenarios that talk to Redis: L2 hits, misses, invalidation propagation, stampedes.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use bincode::Options;
use cachemacro::{cached, Cache};
use futures_util::StreamExt;
use once_cell::sync::OnceCell;
use redis::aio::MultiplexedConnection;

use crate::model::{random_ids, user, User};
use crate::stats::{median, percentile, Table};
use crate::Redis;

const KEYS: u64 = 10_000;
/// The envelope header before the codec's bytes (see the runtime's envelope module).
const HEADER: usize = 20;

static READER: OnceCell<Cache> = OnceCell::new();

fn reader() -> &'static Cache {
    READER.get().expect("set by the scenario")
}

/// The function whose L2 hits the scenario measures; [`setup`] sets its cache.
#[cached(key = "user:<id>", ttl = "10m", cache = reader())]
pub async fn l2_user(id: u64) -> User {
    user(id)
}

/// The reader's cache, whose L1 a pass of L2 hits empties first.
pub fn l2_reader() -> &'static Cache {
    reader()
}

/// What a hand-written L2 read costs: GET, then decode the same bytes.
pub async fn raw_get(conn: &mut MultiplexedConnection, id: u64) -> User {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(format!("bench:c1:k:user:{id}"))
        .query_async(conn)
        .await
        .unwrap();
    bincode::DefaultOptions::new()
        .deserialize(&bytes[HEADER..])
        .unwrap()
}

/// One L2 read of `id`: through [`l2_user`] when `ours`, else by hand with [`raw_get`].
pub async fn read(ours: bool, conn: &mut MultiplexedConnection, id: u64) -> User {
    if ours {
        l2_user(id).await
    } else {
        raw_get(conn, id).await
    }
}

/// Reads per second of 64 tasks, each reading its share of `order` with `read`.
async fn reads_per_second<F, Fut>(order: &[u64], read: F) -> f64
where
    F: Fn(Vec<u64>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = order
        .chunks(order.len() / 64)
        .map(|chunk| tokio::spawn(read(chunk.to_vec())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    order.len() as f64 / start.elapsed().as_secs_f64()
}

use crate::multi_thread;

/// Stores the scenario's 10k values in Redis and sets [`l2_user`]'s cache: a connection for
/// [`raw_get`] and the order in which to read the keys.
pub async fn setup(redis: &Redis) -> (MultiplexedConnection, Vec<u64>) {
    let writer = redis.cache("bench").await;
    for id in 0..KEYS {
        writer
            .set(&format!("user:{id}"), user(id), None)
            .await
            .unwrap();
    }
    let _ = READER.set(redis.cache("bench").await);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let order = random_ids(KEYS as usize, KEYS, 3);
    (conn, order)
}

/// The sequential row's samples, in µs: `rounds` rounds of a pass of 2,000 reads each way,
/// every call timed, L1 emptied before each pass, cachemacro and raw turn about. Returns
/// cachemacro's and raw's.
pub async fn latencies(
    conn: &mut MultiplexedConnection,
    order: &[u64],
    rounds: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut cm, mut rm) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for pass in 0..2 {
            reader().clear_memory();
            let ours = (round + pass) % 2 == 0;
            for &id in order.iter().take(2_000) {
                let start = Instant::now();
                black_box(read(ours, conn, id).await);
                let us = start.elapsed().as_nanos() as f64 / 1000.0;
                if ours {
                    cm.push(us)
                } else {
                    rm.push(us)
                }
            }
        }
    }
    (cm, rm)
}

/// Scenario 2: L2 hits with L1 empty, against GET + decode.
pub fn l2_hit(table: &mut Table, redis: &Redis, rounds: usize) {
    multi_thread().block_on(async {
        let (mut conn, order) = setup(redis).await;

        let (mut cm, mut rm) = latencies(&mut conn, &order, rounds).await;
        let (cm50, rm50) = (percentile(&mut cm, 50.0), percentile(&mut rm, 50.0));
        let (cm99, rm99) = (percentile(&mut cm, 99.0), percentile(&mut rm, 99.0));
        table.lower_is_better(
            "L2 hit, sequential p50 (µs)",
            "µs",
            cm50,
            ("redis-rs GET + bincode decode", rm50),
            Some(1.10),
        );
        table.lower_is_better(
            "L2 hit, sequential p99 (µs)",
            "µs",
            cm99,
            ("redis-rs GET + bincode decode", rm99),
            None,
        );

        // Throughput: 64 tasks over one connection, each key read once per pass.
        let (mut cm, mut rm) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for pass in 0..2 {
                reader().clear_memory();
                let ours = (round + pass) % 2 == 0;
                let ops = reads_per_second(&order, |chunk| {
                    let mut conn = conn.clone();
                    async move {
                        for id in chunk {
                            black_box(read(ours, &mut conn, id).await);
                        }
                    }
                })
                .await;
                if ours {
                    cm.push(ops)
                } else {
                    rm.push(ops)
                }
            }
        }
        // Diagnostic: the raw read plus what an L2 hit must also do, fill an L1 (moka).
        let mut filled = Vec::new();
        for _ in 0..rounds {
            let l1: moka::sync::Cache<String, std::sync::Arc<User>> = moka::sync::Cache::builder()
                .max_capacity(2_000_000)
                .time_to_live(Duration::from_secs(600))
                .build();
            let ops = reads_per_second(&order, |chunk| {
                let mut conn = conn.clone();
                let l1 = l1.clone();
                async move {
                    for id in chunk {
                        let user = raw_get(&mut conn, id).await;
                        l1.insert(
                            format!("bench:c1:k:user:{id}"),
                            std::sync::Arc::new(user.clone()),
                        );
                        black_box(user);
                    }
                }
            })
            .await;
            filled.push(ops);
        }
        table.higher_is_better(
            "L2 hit, 64 tasks, vs raw GET + decode + moka insert",
            "/s",
            median(&mut cm.clone()),
            ("raw GET + decode + moka::sync insert", median(&mut filled)),
            None,
        );
        table.higher_is_better(
            "L2 hit, 64 tasks on one connection (median reads/s)",
            "/s",
            median(&mut cm),
            ("redis-rs GET + bincode decode", median(&mut rm)),
            Some(1.0 / 1.10),
        );
    });
}

static MISS_CACHE: OnceCell<Cache> = OnceCell::new();

#[cached(key = "miss:<id>", ttl = "1m", cache = MISS_CACHE.get().expect("set by the scenario"))]
async fn miss_user(id: u64) -> u64 {
    id
}

/// Scenario 3: the cost of a miss with a trivial body (L2 GET, the body, the L2 fill, L1).
pub fn miss(table: &mut Table, redis: &Redis, rounds: usize) {
    multi_thread().block_on(async {
        let _ = MISS_CACHE.set(redis.cache("bench").await);
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (mut cm, mut rm) = (Vec::new(), Vec::new());
        let mut next = 0u64;
        for _ in 0..rounds {
            for _ in 0..500 {
                next += 1;
                let start = Instant::now();
                black_box(miss_user(next).await);
                cm.push(start.elapsed().as_nanos() as f64 / 1000.0);

                let key = format!("rawmiss:{next}");
                let start = Instant::now();
                let found: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert!(found.is_none());
                let _: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(next.to_le_bytes().as_slice())
                    .arg("PX")
                    .arg(60_000)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                rm.push(start.elapsed().as_nanos() as f64 / 1000.0);
            }
        }
        table.lower_is_better(
            "miss with a trivial body, p50 (µs)",
            "µs",
            median(&mut cm),
            ("redis-rs GET + SET NX by hand", median(&mut rm)),
            None,
        );
    });
}

/// Scenario 4: `remove` on A until B's L1 no longer holds the key, against a raw PUBLISH
/// until a subscriber receives it.
pub fn propagation(table: &mut Table, redis: &Redis, invalidations: usize) {
    multi_thread().block_on(async {
        let a = redis.cache("bench-prop").await;
        let b = redis.cache("bench-prop").await;
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe("bench-raw-bus").await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while stream.next().await.is_some() {
                if tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });

        let (mut cm, mut rm) = (Vec::new(), Vec::new());
        for i in 0..invalidations {
            let key = format!("prop:{i}");
            b.get_or_set(&key, None, || async { i as u64 }).await;
            assert!(b.contains_local(&key));
            let start = Instant::now();
            a.remove(&key).await.unwrap();
            while b.contains_local(&key) {
                tokio::task::yield_now().await;
            }
            cm.push(start.elapsed().as_nanos() as f64 / 1000.0);

            let start = Instant::now();
            let _: i64 = redis::cmd("PUBLISH")
                .arg("bench-raw-bus")
                .arg(format!("cm1 0000000000000000 del bench-prop:c1:k:{key}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let received = rx.recv().await.unwrap();
            rm.push(received.duration_since(start).as_nanos() as f64 / 1000.0);
        }
        for p in [50.0, 99.0] {
            table.lower_is_better(
                &format!("invalidation A → B's L1, p{p} (µs)"),
                "µs",
                percentile(&mut cm, p),
                ("raw PUBLISH → subscriber", percentile(&mut rm, p)),
                (p == 99.0).then_some(1.5),
            );
        }
        table.lower_is_better(
            "invalidation A → B's L1, max (µs)",
            "µs",
            percentile(&mut cm, 100.0),
            ("raw PUBLISH → subscriber", percentile(&mut rm, 100.0)),
            None,
        );
    });
}

tokio::task_local! {
    static STAMPEDE: Cache;
}

static STAMPEDE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "stampede:<id>", ttl = "1m", cache = STAMPEDE.get())]
async fn stampede_user(id: u64) -> User {
    STAMPEDE_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    user(id)
}

/// Scenario 5: 1,000 concurrent callers of one cold key on each of 2 instances.
pub fn stampede(table: &mut Table, redis: &Redis, rounds: usize) {
    multi_thread().block_on(async {
        let instances = [redis.cache("bench-stampede").await, redis.cache("bench-stampede").await];
        let mut times = Vec::new();
        let mut worst = 0;
        for round in 0..rounds as u64 {
            STAMPEDE_RUNS.store(0, Ordering::SeqCst);
            let start = Instant::now();
            let callers: Vec<_> = instances
                .iter()
                .flat_map(|cache| {
                    (0..1000).map(move |_| tokio::spawn(STAMPEDE.scope(cache.clone(), stampede_user(round))))
                })
                .collect();
            for c in callers {
                c.await.unwrap();
            }
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            worst = worst.max(STAMPEDE_RUNS.load(Ordering::SeqCst));
        }
        let runs_per_instance = worst as f64 / instances.len() as f64;
        table.push(crate::stats::Row {
            scenario: "stampede: 2 instances × 1,000 callers, one cold key, 20 ms body".into(),
            ours: format!("body ran ≤ {worst}× ({runs_per_instance:.1} per instance); all answered in {:.1} ms (median)", median(&mut times)),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "1 run per instance".into(),
            verdict: if runs_per_instance <= 1.0 { "yes" } else { "**no**" },
        });
    });
}
