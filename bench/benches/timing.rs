//! Latency and throughput: `cargo bench -p cachemacro-bench --bench timing`.
//!
//! `BENCH_QUICK=1` runs fewer rounds; `BENCH_ONLY=l1,l2,miss,propagation,stampede,resilience,batch,compression,scale,spans`
//! runs the named scenarios only, and `BENCH_PROFILE=1` runs only cachemacro in the L1 ones
//! (for profiling); `BENCH_ONLY=scaling,hitratio` are the L1 scaling row and the ARC-trace
//! hit ratios; `BENCH_ONLY=tuning` (never part of a full run) is the grid that chose the
//! L1's S3-FIFO settings.

use cachemacro_bench::stats::Table;
use cachemacro_bench::{batch, hit_ratio, l1, l2, report, resilience, Redis};

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
    if run("scaling") {
        eprintln!("L1 scaling ...");
        l1::hit_scaling(&mut table, &redis, if quick { 3 } else { 7 });
    }
    if run("l2") {
        eprintln!("L2 ...");
        // Many cheap rounds: the 64-task row is the noisiest of all (a pass takes ~35 ms).
        l2::l2_hit(&mut table, &redis, if quick { 2 } else { 15 });
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
    if run("resilience") {
        eprintln!("resilience ...");
        resilience::fleet_stampede(&mut table, &redis, 5);
        resilience::served_stale(&mut table, if quick { 1 } else { 3 });
    }
    if run("batch") {
        eprintln!("batch ...");
        batch::batch(&mut table, &redis, if quick { 50 } else { 300 });
    }
    if run("compression") {
        eprintln!("compression ...");
        cachemacro_bench::compression::compression(&redis, if quick { 30 } else { 200 });
    }
    if run("scale") {
        eprintln!("scale ...");
        l1::hit_at_scale(&mut table, if quick { 3 } else { 7 });
    }
    if run("hitratio") {
        eprintln!("hit ratio ...");
        let mut ratios = Table::default();
        hit_ratio::hit_ratios(&mut ratios);
        report(
            "hit-ratio",
            "Hit ratio on the ARC traces",
            &format!("{}\n\n{}.\n", ratios.markdown(), hit_ratio::CITATION),
        );
    }
    // Not in a full run: the grid that chose the L1's S3-FIFO settings.
    if only
        .as_deref()
        .is_some_and(|o| o.split(',').any(|s| s == "tuning"))
    {
        eprintln!("S3-FIFO tuning grid ...");
        let mut grid = Table::default();
        hit_ratio::tuning(&mut grid);
        report(
            "s3fifo-tuning",
            "S3-FIFO settings on the ARC traces (quick_cache, against moka)",
            &format!("{}\n\n{}.\n", grid.markdown(), hit_ratio::CITATION),
        );
    }
    // Last: it sets the process's global tracing subscriber.
    if run("spans") {
        eprintln!("span cost ...");
        cachemacro_bench::observability::span_cost(&mut table, if quick { 3 } else { 11 });
    }
    if only.is_none() {
        report("timing", "Latency and throughput", &table.markdown());
    }
}
