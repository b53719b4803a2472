//! Memory per entry and allocations per hit, under a counting allocator:
//! `cargo bench -p cachemacro-bench --bench memory`.

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let _ = Region::new(GLOBAL);
    println!("memory bench: to do");
}
