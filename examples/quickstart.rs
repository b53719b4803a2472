//! The quickstart: a cached function, its hits, an invalidation and a fresh read.
//!
//! ```text
//! cargo run --example quickstart                                          # in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart         # with Redis
//! ```
//!
//! Without `REDIS_URL` it runs in memory; no Redis needed. With it, the cache gains the
//! shared L2 and the invalidation bus, and the same code runs unchanged.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use cachemacro::cached;
use serde::{Deserialize, Serialize};

/// A row of the pretend database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
}

/// Why the pretend database may fail.
#[derive(Debug)]
pub struct DbError;

static NAME_VERSION: AtomicU32 = AtomicU32::new(1);
static DB_READS: AtomicU32 = AtomicU32::new(0);

/// The slow read the cache saves us from.
async fn load_user(user_id: u64) -> Result<User, DbError> {
    DB_READS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let version = NAME_VERSION.load(Ordering::SeqCst);
    Ok(User {
        id: user_id,
        name: format!("Ada v{version}"),
    })
}

/// Reads a user through the cache.
#[cached(key = "user:<user_id>", ttl = "5m")]
pub async fn get_user(user_id: u64) -> Result<User, DbError> {
    load_user(user_id).await
}

/// The write path: change the row, then invalidate the cached read.
async fn rename_user(user_id: u64) -> Result<(), Box<dyn std::error::Error>> {
    NAME_VERSION.fetch_add(1, Ordering::SeqCst);
    get_user::remove_cached(user_id).await?;
    Ok(())
}

async fn timed_read(label: &str, user_id: u64) {
    let start = Instant::now();
    let user = get_user(user_id)
        .await
        .expect("the pretend database does not fail");
    println!(
        "{label:<28} {:>9.3} ms  {user:?}  (database reads so far: {})",
        start.elapsed().as_secs_f64() * 1000.0,
        DB_READS.load(Ordering::SeqCst)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let cache = cachemacro::Cache::builder()
                .namespace("quickstart")
                .redis(&url)
                .build()
                .await?;
            // Start from a clean slate, so the first read below is a miss.
            cache.remove(&get_user::key(42)).await?;
            cachemacro::set_global(cache)?;
            println!("cache: L1 in memory + L2 and invalidation bus on {url}");
        }
        Err(_) => println!("cache: in memory (set REDIS_URL to add Redis)"),
    }
    println!("cache key of get_user(42): {:?}\n", get_user::key(42));
    timed_read("first read (miss)", 42).await;
    timed_read("second read (hit)", 42).await;
    timed_read("third read (hit)", 42).await;
    rename_user(42).await?;
    println!("-- renamed user 42; get_user::remove_cached(42) invalidated the entry --");
    timed_read("read after write (miss)", 42).await;
    timed_read("next read (hit)", 42).await;
    Ok(())
}
