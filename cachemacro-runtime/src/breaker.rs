//! A circuit breaker for Redis: after a few failures in a row, reads stop waiting on Redis
//! for a cool-down, so an outage costs one timeout, not one per request.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::envelope::now_ms;

/// Consecutive failures that open the circuit.
const THRESHOLD: u32 = 3;

/// Closed (Redis is tried), or open until a moment (reads skip Redis until then; the first
/// read after it tries again, and one success closes the circuit).
pub(crate) struct Breaker {
    failures: AtomicU32,
    /// Every failure recorded, for the stats.
    errors: AtomicU64,
    open_until_ms: AtomicU64,
    cooldown: Duration,
}

impl Breaker {
    pub(crate) fn new(cooldown: Duration) -> Self {
        Self {
            failures: AtomicU32::new(0),
            errors: AtomicU64::new(0),
            open_until_ms: AtomicU64::new(0),
            cooldown,
        }
    }

    /// How long reads should still skip Redis; `None` when they may try it.
    pub(crate) fn open_for(&self) -> Option<Duration> {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        until
            .checked_sub(now_ms())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    }

    /// Records the outcome of a Redis call.
    pub(crate) fn record<T, E>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                    self.open_until_ms.store(0, Ordering::Relaxed);
                    tracing::info!("cache: Redis answers again");
                }
            }
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= THRESHOLD {
                    let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
                    self.open_until_ms
                        .store(now_ms().saturating_add(cooldown), Ordering::Relaxed);
                    if failures == THRESHOLD {
                        tracing::warn!(
                            cooldown = ?self.cooldown,
                            "cache: Redis failed {THRESHOLD} times in a row; reads skip it during the cool-down"
                        );
                    }
                }
            }
        }
    }

    /// How many failures were recorded in all.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether the circuit is closed (Redis is being used).
    pub(crate) fn is_closed(&self) -> bool {
        self.failures.load(Ordering::Relaxed) < THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let breaker = Breaker::new(Duration::from_secs(60));
        let fail: Result<(), ()> = Err(());
        breaker.record(&fail);
        breaker.record(&fail);
        assert!(breaker.is_closed() && breaker.open_for().is_none());
        breaker.record(&fail);
        assert!(!breaker.is_closed());
        assert!(breaker
            .open_for()
            .is_some_and(|d| d > Duration::from_secs(50)));
        breaker.record(&Ok::<(), ()>(()));
        assert!(breaker.is_closed() && breaker.open_for().is_none());
    }

    #[test]
    fn a_success_between_failures_keeps_it_closed() {
        let breaker = Breaker::new(Duration::from_secs(60));
        for _ in 0..10 {
            breaker.record(&Err::<(), ()>(()));
            breaker.record(&Err::<(), ()>(()));
            breaker.record(&Ok::<(), ()>(()));
        }
        assert!(breaker.is_closed());
    }
}
