//! Benchmarks of cachemacro, measured against raw moka, raw redis-rs and other caching
//! crates in the same run, alternating, reported as medians and ratios.
//!
//! ```text
//! cargo bench -p cachemacro-bench          # both tables; REDIS_URL=... to use a running Redis
//! ```
//!
//! `benches/timing.rs` measures latency and throughput; `benches/memory.rs` runs under a
//! counting allocator (which would distort timings) and measures memory per entry and
//! allocations per hit.

pub mod alternatives;
pub mod batch;
pub mod compression;
pub mod hit_ratio;
pub mod l1;
pub mod l2;
pub mod model;
pub mod observability;
pub mod resilience;
pub mod stats;

use std::time::Duration;

use cachemacro::Cache;
use cachemacro_tests::RedisServer;

/// A Redis to benchmark against: `REDIS_URL`, or a redis-server of our own.
pub struct Redis {
    /// Its URL.
    pub url: String,
    _server: Option<RedisServer>,
}

impl Redis {
    /// `REDIS_URL` when set, else a fresh redis-server on a free port.
    pub fn start() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) => Self { url, _server: None },
            Err(_) => {
                let server = RedisServer::start();
                Self {
                    url: server.url(),
                    _server: Some(server),
                }
            }
        }
    }

    /// A cache instance on this Redis.
    pub async fn cache(&self, namespace: &str) -> Cache {
        Cache::builder()
            .namespace(namespace)
            .redis(&self.url)
            .l1_capacity(2_000_000)
            .default_ttl(Duration::from_secs(600))
            .build()
            .await
            .expect("the benchmark cache builds")
    }
}

/// Writes `markdown` to `bench/results/<name>.md` and prints it.
pub fn report(name: &str, title: &str, markdown: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let _ = std::fs::create_dir_all(&dir);
    let machine = format!(
        "{} cores, rustc release profile, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    let text = format!("## {title}\n\nMachine: {machine}.\n\n{markdown}");
    let path = dir.join(format!("{name}.md"));
    if let Err(err) = std::fs::write(&path, &text) {
        eprintln!("could not write {}: {err}", path.display());
    }
    println!("\n{text}\n(written to {})", path.display());
}

/// A tokio runtime with 2 workers, as the multi-task scenarios use.
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
