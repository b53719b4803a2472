//! One reader of short-lived L1 entries inside a process that uses up its CPU quota, run as
//! its own OS process by `tests/tests/l1_clock.rs`, which puts it in a cgroup with a CPU
//! quota first.
//!
//! Usage: `throttled <rounds>`. It waits for one line on stdin (the test moves it into the
//! cgroup meanwhile), then starts a thread that spins for as long as it runs, so that the
//! process spends its quota and is held off the CPU for the rest of each period, as a
//! busy service in a container is. Each round, on the main thread:
//!
//! - `Cache::set` stores a value for [`TTL`], and a `#[cached(ttl = TTL)]` function loads
//!   a value under a key of its own;
//! - both are read back at once (a hit; the function's copies its value to its front), then
//!   again after a delay of 0 to 30 ms.
//!
//! A second read that starts [`TTL`] or more after the write returned, yet returns the
//! value, served an expired entry. It prints one line:
//!
//! ```text
//! reads <n> early <e> early_hits <h> expired <x> served_expired <s> oldest_served_ms <m>
//! ```
//!
//! `early`: second reads that started less than half the TTL after the write, `early_hits`
//! those of them that returned the value; `expired`: second reads that started at or after
//! the TTL, `served_expired` those of them that returned the value, the oldest of which was
//! `oldest_served_ms` old (0 when none).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use once_cell::sync::Lazy;

/// The entries' TTL.
const TTL: Duration = Duration::from_millis(10);

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);

/// Body runs of [`stamped`]: a second call that did not run it was served from the cache.
static LOADS: AtomicU64 = AtomicU64::new(0);

#[cached(key = "stamped:<round>", ttl = TTL, cache = &*CACHE)]
async fn stamped(round: u64) -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    round
}

/// What the second reads saw.
#[derive(Default)]
struct Tally {
    reads: u64,
    early: u64,
    early_hits: u64,
    expired: u64,
    served_expired: u64,
    oldest_served: Duration,
}

impl Tally {
    /// A second read that started `age` after the write, and whether it returned the value.
    fn record(&mut self, age: Duration, hit: bool) {
        self.reads += 1;
        if age < TTL / 2 {
            self.early += 1;
            self.early_hits += u64::from(hit);
        }
        if age >= TTL {
            self.expired += 1;
            if hit {
                self.served_expired += 1;
                self.oldest_served = self.oldest_served.max(age);
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: throttled <rounds>");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .expect("a line on stdin");

    let done = Arc::new(AtomicBool::new(false));
    let spinner = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };

    let mut tally = Tally::default();
    for round in 0..rounds {
        // Delays of 0 to 30 ms in a scattered order.
        let delay = Duration::from_millis(round * 7 % 31);

        CACHE
            .set("plain", round, TTL)
            .await
            .expect("an in-memory set");
        let written = Instant::now();
        let first = CACHE.get::<u64>("plain").await.expect("an in-memory get");
        std::thread::sleep(delay);
        let started = Instant::now();
        let second = CACHE.get::<u64>("plain").await.expect("an in-memory get");
        // A first read that missed (the process was held off the CPU for the whole TTL
        // right after the write) says nothing about the second.
        if first.is_some() {
            tally.record(started - written, second == Some(round));
        }

        stamped(round).await;
        let written = Instant::now();
        let loads = LOADS.load(Ordering::SeqCst);
        stamped(round).await;
        let first_hit = LOADS.load(Ordering::SeqCst) == loads;
        std::thread::sleep(delay);
        let started = Instant::now();
        let loads = LOADS.load(Ordering::SeqCst);
        stamped(round).await;
        if first_hit {
            tally.record(started - written, LOADS.load(Ordering::SeqCst) == loads);
        }
    }
    done.store(true, Ordering::Relaxed);
    spinner.join().expect("the spinner ends");

    println!(
        "reads {} early {} early_hits {} expired {} served_expired {} oldest_served_ms {}",
        tally.reads,
        tally.early,
        tally.early_hits,
        tally.expired,
        tally.served_expired,
        tally.oldest_served.as_millis()
    );
}
