//! One worker of the multi-process history check (`tests/tests/history.rs`): a service
//! instance with its own `Cache` that reads and writes a few hot keys at random, for a
//! while, and records what it saw.
//!
//! Usage: `history <cache-redis-url> <db-redis-url> <worker-id> <seconds> <out-file>`, where
//! the cache's URL may be `cluster:<bus>:<node-url>,<node-url>...` (bus: `classic`,
//! `sharded` or `both`) for a Redis Cluster.
//!
//! The source of truth is a separate redis-server (the "database", never faulted): row `k`
//! is the counter `row:<k>`, incremented by every write. Reads go through `#[cached]`
//! functions whose bodies read the row, slowed at random to widen the races. Keys
//! `0..KEYS` (loaded under fleet-wide single flight, or in batches) are invalidated with
//! `remove_cached`, `remove_cached_many` or `invalidate_tag`; keys `KEYS..2*KEYS` are in a group named in the attribute (`group = "rows"`) and invalidated
//! with `bump_version`; keys `2*KEYS..3*KEYS` come from a flaky source (it fails or is slow
//! now and then) and are served stale, answered past a soft timeout, and refreshed ahead,
//! and invalidated like the first ones; now and then a write invalidates with `purge`
//! instead. The group-versioned rows are pages of text that worker 0 stores compressed
//! with zstd, worker 1 with LZ4 and worker 2 plain (envelope formats 3 and 1 side by side).
//! Worker 0 stops two seconds early and calls `Cache::shutdown` while the others go on.
//!
//! Each line of the out file is an event, times in microseconds since the Unix epoch:
//!
//! ```text
//! R <key> <value> <start> <end>        a read returned the row's version <value>
//! W <key> <version> <start> <end> ok <how>   a write made the row <version> and invalidated
//!                                             it (<how>: remove, tag, bump or purge)
//! W <key> <version> <start> <end> err <how>  ... and the invalidation reported an error
//! B down <time>                        the invalidation bus was seen disconnected
//! B up <time>                          ... and connected again
//! S <stale served> <refreshes> <fleet waits> <stale loads dropped> <unusable values> <front hits> <fleet restarts>   at the end
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachemacro::cached;
use once_cell::sync::OnceCell;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

/// Hot keys per kind of invalidation.
const KEYS: u64 = 4;
/// Concurrent tasks per worker.
const TASKS: usize = 6;

static DB: OnceCell<MultiplexedConnection> = OnceCell::new();
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SEED: AtomicU64 = AtomicU64::new(0);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn record(event: String) {
    EVENTS.lock().unwrap().push(event);
}

/// A random number below `n` (xorshift; quality is not a concern here).
fn random(n: u64) -> u64 {
    let mut x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    x % n
}

fn db() -> MultiplexedConnection {
    DB.get().expect("connected in main").clone()
}

/// The row, read slowly: a load that spans an invalidation is what the check is after.
async fn load_row(k: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(random(15))).await;
    let version: Option<u64> = db()
        .get(format!("row:{k}"))
        .await
        .expect("the database answers");
    tokio::time::sleep(Duration::from_millis(random(15))).await;
    version.unwrap_or(0)
}

#[cached(key = "row:<k>", ttl = "30s", tags = ["row:<k>"], fleet_single_flight = "200ms")]
async fn row(k: u64) -> u64 {
    load_row(k).await
}

/// The row from a source that fails one time in four and is slow one time in three.
#[cached(
    key = "flaky:<k>",
    ttl = "100ms",
    stale_for = "10s",
    soft_timeout = "15ms",
    hard_timeout = "80ms",
    refresh_ahead = 0.3,
    fail_safe_throttle = "50ms",
    tags = ["row:<k>"]
)]
async fn flaky_row(k: u64) -> Result<u64, String> {
    match random(12) {
        0..=2 => Err("the source failed".into()),
        3..=6 => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(load_row(k).await)
        }
        _ => Ok(load_row(k).await),
    }
}

/// The batch form of `row`, sharing its entries: the rows of `ks`, each loaded slowly.
#[cached(key = "row:<k>", batch(k in ks), ttl = "30s", tags = ["row:<k>"])]
async fn rows(ks: Vec<u64>) -> std::collections::HashMap<u64, u64> {
    let mut found = std::collections::HashMap::new();
    for k in ks {
        found.insert(k, load_row(k).await);
    }
    found
}

/// A row with a page of text: large enough to be compressed in Redis (envelope format 3) by
/// the workers that compress.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Page {
    version: u64,
    text: String,
}

/// In the group `rows`, named in the attribute: a bump retires every versioned row.
#[cached(key = "vrow:<k>", ttl = "30s", group = "rows")]
async fn versioned_row(k: u64) -> Page {
    let version = load_row(k).await;
    Page {
        version,
        text: format!("row {k} at version {version}; ").repeat(40),
    }
}

/// One random operation.
async fn step() {
    let cache = cachemacro::global();
    // Half the operations go to the flaky keys.
    let kind = [0, 1, 2, 2][random(4) as usize];
    let versioned = kind == 1;
    let flaky = kind == 2;
    let k = random(KEYS) + kind * KEYS;
    let dice = random(100);
    let start = now_us();
    if dice < 75 {
        let value = if versioned {
            versioned_row(k).await.version
        } else if flaky {
            match flaky_row(k).await {
                Ok(value) => value,
                // A failure with nothing to fall back on: no value to check.
                Err(_) => return,
            }
        } else if dice < 25 {
            // A batch of this key and another: each element is a read of its own.
            let other = random(KEYS);
            let found = rows(vec![k, other]).await;
            let end = now_us();
            for (k, value) in found {
                record(format!("R {k} {value} {start} {end}"));
            }
            return;
        } else {
            row(k).await
        };
        record(format!("R {k} {value} {start} {}", now_us()));
        return;
    }
    let version: u64 = db()
        .incr(format!("row:{k}"), 1)
        .await
        .expect("the database answers");
    let (how, invalidated) = if dice < 77 {
        ("purge", cache.purge().await.map(drop))
    } else if versioned {
        ("bump", cache.bump_version("rows").await.map(drop))
    } else if dice < 90 && flaky {
        ("remove", flaky_row::remove_cached(k).await)
    } else if dice < 84 {
        ("remove", row::remove_cached(k).await)
    } else if dice < 90 {
        ("remove", rows::remove_cached_many(&[k]).await)
    } else {
        (
            "tag",
            cache.invalidate_tag(&format!("row:{k}")).await.map(drop),
        )
    };
    let outcome = if invalidated.is_ok() { "ok" } else { "err" };
    record(format!(
        "W {k} {version} {start} {} {outcome} {how}",
        now_us()
    ));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, cache_url, db_url, id, seconds, out] = args.as_slice() else {
        return Err(
            "usage: history <cache-redis-url> <db-redis-url> <worker-id> <seconds> <out-file>"
                .into(),
        );
    };
    let id: u64 = id.parse()?;
    SEED.store(now_us() ^ (id << 48), Ordering::Relaxed);
    let seconds: u64 = seconds.parse()?;
    DB.set(
        redis::Client::open(db_url.as_str())?
            .get_multiplexed_async_connection()
            .await?,
    )
    .map_err(|_| "connected once")?;
    // Workers write their pages compressed with zstd, with LZ4, or plain; every one reads
    // what the others wrote.
    let compression = match id % 3 {
        0 => cachemacro::Compression::Zstd { level: 1 },
        1 => cachemacro::Compression::Lz4,
        _ => cachemacro::Compression::None,
    };
    let builder = cachemacro::Cache::builder().namespace("history");
    // `cluster:<bus>:<url>,<url>...` (bus: classic, sharded or both) for a Redis Cluster.
    let builder = match cache_url.strip_prefix("cluster:") {
        Some(rest) => {
            let (bus, urls) = rest.split_once(':').ok_or("cluster:<bus>:<urls>")?;
            let urls: Vec<&str> = urls.split(',').collect();
            builder.redis_cluster(&urls).bus_channels(match bus {
                "sharded" => cachemacro::BusChannels::Sharded,
                "both" => cachemacro::BusChannels::ClassicAndSharded,
                _ => cachemacro::BusChannels::Classic,
            })
        }
        None => builder.redis(cache_url),
    };
    let builder = builder
        .redis_timeout(Duration::from_millis(300))
        .bus_heartbeat(Duration::from_millis(200))
        .compression(compression)
        .compress_above(256);
    // A cluster cache fails to build when no node answers its first call in time (a busy
    // machine): retry, as a service's start-up would.
    let mut attempts = 0;
    let cache = loop {
        match builder.clone().build().await {
            Ok(cache) => break cache,
            Err(err) if attempts < 20 => {
                attempts += 1;
                eprintln!("history worker {id}: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    cachemacro::set_global(cache.clone())?;

    // The bus's state, as often as it can be looked at.
    let watcher = tokio::spawn(async move {
        let mut up = cache.bus_connected();
        let mut drops = cache.stats().bus_disconnects;
        record(format!("B {} {}", if up { "up" } else { "down" }, now_us()));
        loop {
            let now_up = cache.bus_connected();
            let now_drops = cache.stats().bus_disconnects;
            if now_drops != drops && up && now_up {
                // Down and up again between two looks.
                record(format!("B down {}", now_us()));
                record(format!("B up {}", now_us()));
            } else if now_up != up {
                record(format!(
                    "B {} {}",
                    if now_up { "up" } else { "down" },
                    now_us()
                ));
            }
            (up, drops) = (now_up, now_drops);
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });

    // Worker 0 stops two seconds early and shuts its cache down while the others go on:
    // what its background refreshes store meanwhile is read by them.
    let seconds = if id == 0 && seconds > 4 {
        seconds - 2
    } else {
        seconds
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    step().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    watcher.abort();
    cachemacro::global().shutdown().await;
    let stats = cachemacro::global().stats();
    record(format!(
        "S {} {} {} {} {} {} {}",
        stats.stale_served,
        stats.refreshes,
        stats.fleet_waits,
        stats.stale_loads_dropped,
        stats.unusable_values,
        stats.front_hits,
        stats.fleet_restarts
    ));
    let events = EVENTS.lock().unwrap().join("\n");
    std::fs::write(out, events + "\n")?;
    Ok(())
}
