//! Batch loading: 100 ids in one call of a `batch` function, against the same 100 ids
//! through the single-item cached function (100 calls) and against a hand-written loop
//! over Redis (`MGET`, decode, load the misses at once, pipeline their `SET`s), with 90% of
//! the ids in L1, with 90% in Redis only, and with all of them cold.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use cachemacro::{cached, Cache};
use redis::aio::MultiplexedConnection;

use crate::model::{user, User};
use crate::stats::{median, Table};
use crate::Redis;

tokio::task_local! {
    static INSTANCE: Cache;
}

/// The source: every row asked for, at once (no latency of its own: what is measured is the
/// caching around it).
fn load(ids: &[u64]) -> HashMap<u64, User> {
    ids.iter().map(|&id| (id, user(id))).collect()
}

#[cached(key = "bu:<id>", batch(id in ids), cache = INSTANCE.get())]
async fn batch_users(ids: Vec<u64>) -> HashMap<u64, User> {
    load(&ids)
}

/// The single-item function on the same entries.
#[cached(key = "bu:<id>", cache = INSTANCE.get())]
async fn single_user(id: u64) -> User {
    user(id)
}

/// What a service writes by hand without batch support: `MGET` the keys, decode the hits,
/// load the misses in one call, `SET` them in one pipeline.
async fn hand_written(conn: &mut MultiplexedConnection, ids: &[u64]) -> HashMap<u64, User> {
    let keys: Vec<String> = ids.iter().map(|id| format!("hand:{id}")).collect();
    let found: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(conn)
        .await
        .expect("MGET");
    let mut out = HashMap::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (&id, bytes) in ids.iter().zip(found) {
        match bytes.and_then(|b| bincode::deserialize::<User>(&b).ok()) {
            Some(user) => {
                out.insert(id, user);
            }
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        let loaded = load(&missing);
        let mut pipe = redis::pipe();
        for (id, user) in &loaded {
            let bytes = bincode::serialize(user).expect("encodes");
            pipe.cmd("SET")
                .arg(format!("hand:{id}"))
                .arg(bytes)
                .arg("PX")
                .arg(600_000)
                .ignore();
        }
        let () = pipe.query_async(conn).await.expect("SET pipeline");
        out.extend(loaded);
    }
    out
}

/// Where 90 of the 100 ids are before the call.
#[derive(Clone, Copy, PartialEq)]
enum Warm {
    L1,
    Redis,
    Cold,
}

/// The three ways, in µs per call of 100 ids (medians over `rounds`, each with ids of its
/// own, the ways alternating).
async fn measure(redis: &Redis, warm: Warm, rounds: u64) -> (f64, f64, f64) {
    let writer = redis.cache("bench-batch").await;
    let reader = redis.cache("bench-batch").await;
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (mut batch, mut singles, mut hand) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Each way gets ids of its own: 100 per way and round.
        let base = 10_000_000 + round * 1_000 + u64::from(warm as u8) * 100_000_000;
        let ids = |way: u64| -> Vec<u64> { (base + way * 100..base + way * 100 + 100).collect() };
        let warm_ids = |ids: &[u64]| ids[..90].to_vec();
        // Setup: 90 ids where the scenario wants them.
        let at = match warm {
            Warm::L1 => &writer,
            _ => &reader,
        };
        for way in 0..2 {
            if warm != Warm::Cold {
                let ids = warm_ids(&ids(way));
                INSTANCE.scope(writer.clone(), batch_users(ids)).await;
            }
        }
        if warm != Warm::Cold {
            hand_written(&mut conn, &warm_ids(&ids(2))).await;
        }
        // The calls.
        let start = Instant::now();
        let found = INSTANCE.scope(at.clone(), batch_users(ids(0))).await;
        batch.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 100);
        let start = Instant::now();
        INSTANCE
            .scope(at.clone(), async {
                for id in ids(1) {
                    black_box(single_user(id).await);
                }
            })
            .await;
        singles.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        let found = hand_written(&mut conn, &ids(2)).await;
        hand.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 100);
    }
    (median(&mut batch), median(&mut singles), median(&mut hand))
}

/// The batch rows: per scenario, the batch call against 100 single calls and against the
/// hand-written `MGET` loop.
pub fn batch(table: &mut Table, redis: &Redis, rounds: u64) {
    crate::multi_thread().block_on(async {
        for (warm, name) in [
            (Warm::L1, "90 in L1, 10 cold"),
            (Warm::Redis, "90 in Redis only, 10 cold"),
            (Warm::Cold, "all 100 cold"),
        ] {
            let (batch, singles, hand) = measure(redis, warm, rounds).await;
            table.lower_is_better(
                &format!("batch of 100 ids, {name} (µs/call)"),
                "µs",
                batch,
                ("100 calls of the single-item function", singles),
                None,
            );
            table.lower_is_better(
                &format!("batch of 100 ids, {name}, against a hand-written MGET loop (µs/call)"),
                "µs",
                batch,
                ("MGET + bincode + one load + pipelined SETs, no L1", hand),
                None,
            );
        }
    });
}
