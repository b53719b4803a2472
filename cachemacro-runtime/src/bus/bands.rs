//! Which parts of the bus this instance hears, and so which L1 entries it may serve.
//!
//! The sharded bus carries each message on the channel of its subject's *band* (a range of
//! 1024 slots, see [`shard_channels`](super::shard_channels)). When the primary serving a
//! channel dies, only the messages of its bands go unheard; the channels of the other
//! primaries stay subscribed. An L1 entry may be served only while every band that could
//! carry its invalidation is heard:
//!
//! - band 0, which carries `clr` (a message without a subject) and so concerns every entry;
//! - the band of its storage key (`del`);
//! - for a key in a scope, the band of the scope's prefix (`pfx`: `Scope::clear`, `purge`);
//! - the bands of its tags (`tag`: the peers drop what their own registries list).
//!
//! Group versions (`ver <version> <group>`) land on a band that changes with every bump, so
//! they are trusted only while every band is heard ([`Hearing::all`]).
//!
//! A classic subscription carries every band: losing it is losing all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::SHARDS;

/// A set of bands, one bit each (bit `i`: band `i`).
pub(crate) type Bands = u32;

/// Every band.
pub(crate) const ALL: Bands = (1 << SHARDS) - 1;

/// The band that carries `clr`, the message without a subject.
const CLEAR_BAND: Bands = 1;

/// The band of `subject`: that of its slot.
pub(crate) fn band_of(subject: &str) -> usize {
    usize::from(crate::l2::slot(subject.as_bytes())) / 1024
}

/// The band of `subject`, as a set.
fn bit(subject: &str) -> Bands {
    1 << band_of(subject)
}

/// The bands of a list of tag names.
pub(crate) fn bits_of<'t>(tags: impl IntoIterator<Item = &'t str>) -> Bands {
    tags.into_iter().fold(0, |bands, tag| bands | bit(tag))
}

/// `bands` for a log line: their slots, contiguous bands merged (`slots 0-3071, 8192-9215`).
pub(crate) fn describe(bands: Bands) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for band in (0..SHARDS).filter(|band| bands & (1 << band) != 0) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == band => *end = band,
            _ => ranges.push((band, band)),
        }
    }
    let slots: Vec<String> = ranges
        .iter()
        .map(|(first, last)| format!("{}-{}", first * 1024, last * 1024 + 1023))
        .collect();
    format!("slots {}", slots.join(", "))
}

/// What this instance hears of the bus, shared by the listener (which changes it) and the
/// cache (which asks it before serving from L1).
pub(crate) struct Hearing {
    /// The bands not heard now: [`ALL`] until the first subscription, and while the whole
    /// subscription is being made again.
    down: AtomicU32,
    /// `<namespace>:c1:`, to find a key's scope.
    root: Arc<str>,
    /// The keys of this process with a tag in a band that went unheard, and their tags'
    /// bands: while one of those is unheard, the key's entry is not served. Kept only while
    /// some band is unheard (emptied when all are heard again).
    tainted: Mutex<HashMap<Box<str>, Bands>>,
}

impl Hearing {
    pub(crate) fn new(root: Arc<str>) -> Self {
        Self {
            down: AtomicU32::new(ALL),
            root,
            tainted: Mutex::new(HashMap::new()),
        }
    }

    /// Whether every band is heard.
    #[inline]
    pub(crate) fn all(&self) -> bool {
        self.down.load(Ordering::Acquire) == 0
    }

    /// The bands not heard now.
    pub(crate) fn down(&self) -> Bands {
        self.down.load(Ordering::Acquire)
    }

    /// Whether every band that could carry an invalidation of `skey` is heard.
    #[inline]
    pub(crate) fn hears(&self, skey: &str) -> bool {
        let down = self.down.load(Ordering::Acquire);
        down == 0 || self.hears_while(skey, down)
    }

    #[cold]
    fn hears_while(&self, skey: &str, down: Bands) -> bool {
        if down & CLEAR_BAND != 0 || down & bit(skey) != 0 {
            return false;
        }
        if let Some(scope) = self.scope_prefix(skey) {
            if down & bit(scope) != 0 {
                return false;
            }
        }
        let tainted = self.tainted.lock().unwrap_or_else(PoisonError::into_inner);
        tainted.get(skey).is_none_or(|bands| bands & down == 0)
    }

    /// Whether an invalidation of `skey` could travel on one of `bands`: the entries
    /// [`Peer::flush_bands`](super::Peer::flush_bands) drops (tags aside, which the cache
    /// knows).
    pub(crate) fn carried_by(&self, skey: &str, bands: Bands) -> bool {
        bands & (CLEAR_BAND | bit(skey)) != 0
            || self
                .scope_prefix(skey)
                .is_some_and(|scope| bands & bit(scope) != 0)
    }

    /// `<root>s:<scope>:` for a key in a scope (scope names are escaped: they hold no `:`).
    fn scope_prefix<'k>(&self, skey: &'k str) -> Option<&'k str> {
        let rest = skey.strip_prefix(&*self.root)?.strip_prefix("s:")?;
        let end = self.root.len() + 2 + rest.find(':')? + 1;
        Some(&skey[..end])
    }

    /// The bands of `tags` of `skey`'s entry: while one of them is unheard, the entry is
    /// not served. A no-op while every band is heard.
    pub(crate) fn taint(&self, skey: &str, bands: Bands) {
        if bands & self.down() == 0 {
            return;
        }
        let mut tainted = self.tainted.lock().unwrap_or_else(PoisonError::into_inner);
        *tainted.entry(skey.into()).or_default() |= bands;
    }

    /// `bands` are no longer heard. Call before dropping the entries they carry.
    pub(crate) fn lose(&self, bands: Bands) {
        self.down.fetch_or(bands, Ordering::AcqRel);
    }

    /// `bands` are heard again. Call after dropping what was loaded while they were not.
    pub(crate) fn regain(&self, bands: Bands) {
        let before = self.down.fetch_and(!bands, Ordering::AcqRel);
        if before & !bands == 0 {
            self.tainted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of another band than `than`'s, and not in band 0.
    fn key_away_from(than: &str) -> String {
        (0..)
            .map(|i| format!("ns:c1:k:user:{i}"))
            .find(|k| band_of(k) != band_of(than) && band_of(k) != 0)
            .unwrap()
    }

    #[test]
    fn an_entry_is_served_while_the_bands_of_its_key_scope_tags_and_clear_are_heard() {
        let hearing = Hearing::new("ns:c1:".into());
        assert!(
            !hearing.hears("ns:c1:k:a"),
            "nothing is heard before subscribing"
        );
        hearing.regain(ALL);
        let key = key_away_from("ns:c1:k:x");
        assert!(hearing.hears(&key));

        // Another band down: the key is still served.
        let other = key_away_from(&key);
        hearing.lose(bit(&other));
        assert!(hearing.hears(&key));
        assert!(!hearing.hears(&other));
        assert!(!hearing.all());

        // Its tag's band down: not served, until it is heard again.
        hearing.taint(&key, bit(&other));
        assert!(!hearing.hears(&key));
        hearing.regain(bit(&other));
        assert!(hearing.hears(&key) && hearing.all());

        // Band 0 carries `clr`: nothing is served without it.
        hearing.lose(CLEAR_BAND);
        assert!(!hearing.hears(&key));
        hearing.regain(CLEAR_BAND);
        assert!(hearing.hears(&key));
    }

    #[test]
    fn a_scoped_key_needs_the_band_of_its_scope() {
        let hearing = Hearing::new("ns:c1:".into());
        hearing.regain(ALL);
        let scoped = (0..)
            .map(|i| format!("ns:c1:s:users{i}:k"))
            .find(|k| {
                let scope = &k[..k.len() - 1];
                band_of(scope) != band_of(k) && band_of(scope) != 0 && band_of(k) != 0
            })
            .unwrap();
        let scope = &scoped[..scoped.len() - 1];
        assert_eq!(hearing.scope_prefix(&scoped), Some(scope));
        assert_eq!(hearing.scope_prefix("ns:c1:k:s:x:y"), None);
        assert!(hearing.carried_by(&scoped, bit(scope)));
        hearing.lose(bit(scope));
        assert!(!hearing.hears(&scoped));
    }

    #[test]
    fn bands_are_described_by_their_slots() {
        assert_eq!(describe(0b1011), "slots 0-2047, 3072-4095");
        assert_eq!(describe(ALL), "slots 0-16383");
    }

    #[test]
    fn the_taints_are_dropped_once_every_band_is_heard() {
        let hearing = Hearing::new("ns:c1:".into());
        hearing.regain(ALL);
        hearing.taint("k", 0b10);
        assert!(
            hearing.tainted.lock().unwrap().is_empty(),
            "nothing is down"
        );
        hearing.lose(0b110);
        hearing.taint("k", 0b10);
        hearing.regain(0b10);
        assert_eq!(
            hearing.tainted.lock().unwrap().len(),
            1,
            "band 2 is still down"
        );
        hearing.regain(0b100);
        assert!(hearing.tainted.lock().unwrap().is_empty());
    }
}
