//! What observability costs on the hit path: an L1 hit with no `tracing` subscriber, with a
//! subscriber that filters cachemacro out (a service logging at INFO with `cachemacro=off`,
//! or any filter below DEBUG for it), and with one that records cachemacro's DEBUG spans.
//!
//! The global subscriber can be set once per process: this scenario runs last.

use std::hint::black_box;
use std::time::Instant;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

use crate::l1::cm_user;
use crate::model::random_ids;
use crate::stats::{median, Table};

/// ns per hit over `ids`, `rounds` times: the medians.
async fn ns_per_hit(ids: &[u64], rounds: usize) -> f64 {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for &id in ids {
            black_box(cm_user(id).await);
        }
        samples.push(start.elapsed().as_nanos() as f64 / ids.len() as f64);
    }
    median(&mut samples)
}

/// The span-cost rows.
pub fn span_cost(table: &mut Table, rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ids = random_ids(200_000, 10_000, 11);
    let (bare, filtered) = rt.block_on(async {
        ns_per_hit(&ids, 1).await; // warm
        let bare = ns_per_hit(&ids, rounds).await;
        // A service's subscriber: INFO and above, cachemacro off.
        let subscriber = tracing_subscriber::registry().with(
            Targets::new()
                .with_default(LevelFilter::INFO)
                .with_target("cachemacro", LevelFilter::OFF),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        let filtered = ns_per_hit(&ids, rounds).await;
        (bare, filtered)
    });
    table.lower_is_better(
        "L1 hit, a subscriber that filters cachemacro out (median ns/op)",
        "ns",
        filtered,
        ("the same hit with no subscriber", bare),
        Some(1.1),
    );
    // Spans on: each hit creates, records and closes one.
    let on = tracing_subscriber::registry()
        .with(Targets::new().with_target("cachemacro", LevelFilter::DEBUG));
    let recorded = tracing::subscriber::with_default(on, || {
        rt.block_on(async { ns_per_hit(&ids[..20_000], rounds).await })
    });
    table.lower_is_better(
        "L1 hit, cachemacro's DEBUG spans recorded by a registry (median ns/op)",
        "ns",
        recorded,
        ("the same hit with no subscriber", bare),
        None,
    );
}
