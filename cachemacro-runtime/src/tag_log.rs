//! The recent tag invalidations this process applied (its own, and those it heard from
//! its peers), in order: what tells a load whose body chose a tag (`entry().tag(..)`)
//! that the tag was invalidated while it ran, before the entry could be registered under
//! it.
//!
//! A load notes the log's position when it begins; when its body returns, it registers
//! the entry under the tags the body chose, then asks whether one of them was invalidated
//! since that position. An invalidation logged after the question finds the registration
//! (it is logged before the registry is taken), so one of the two always keeps the value
//! out. The log keeps the last [`KEPT`] invalidations: a load older than that cannot be
//! told apart from one that was invalidated, and its value is not cached.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// How many invalidations the log keeps.
const KEPT: usize = 4096;

pub(crate) struct TagLog {
    /// The position of the next invalidation.
    next: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    /// The invalidations from `first` on, with their positions.
    tags: VecDeque<(u64, Box<str>)>,
    /// The oldest position still kept; positions before it were dropped.
    first: u64,
}

impl Default for TagLog {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(0),
            recent: Mutex::new(Recent::default()),
        }
    }
}

impl TagLog {
    /// The position a load that begins now notes.
    pub(crate) fn position(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Logs an invalidation of `tag`, before its entries are dropped.
    pub(crate) fn record(&self, tag: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let at = self.next.fetch_add(1, Ordering::SeqCst);
        recent.tags.push_back((at, tag.into()));
        if recent.tags.len() > KEPT {
            recent.tags.pop_front();
            recent.first = recent.tags.front().map_or(at + 1, |(p, _)| *p);
        }
    }

    /// Whether one of `tags` was invalidated at or after position `since`, or may have
    /// been (the log no longer reaches back that far).
    pub(crate) fn invalidated_since(&self, since: u64, tags: &[String]) -> bool {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if since < recent.first {
            return true;
        }
        recent
            .tags
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .any(|(_, tag)| tags.iter().any(|t| **t == **tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_after_the_position_is_found_one_before_it_is_not() {
        let log = TagLog::default();
        log.record("a");
        let since = log.position();
        assert!(!log.invalidated_since(since, &["a".into()]));
        log.record("b");
        assert!(log.invalidated_since(since, &["b".into(), "c".into()]));
        assert!(!log.invalidated_since(since, &["a".into()]));
    }

    #[test]
    fn a_position_older_than_the_log_counts_as_invalidated() {
        let log = TagLog::default();
        let since = log.position();
        for i in 0..=KEPT {
            log.record(&format!("t{i}"));
        }
        assert!(log.invalidated_since(since, &["nothing".into()]));
        let later = log.position();
        assert!(!log.invalidated_since(later, &["nothing".into()]));
        assert!(log.recent.lock().unwrap().tags.len() <= KEPT);
    }
}
