//! One worker of the mixed-version history check (`tests/tests/mixed_versions.rs`): a
//! service instance that reads and writes a few hot rows at random and records what it saw,
//! written against the API the previous release and this one share, so that the same
//! program runs as an old and as a new instance side by side.
//!
//! Usage: `cachemacro-mixed-worker <cache-redis-url> <db-redis-url> <worker-id> <seconds>
//! <out-file> [no-purge]`; the event lines are those of the `history` binary
//! (`tests/src/bin/history.rs`). With `no-purge` it never purges (it removes instead): the
//! deploy procedure keeps purges to the new release's instances.
//!
//! Rows `0..KEYS` are tagged (`row:<k>`) and invalidated with `remove_cached` or
//! `invalidate_tag`; rows `KEYS..2*KEYS` are read through the group version `rows` and
//! invalidated with `bump_version`; rows `2*KEYS..3*KEYS` live in the scope `rows` and are
//! invalidated with `remove_cached` or a scope purge; now and then a write purges the whole
//! namespace (which, in the previous release, deletes the group versions too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachemacro::cached;
use once_cell::sync::OnceCell;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

/// Hot rows per kind of invalidation.
const KEYS: u64 = 4;
/// Concurrent tasks per worker.
const TASKS: usize = 6;

static DB: OnceCell<MultiplexedConnection> = OnceCell::new();
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SEED: AtomicU64 = AtomicU64::new(0);
static NO_PURGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn record(event: String) {
    EVENTS.lock().unwrap().push(event);
}

/// A random number below `n` (splitmix; quality is not a concern here).
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

#[cached(key = "row:<k>", ttl = "30s", tags = ["row:<k>"])]
async fn row(k: u64) -> u64 {
    load_row(k).await
}

#[cached(key = "vrow:v<version>:<k>", ttl = "30s")]
async fn versioned_row(version: u64, k: u64) -> u64 {
    let _ = version;
    load_row(k).await
}

#[cached(key = "srow:<k>", ttl = "30s", scope = "rows")]
async fn scoped_row(k: u64) -> u64 {
    load_row(k).await
}

/// One random operation.
async fn step() {
    let cache = cachemacro::global();
    let kind = random(3);
    let k = random(KEYS) + kind * KEYS;
    let dice = random(100);
    let start = now_us();
    if dice < 75 {
        let value = match kind {
            0 => row(k).await,
            1 => match cache.version("rows").await {
                Ok(version) => versioned_row(version, k).await,
                Err(_) => return,
            },
            _ => scoped_row(k).await,
        };
        record(format!("R {k} {value} {start} {}", now_us()));
        return;
    }
    let version: u64 = db()
        .incr(format!("row:{k}"), 1)
        .await
        .expect("the database answers");
    let purges = !NO_PURGE.load(Ordering::Relaxed);
    let (how, invalidated) = if dice < 76 && purges {
        ("purge", cache.purge().await.map(drop))
    } else {
        match kind {
            0 if dice < 85 => ("remove", row::remove_cached(k).await),
            0 => (
                "tag",
                cache.invalidate_tag(&format!("row:{k}")).await.map(drop),
            ),
            1 => ("bump", cache.bump_version("rows").await.map(drop)),
            _ if dice < 90 || !purges => ("remove", scoped_row::remove_cached(k).await),
            _ => ("scope purge", cache.scope("rows").purge().await.map(drop)),
        }
    };
    let outcome = if invalidated.is_ok() { "ok" } else { "err" };
    record(format!(
        "W {k} {version} {start} {} {outcome} {}",
        now_us(),
        how.replace(' ', "_")
    ));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (args, no_purge) = match args.last().map(String::as_str) {
        Some("no-purge") => (&args[..args.len() - 1], true),
        _ => (&args[..], false),
    };
    NO_PURGE.store(no_purge, Ordering::Relaxed);
    let [_, cache_url, db_url, id, seconds, out] = args else {
        return Err("usage: cachemacro-mixed-worker <cache-redis-url> <db-redis-url> <worker-id> <seconds> <out-file> [no-purge]".into());
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
    let cache = cachemacro::Cache::builder()
        .namespace("mixed")
        .redis(cache_url.as_str())
        .redis_timeout(Duration::from_millis(300))
        .build()
        .await?;
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
    record("S 0 0 0 0 0 0 0".to_owned());
    let events = EVENTS.lock().unwrap().join("\n");
    std::fs::write(out, events + "\n")?;
    Ok(())
}
