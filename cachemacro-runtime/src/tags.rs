//! The tag registry of a cache without Redis: which storage keys depend on each tag.
//!
//! Keys whose entries expired or were evicted stay listed until their tag is invalidated,
//! so the registry prunes them; a prune runs only once a tag (or the number of tags) has
//! doubled since the last one, which keeps registering O(1) amortized however many keys a
//! tag has.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A tag's keys, pruned when they double.
struct Keys {
    keys: HashSet<String>,
    /// Prune when `keys` grows past this.
    next_prune: usize,
}

/// Tags and the storage keys that depend on them.
pub(crate) struct LocalTags {
    state: Mutex<State>,
    /// The fewest keys a tag holds before it is pruned.
    keys_floor: usize,
    /// The fewest tags before tags without live keys are swept.
    tags_floor: usize,
}

struct State {
    tags: HashMap<String, Keys>,
    /// Sweep the tags when there are more than this.
    next_sweep: usize,
}

impl LocalTags {
    /// A registry that starts pruning a tag at `keys_floor` keys, and sweeping tags at
    /// `tags_floor` tags.
    pub(crate) fn new(keys_floor: usize, tags_floor: usize) -> Self {
        Self {
            state: Mutex::new(State {
                tags: HashMap::new(),
                next_sweep: tags_floor,
            }),
            keys_floor,
            tags_floor,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `key` depends on each of `tags`. `live` tells whether a key may still
    /// have an entry (cached, or loading): the others are pruned.
    pub(crate) fn register(&self, tags: &[String], key: &str, live: impl Fn(&str) -> bool) {
        let floor = self.keys_floor;
        let mut state = self.state();
        for tag in tags {
            let entry = state.tags.entry(tag.clone()).or_insert_with(|| Keys {
                keys: HashSet::new(),
                next_prune: floor,
            });
            entry.keys.insert(key.to_owned());
            if entry.keys.len() > entry.next_prune {
                entry.keys.retain(|k| live(k));
                entry.next_prune = floor.max(2 * entry.keys.len());
            }
        }
        if state.tags.len() > state.next_sweep {
            state.tags.retain(|_, entry| {
                entry.keys.retain(|k| live(k));
                !entry.keys.is_empty()
            });
            state.next_sweep = self.tags_floor.max(2 * state.tags.len());
        }
    }

    /// Removes `tag` and returns the keys that depended on it.
    pub(crate) fn take(&self, tag: &str) -> HashSet<String> {
        self.state()
            .tags
            .remove(tag)
            .map(|entry| entry.keys)
            .unwrap_or_default()
    }

    /// How many keys are listed under `tag` (for tests).
    #[cfg(test)]
    fn len(&self, tag: &str) -> usize {
        self.state().tags.get(tag).map_or(0, |e| e.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn dead_keys_are_pruned_as_the_tag_doubles() {
        let tags = LocalTags::new(8, 8);
        let checks = Cell::new(0);
        let live = |k: &str| {
            checks.set(checks.get() + 1);
            k.ends_with('0')
        };
        for i in 0..10_000 {
            tags.register(&["all".into()], &format!("k{i}"), live);
        }
        // Live keys: every tenth; the rest were pruned along the way.
        assert!(tags.len("all") <= 2 * 1000 + 16, "{}", tags.len("all"));
        // Amortized O(1): about a constant number of liveness checks per registration.
        assert!(checks.get() < 4 * 10_000, "{} checks", checks.get());
        let listed = tags.len("all");
        assert_eq!(tags.take("all").len(), listed);
        assert_eq!(tags.len("all"), 0);
    }

    #[test]
    fn tags_without_live_keys_are_swept() {
        let tags = LocalTags::new(4, 4);
        for i in 0..1000 {
            tags.register(&[format!("t{i}")], &format!("k{i}"), |_| false);
        }
        assert!(tags.state().tags.len() <= 8);
    }
}
