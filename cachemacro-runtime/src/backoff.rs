//! The pause between two attempts to reach Redis, shared by the data connection, the bus
//! and the bus's healers: no pause before the first retry (a blip is over at once), then
//! from 25 ms, doubling up to a cap (the cache's `redis_cooldown`).

use std::time::Duration;

/// The first pause after a failed retry.
const MIN: Duration = Duration::from_millis(25);

/// The pauses of one series of attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// A series whose first pause is none, and whose pauses grow up to `cap` (at least
    /// 25 ms).
    pub(crate) fn new(cap: Duration) -> Self {
        Self {
            next: Duration::ZERO,
            cap: cap.max(MIN),
        }
    }

    /// A series that starts with a pause of 25 ms: for an attempt right after a failure
    /// (a node that just closed a connection is not back at once).
    pub(crate) fn after_failure(cap: Duration) -> Self {
        Self {
            next: MIN,
            cap: cap.max(MIN),
        }
    }

    /// The pause before the next attempt; the one after it doubles.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).clamp(MIN, self.cap);
        pause
    }

    /// Starts the series again: the next pause is none.
    pub(crate) fn reset(&mut self) {
        self.next = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_start_at_none_then_double_from_25_ms_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(150));
        let pauses: Vec<u64> = (0..6)
            .map(|_| backoff.next_pause().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [0, 25, 50, 100, 150, 150]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::ZERO);
        let mut after = Backoff::after_failure(Duration::ZERO);
        assert_eq!(after.next_pause(), MIN);
        assert_eq!(after.next_pause(), MIN, "a cap below 25 ms is 25 ms");
    }
}
