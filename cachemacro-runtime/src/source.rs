//! Where a call's value came from: what the companion `with_source` of a `#[cached]`
//! function reports (the `cached` crate's `with_cached_flag`).
//!
//! The companion runs the function itself inside a task-local [`Report`]; the miss path
//! writes how the call ended into it (the same points that count the function's L2 hits,
//! joins, loads and stale answers, see `site`, and a body run without the cache), and the
//! body of a load runs under a silent report, so the cached functions it calls do not
//! overwrite their caller's answer. The hit path writes nothing: a call that recorded
//! nothing was answered from L1, so a hit costs no instruction more. Each record checks
//! one relaxed atomic before it looks for a report: nothing is paid while no `with_source`
//! call is in the air.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::site::Outcome;

/// Where the value a cached call returned came from, as the companion `with_source`
/// reports it.
///
/// ```
/// use cachemacro::{cached, Source};
///
/// #[cached(key = "square:<n>", ttl = "1m")]
/// async fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// cachemacro::with_cache(cachemacro::Cache::in_memory(), async {
///     assert_eq!(square::with_source(4).await, (16, Source::Loaded));
///     assert_eq!(square::with_source(4).await, (16, Source::L1));
///     assert!(Source::L1.is_cached() && !Source::Loaded.is_cached());
/// })
/// .await;
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// This process's memory (L1, or the function's front of it).
    L1,
    /// Redis (L2): a value this or another instance stored.
    L2,
    /// Another call of the same key in this process, which was loading it when this call
    /// came (single flight): its result, fresh from the function's body.
    Joined,
    /// The function's body ran for this call: a miss in both tiers, or the cache was
    /// bypassed (`without_cache`, a zero TTL, after `shutdown`). Also when the result is an
    /// `Err` or `None` that is not cached.
    Loaded,
    /// A value past its TTL, kept by `stale_for`: the reload failed, or was slower than
    /// `soft_timeout`.
    Stale,
}

impl Source {
    /// Whether the value was served from the cache (L1, L2, or stale) rather than produced
    /// by the function's body for this call or a concurrent one: `cached`'s `was_cached`.
    pub fn is_cached(self) -> bool {
        matches!(self, Source::L1 | Source::L2 | Source::Stale)
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::L1Hit => Source::L1,
            Outcome::L2Hit => Source::L2,
            Outcome::Joined => Source::Joined,
            Outcome::Loaded | Outcome::Failed => Source::Loaded,
            Outcome::Stale => Source::Stale,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::L1 => "l1",
            Source::L2 => "l2",
            Source::Joined => "joined",
            Source::Loaded => "loaded",
            Source::Stale => "stale",
        })
    }
}

/// The answer of one `with_source` call, or a silent one (inside a load's body).
struct Report {
    on: bool,
    source: Cell<Option<Source>>,
}

tokio::task_local! {
    static REPORT: Report;
}

/// How many `with_source` calls are in the air, process-wide: the hit path looks for a
/// report only when some are.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

struct Active;

impl Active {
    fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records how the current call ended, when a `with_source` call waits for it. The last
/// record wins: a failed reload records `Loaded`, then `Stale` when it serves a stale value.
#[inline]
pub(crate) fn report(outcome: Outcome) {
    if ACTIVE.load(Ordering::Relaxed) != 0 {
        report_slow(outcome);
    }
}

#[cold]
fn report_slow(outcome: Outcome) {
    let _ = REPORT.try_with(|report| {
        if report.on {
            report.source.set(Some(Source::of(outcome)));
        }
    });
}

/// Runs `call` (a call of a cached function) and says where its value came from. Every way
/// of answering but an L1 hit records itself (a body run without the cache too), so a call
/// that recorded nothing was an L1 hit.
pub async fn with_source<F: Future>(call: F) -> (F::Output, Source) {
    let _active = Active::new();
    let report = Report {
        on: true,
        source: Cell::new(None),
    };
    REPORT
        .scope(report, async move {
            let out = call.await;
            let source = REPORT
                .try_with(|r| r.source.get())
                .ok()
                .flatten()
                .unwrap_or(Source::L1);
            (out, source)
        })
        .await
}

/// `body` (a load's, or one run without the cache) under a silent report: the cached calls
/// it makes do not answer for the call that runs it.
pub(crate) fn silenced<F: Future>(body: F) -> impl Future<Output = F::Output> {
    REPORT.scope(
        Report {
            on: false,
            source: Cell::new(None),
        },
        body,
    )
}
