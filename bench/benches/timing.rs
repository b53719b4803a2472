//! Latency and throughput: `cargo bench -p cachemacro-bench --bench timing`.

use cachemacro_bench::stats::Table;
use cachemacro_bench::{l1, l2, report, Redis};

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let rounds = if quick { 3 } else { 11 };
    let mut table = Table::default();
    eprintln!("L1 ...");
    l1::hit_single_thread(&mut table, rounds);
    l1::hit_multi_thread(&mut table, rounds);
    let redis = Redis::start();
    eprintln!("L2 ...");
    l2::l2_hit(&mut table, &redis, if quick { 2 } else { 5 });
    l2::miss(&mut table, &redis, if quick { 2 } else { 5 });
    eprintln!("propagation ...");
    l2::propagation(&mut table, &redis, if quick { 1_000 } else { 10_000 });
    eprintln!("stampede ...");
    l2::stampede(&mut table, &redis, 5);
    eprintln!("scale ...");
    l1::hit_at_scale(&mut table, if quick { 3 } else { 7 });
    report("timing", "Latency and throughput", &table.markdown());
}
