//! L2 hits alone, for a profiler (`valgrind --tool=callgrind`, which sees only this
//! process, not redis-server) or for comparing two builds: `l2loop <subject> [reads]`.
//!
//! Subjects: `cachemacro` (a `#[cached]` function whose L1 is emptied before each pass over
//! the 10k keys, so that every read is an L2 hit), `raw` (redis-rs GET + bincode decode by
//! hand, on a connection of its own), and `ab`, the benchmark's sequential row alone (the
//! two turn about; it prints both medians). It reads one key at a time in the caller's task
//! and prints µs per read; `TASKS=64` reads with 64 tasks instead, as the benchmark's
//! throughput row does, and prints reads per second. It runs on a current-thread runtime,
//! or with `MULTI=1` on the benchmark's (two workers).

use std::hint::black_box;
use std::time::Instant;

use cachemacro_bench::l2::{l2_reader, latencies, read, setup};
use cachemacro_bench::stats::median;
use cachemacro_bench::Redis;

fn main() {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "cachemacro".into());
    let reads: usize = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let tasks: usize = std::env::var("TASKS").map_or(1, |n| n.parse().expect("a count"));
    let ours = match subject.as_str() {
        "cachemacro" => true,
        "raw" | "ab" => false,
        other => panic!("unknown subject {other}"),
    };
    let redis = Redis::start();
    let rt = if std::env::var("MULTI").is_ok() {
        cachemacro_bench::multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    rt.block_on(async {
        let (conn, order) = setup(&redis).await;
        if subject == "ab" {
            return alternate(conn, &order, reads).await;
        }
        let start = Instant::now();
        let mut done = 0;
        while done < reads {
            l2_reader().clear_memory();
            let pass: Vec<u64> = order.iter().copied().take(reads - done).collect();
            done += pass.len();
            if tasks == 1 {
                // In the caller's task, as the benchmark's sequential row reads.
                for id in pass {
                    black_box(read(ours, &mut conn.clone(), id).await);
                }
                continue;
            }
            let handles: Vec<_> = pass
                .chunks(pass.len().div_ceil(tasks))
                .map(|chunk| {
                    let (chunk, mut conn) = (chunk.to_vec(), conn.clone());
                    tokio::spawn(async move {
                        for id in chunk {
                            black_box(read(ours, &mut conn, id).await);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("the reads finish");
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        if tasks == 1 {
            println!("{subject}: {:.2} µs per read", elapsed * 1e6 / reads as f64);
        } else {
            println!(
                "{subject}: {:.0} reads/s with {tasks} tasks",
                reads as f64 / elapsed
            );
        }
    });
}

/// The benchmark's sequential row ([`latencies`]), `reads / 4,000` rounds; prints both
/// medians and their ratio.
async fn alternate(mut conn: redis::aio::MultiplexedConnection, order: &[u64], reads: usize) {
    let (mut ours, mut raw) = latencies(&mut conn, order, (reads / 4_000).max(1)).await;
    let (o, r) = (median(&mut ours), median(&mut raw));
    println!("p50 cachemacro {o:.1} µs, raw {r:.1} µs: {:.3}x", o / r);
}
