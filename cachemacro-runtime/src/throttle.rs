//! Rate-limited logging: a warning that repeats (one per read while Redis is away, one per
//! load under `OOM`) is logged the first time, then at most once per period with the count
//! of those left out, so a fault cannot flood the logs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::l1::clock::exact_ms as now_ms;

/// Lets one event through per period and counts the rest.
#[derive(Debug)]
pub(crate) struct Throttle {
    period_ms: u64,
    /// When an event last went through, in ms of the L1 clock, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
    fired: AtomicBool,
}

impl Throttle {
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period_ms: period.as_millis() as u64,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            fired: AtomicBool::new(false),
        }
    }

    /// `Some(n)` when this event should be logged, `n` being how many were left out since
    /// the last one logged; `None` to leave it out.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = now_ms() + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.period_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another thread logs this period's line.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.fired.store(true, Ordering::Relaxed);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }

    /// Whether an event went through since the last [`reset`](Self::reset).
    pub(crate) fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }

    /// Starts afresh: the next event is logged at once (after the fault is over).
    pub(crate) fn reset(&self) {
        self.last.store(0, Ordering::Relaxed);
        self.suppressed.store(0, Ordering::Relaxed);
        self.fired.store(false, Ordering::Relaxed);
    }
}

/// Logs a `tracing` warning at most once per 5 seconds from this call site, with the count
/// of the ones left out as the field `suppressed`.
macro_rules! warn_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::throttle::Throttle =
            $crate::throttle::Throttle::new(::std::time::Duration::from_secs(5));
        if let Some(suppressed) = THROTTLE.allow() {
            ::tracing::warn!(target: "cachemacro", suppressed, $($arg)+);
        }
    }};
}

pub(crate) use warn_throttled;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_through_per_period_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.allow(), None);
        }
        t.reset();
        assert_eq!(t.allow(), Some(0));
        assert!(t.has_fired());
    }

    #[test]
    fn reports_what_it_left_out() {
        let t = Throttle::new(Duration::from_millis(20));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.allow(), Some(2));
    }
}
