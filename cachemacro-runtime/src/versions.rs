//! Group versions as this process knows them (the *versioned keys* pattern), so that reading
//! one costs a lookup in memory, not a Redis round trip.
//!
//! A version only ever grows here: a bump on this instance raises it at once, a bump on
//! another instance raises it when the bus message arrives, and a version older than the
//! refresh period is read again from Redis (the safety net for a message that was lost).
//! When the bus drops, every version is read again before it is used; when Redis cannot be
//! read, the last known version is used (fail-open).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Known {
    version: u64,
    /// When it was last confirmed (read from Redis, bumped, or heard on the bus); `None`
    /// when it must be confirmed before use.
    confirmed: Option<Instant>,
}

/// The versions this process knows, by group name.
pub(crate) struct Versions {
    groups: RwLock<HashMap<String, Known>>,
    refresh: Duration,
}

impl Versions {
    pub(crate) fn new(refresh: Duration) -> Self {
        Self {
            groups: RwLock::new(HashMap::new()),
            refresh,
        }
    }

    /// The version of `group` if it was confirmed within the refresh period.
    pub(crate) fn fresh(&self, group: &str) -> Option<u64> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let known = groups.get(group)?;
        let confirmed = known.confirmed?;
        (confirmed.elapsed() < self.refresh).then_some(known.version)
    }

    /// The last version of `group` this process knew, however old (0 when none).
    pub(crate) fn last_known(&self, group: &str) -> u64 {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        groups.get(group).map_or(0, |k| k.version)
    }

    /// Records that `group` is at `version` or later (just confirmed); returns the version
    /// it is at now (it never goes back).
    pub(crate) fn raise(&self, group: &str, version: u64) -> u64 {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        let known = groups.entry(group.to_owned()).or_insert(Known {
            version,
            confirmed: None,
        });
        known.version = known.version.max(version);
        known.confirmed = Some(Instant::now());
        known.version
    }

    /// Moves `group` to its next version, for a cache without Redis: under one lock, so
    /// two bumps at once never return the same version.
    pub(crate) fn bump(&self, group: &str) -> u64 {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        let known = groups.entry(group.to_owned()).or_insert(Known {
            version: 0,
            confirmed: None,
        });
        known.version += 1;
        known.confirmed = Some(Instant::now());
        known.version
    }

    /// Every version must be confirmed again before use (bumps may have been missed).
    pub(crate) fn doubt_all(&self) {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        for known in groups.values_mut() {
            known.confirmed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_never_go_back() {
        let versions = Versions::new(Duration::from_secs(60));
        assert_eq!(versions.fresh("g"), None);
        assert_eq!(versions.raise("g", 5), 5);
        assert_eq!(versions.raise("g", 3), 5, "an older answer does not win");
        assert_eq!(versions.fresh("g"), Some(5));
        versions.doubt_all();
        assert_eq!(versions.fresh("g"), None, "must be confirmed again");
        assert_eq!(versions.last_known("g"), 5);
        assert_eq!(versions.bump("g"), 6);
    }

    #[test]
    fn a_version_older_than_the_refresh_period_is_not_fresh() {
        let versions = Versions::new(Duration::from_millis(10));
        versions.raise("g", 1);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(versions.fresh("g"), None);
        assert_eq!(versions.last_known("g"), 1);
    }
}
