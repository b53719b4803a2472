//! Latency and throughput: `cargo bench -p cachemacro-bench --bench timing`.
//!
//! `BENCH_QUICK=1` runs fewer rounds; `BENCH_ONLY=l1,l2,miss,propagation,stampede,scale`
//! runs the named scenarios only (for profiling).

use cachemacro_bench::stats::Table;
use cachemacro_bench::{l1, l2, report, Redis};

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s == name))
    };
    let rounds = if quick { 3 } else { 11 };
    let mut table = Table::default();
    let redis = Redis::start();
    if run("l1") {
        eprintln!("L1 ...");
        l1::hit_single_thread(&mut table, &redis, rounds);
        l1::hit_multi_thread(&mut table, &redis, rounds);
    }
    if run("l2") {
        eprintln!("L2 ...");
        l2::l2_hit(&mut table, &redis, if quick { 2 } else { 5 });
    }
    if run("miss") {
        l2::miss(&mut table, &redis, if quick { 2 } else { 5 });
    }
    if run("propagation") {
        eprintln!("propagation ...");
        l2::propagation(&mut table, &redis, if quick { 1_000 } else { 10_000 });
    }
    if run("stampede") {
        eprintln!("stampede ...");
        l2::stampede(&mut table, &redis, 5);
    }
    if run("scale") {
        eprintln!("scale ...");
        l1::hit_at_scale(&mut table, if quick { 3 } else { 7 });
    }
    if only.is_none() {
        report("timing", "Latency and throughput", &table.markdown());
    }
}
