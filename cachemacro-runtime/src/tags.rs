//! The tag registry of this process: which storage keys its L1 holds (or loads) depend on
//! each tag. It is what a tag invalidation drops locally, here and on the peers that hear
//! it, with or without Redis, and even when Redis lost the tag's sets.
//!
//! Keys whose entries expired or were evicted stay listed until their tag is invalidated,
//! so the registry sweeps them; a sweep runs only once the registrations have doubled since
//! the last one, which keeps registering O(1) amortized and the registry within twice the
//! live registrations.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Tags and the storage keys that depend on them.
pub(crate) struct LocalTags {
    state: Mutex<State>,
    /// The fewest registrations before the dead ones are swept.
    floor: usize,
}

struct State {
    tags: HashMap<Box<str>, Keys>,
    /// How many (tag, key) registrations `tags` holds.
    registrations: usize,
    /// Sweep when there are more registrations than this.
    next_sweep: usize,
}

/// The keys of one tag. Most tags name one entity (`user:<id>`) and list one key: it is
/// kept without a set of its own (a set of one costs about 200 bytes more), and the set of
/// the others is boxed on purpose, so that a tag's slot in the map stays small (unboxed,
/// the memory bench's tagged entry took 180 bytes of registry instead of 138).
#[allow(clippy::box_collection)]
enum Keys {
    One(Box<str>),
    Many(Box<HashSet<Box<str>>>),
}

impl Keys {
    /// Adds `key`; returns whether it was not listed yet.
    fn insert(&mut self, key: &str) -> bool {
        match self {
            Keys::One(one) if &**one == key => false,
            Keys::One(one) => {
                let first = std::mem::take(one);
                *self = Keys::Many(Box::new(HashSet::from([first, key.into()])));
                true
            }
            Keys::Many(many) => {
                if many.contains(key) {
                    false
                } else {
                    many.insert(key.into())
                }
            }
        }
    }

    /// Keeps the keys `live` holds; returns how many are left.
    fn retain(&mut self, live: impl Fn(&str) -> bool) -> usize {
        match self {
            Keys::One(one) => usize::from(live(one)),
            Keys::Many(many) => {
                many.retain(|k| live(k));
                many.len()
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::One(_) => 1,
            Keys::Many(many) => many.len(),
        }
    }

    fn into_set(self) -> HashSet<Box<str>> {
        match self {
            Keys::One(one) => HashSet::from([one]),
            Keys::Many(many) => *many,
        }
    }
}

impl LocalTags {
    /// A registry that sweeps its dead registrations once it holds more than `floor`, and
    /// then whenever they double: it never holds more than twice the live ones (or `floor`).
    pub(crate) fn new(floor: usize) -> Self {
        Self {
            state: Mutex::new(State {
                tags: HashMap::new(),
                registrations: 0,
                next_sweep: floor,
            }),
            floor,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `key` depends on each of `tags` (their names). `live` tells whether a
    /// key may still have an entry (cached, or loading): the others are swept.
    pub(crate) fn register<'t>(
        &self,
        tags: impl IntoIterator<Item = &'t str>,
        key: &str,
        live: impl Fn(&str) -> bool,
    ) {
        let mut state = self.state();
        for tag in tags {
            let added = match state.tags.get_mut(tag) {
                Some(keys) => keys.insert(key),
                None => {
                    state.tags.insert(tag.into(), Keys::One(key.into()));
                    true
                }
            };
            state.registrations += usize::from(added);
        }
        if state.registrations > state.next_sweep {
            let mut left = 0;
            state.tags.retain(|_, keys| {
                let kept = keys.retain(&live);
                left += kept;
                kept > 0
            });
            state.registrations = left;
            state.next_sweep = self.floor.max(2 * left);
        }
    }

    /// Removes `tag` and returns the keys that depended on it.
    pub(crate) fn take(&self, tag: &str) -> HashSet<Box<str>> {
        let mut state = self.state();
        let Some(keys) = state.tags.remove(tag) else {
            return HashSet::new();
        };
        state.registrations -= keys.len();
        keys.into_set()
    }

    /// The keys listed under the tags `pick` picks.
    pub(crate) fn keys_where(&self, pick: impl Fn(&str) -> bool) -> HashSet<Box<str>> {
        let state = self.state();
        let mut keys = HashSet::new();
        for (_, listed) in state.tags.iter().filter(|(tag, _)| pick(tag)) {
            match listed {
                Keys::One(one) => {
                    keys.insert(one.clone());
                }
                Keys::Many(many) => keys.extend(many.iter().cloned()),
            }
        }
        keys
    }

    /// How many keys are listed under `tag` (for tests).
    #[cfg(test)]
    fn len(&self, tag: &str) -> usize {
        self.state().tags.get(tag).map_or(0, Keys::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn dead_keys_are_swept_as_the_registrations_double() {
        let tags = LocalTags::new(8);
        let checks = Cell::new(0);
        let live = |k: &str| {
            checks.set(checks.get() + 1);
            k.ends_with('0')
        };
        for i in 0..10_000 {
            tags.register(["all"], &format!("k{i}"), live);
        }
        // Live keys: every tenth; the rest were swept along the way.
        assert!(tags.len("all") <= 2 * 1000 + 16, "{}", tags.len("all"));
        // Amortized O(1): about a constant number of liveness checks per registration.
        assert!(checks.get() < 4 * 10_000, "{} checks", checks.get());
        let listed = tags.len("all");
        assert_eq!(tags.take("all").len(), listed);
        assert_eq!(tags.len("all"), 0);
        assert_eq!(tags.state().registrations, 0);
    }

    #[test]
    fn a_tag_takes_two_words_in_the_map() {
        assert!(std::mem::size_of::<Keys>() <= 16);
    }

    #[test]
    fn a_tag_of_one_key_grows_into_a_set_and_lists_each_key_once() {
        let tags = LocalTags::new(100);
        tags.register(["t"], "a", |_| true);
        tags.register(["t"], "a", |_| true);
        assert_eq!(tags.len("t"), 1);
        tags.register(["t"], "b", |_| true);
        tags.register(["t"], "a", |_| true);
        assert_eq!(tags.len("t"), 2);
        assert_eq!(tags.state().registrations, 2);
        let taken = tags.take("t");
        assert!(taken.contains("a") && taken.contains("b") && taken.len() == 2);
        assert_eq!(tags.state().registrations, 0);
    }

    #[test]
    fn many_tags_of_few_dead_keys_are_swept_too() {
        let tags = LocalTags::new(4);
        for i in 0..1000 {
            let own = format!("t{i}");
            tags.register([own.as_str(), "all"], &format!("k{i}"), |_| false);
        }
        let state = tags.state();
        assert!(state.tags.len() <= 8, "{} tags", state.tags.len());
        assert!(state.registrations <= 8, "{}", state.registrations);
    }
}
