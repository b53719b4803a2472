//! Two service instances sharing one Redis: an update on one is visible on the other's next
//! read.
//!
//! ```text
//! cargo run --example two_instances                                     # Redis at 127.0.0.1:6379
//! REDIS_URL=redis://10.0.0.5:6379 cargo run --example two_instances     # elsewhere
//! ```
//!
//! Each instance is a separate `Cache` (its own L1, its own bus subscription), as two
//! replicas of a service would have; they run as tasks of one process here so the demo is
//! one command. `tests/tests/processes.rs` does the same with separate OS processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use serde::{Deserialize, Serialize};

/// A product row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Product {
    id: u64,
    price_cents: u32,
}

/// The database both instances share.
static DB: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);
static DB_READS: AtomicU32 = AtomicU32::new(0);

tokio::task_local! {
    /// The cache of the instance the current task plays.
    static INSTANCE: Cache;
}

/// The read path, cached in whichever instance calls it.
#[cached(key = "product:<id>", ttl = "10m", cache = INSTANCE.get())]
pub async fn product(id: u64) -> Product {
    DB_READS.fetch_add(1, Ordering::SeqCst);
    let price_cents = DB
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(&id)
        .copied()
        .unwrap_or(999);
    Product { id, price_cents }
}

/// The write path: update the row, then invalidate everywhere.
async fn set_price(id: u64, price_cents: u32) -> Result<(), cachemacro::Error> {
    DB.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(id, price_cents);
    product::remove_cached(id).await
}

async fn read(name: &str, cache: &Cache) {
    let p = INSTANCE.scope(cache.clone(), product(7)).await;
    println!(
        "{name} reads product 7: {} cents   (database reads so far: {})",
        p.price_cents,
        DB_READS.load(Ordering::SeqCst)
    );
}

async fn instance(url: &str) -> Result<Cache, cachemacro::Error> {
    Cache::builder()
        .namespace("two-instances-demo")
        .redis(url)
        .build()
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let a = instance(&url).await?;
    let b = instance(&url).await?;
    if !a.bus_connected() || !b.bus_connected() {
        return Err(format!("cannot reach Redis at {url}; start it or set REDIS_URL").into());
    }
    // A clean slate for the demo.
    a.remove(&product::key(7)).await?;

    read("A", &a).await; // miss: the database
    read("B", &b).await; // L2 hit: A's value, from Redis
    read("A", &a).await; // L1 hit
    read("B", &b).await; // L1 hit

    println!("\nB changes the price to 1299 and calls product::remove_cached(7)");
    let start = Instant::now();
    INSTANCE.scope(b.clone(), set_price(7, 1299)).await?;
    while a.contains_local(&product::key(7)) {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    println!(
        "A's in-memory copy was dropped {:?} after the write began\n",
        start.elapsed()
    );

    read("A", &a).await; // miss: the new row
    read("B", &b).await; // L2 hit
    Ok(())
}
