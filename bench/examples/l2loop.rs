//! L2 hits alone, for a profiler (`valgrind --tool=callgrind`, which sees only this
//! process, not redis-server) or for comparing two builds: `l2loop <subject> [reads]`.
//!
//! Subjects: `cachemacro` (a `#[cached]` function whose L1 is emptied before each pass over
//! the 10k keys, so that every read is an L2 hit) and `raw` (redis-rs GET + bincode decode
//! by hand, on a connection of its own). It reads one key at a time on a current-thread
//! runtime and prints µs per read; `TASKS=64` reads with 64 tasks instead, as the
//! benchmark's throughput row does, and prints reads per second. `MULTI=1` runs on the
//! benchmark's runtime (two workers; the reads are spawned on them) instead.

use std::hint::black_box;
use std::time::Instant;

use cachemacro_bench::l2::{l2_reader, l2_user, raw_get, setup};
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
                    if ours {
                        black_box(l2_user(id).await);
                    } else {
                        black_box(raw_get(&mut conn.clone(), id).await);
                    }
                }
                continue;
            }
            let handles: Vec<_> = pass
                .chunks(pass.len().div_ceil(tasks))
                .map(|chunk| {
                    let (chunk, mut conn) = (chunk.to_vec(), conn.clone());
                    tokio::spawn(async move {
                        for id in chunk {
                            if ours {
                                black_box(l2_user(id).await);
                            } else {
                                black_box(raw_get(&mut conn, id).await);
                            }
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

/// The benchmark's sequential row: passes of 2,000 reads, each timed, cachemacro and raw
/// turn about; prints both medians and their ratio.
async fn alternate(conn: redis::aio::MultiplexedConnection, order: &[u64], reads: usize) {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    let mut conn = conn;
    for pass in 0..(reads / 2_000).max(2) {
        l2_reader().clear_memory();
        for &id in order.iter().take(2_000) {
            let start = Instant::now();
            if pass % 2 == 0 {
                black_box(l2_user(id).await);
                ours.push(start.elapsed().as_nanos());
            } else {
                black_box(raw_get(&mut conn, id).await);
                raw.push(start.elapsed().as_nanos());
            }
        }
    }
    ours.sort_unstable();
    raw.sort_unstable();
    let (o, r) = (
        ours[ours.len() / 2] as f64 / 1e3,
        raw[raw.len() / 2] as f64 / 1e3,
    );
    println!("p50 cachemacro {o:.1} µs, raw {r:.1} µs: {:.3}x", o / r);
}
