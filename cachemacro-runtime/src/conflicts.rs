//! Type conflicts: two functions with one key template, or one key read as two types. Each
//! call then finds the other's value, treats it as a miss and replaces it, so the two evict
//! each other on every call. Nothing is wrong with any value returned, but the cache is
//! useless for both, so the first time a pair of types meets under a key it is logged (once
//! per pair, naming both), and every time it is counted.
//!
//! Values are type-erased in L1 and fingerprinted in Redis, so the type found is known only
//! as a `TypeId` or a fingerprint: this process records the names of the types it caches,
//! which names the other side whenever it is one of this process's own types.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use once_cell::sync::Lazy;

/// Names of the types this process caches, by `TypeId` and by fingerprint (with the schema
/// version).
#[derive(Default)]
struct Names {
    by_id: HashMap<TypeId, &'static str>,
    by_fingerprint: HashMap<u64, (&'static str, u32)>,
}

static NAMES: Lazy<RwLock<Names>> = Lazy::new(Default::default);
/// The pairs of types already reported, in either order.
static WARNED: Lazy<Mutex<HashSet<(String, String)>>> = Lazy::new(Default::default);

/// What was recorded lately, checked before taking [`NAMES`]'s lock: the names are recorded
/// on every L1 fill and L2 read, and a lock taken there for reading alone still makes the
/// threads of a busy process write one shared word. A slot keeps the last token recorded
/// through it; a token found in its slot was recorded, any other goes to the lock.
struct Recent([AtomicU64; 256]);

impl Recent {
    /// Whether `token` was recorded (`false` may also mean only that its slot was reused).
    fn has(&self, token: u64) -> bool {
        self.0[Self::slot(token)].load(Ordering::Relaxed) == token
    }

    /// Notes that `token` is recorded.
    fn note(&self, token: u64) {
        self.0[Self::slot(token)].store(token, Ordering::Relaxed);
    }

    /// Runs `record` unless `token` was noted, then notes it. A token of 0 would match an
    /// empty slot, so it is never taken as noted.
    fn record_once(&self, token: u64, record: impl FnOnce()) {
        if token != 0 && self.has(token) {
            return;
        }
        record();
        self.note(token);
    }

    fn slot(token: u64) -> usize {
        (token ^ (token >> 32)) as usize % 256
    }
}

static RECENT: Recent = Recent([const { AtomicU64::new(0) }; 256]);

/// A token for a type id: its hash.
fn token_of(id: TypeId) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// Records the name of `T`, a type this process caches.
pub(crate) fn remember<T: 'static>() {
    let id = TypeId::of::<T>();
    RECENT.record_once(token_of(id), || remember_id::<T>(id));
}

fn remember_id<T>(id: TypeId) {
    if NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .by_id
        .contains_key(&id)
    {
        return;
    }
    NAMES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .by_id
        .insert(id, std::any::type_name::<T>());
}

/// Records that values of `T` at `version` carry `fingerprint` in Redis.
pub(crate) fn remember_fingerprint<T>(fingerprint: u64, version: u32) {
    RECENT.record_once(fingerprint, || {
        remember_fingerprint_locked::<T>(fingerprint, version)
    });
}

fn remember_fingerprint_locked<T>(fingerprint: u64, version: u32) {
    if NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .by_fingerprint
        .contains_key(&fingerprint)
    {
        return;
    }
    NAMES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .by_fingerprint
        .insert(fingerprint, (std::any::type_name::<T>(), version));
}

/// The name of a type this process caches.
pub(crate) fn name_of(id: TypeId) -> Option<&'static str> {
    NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .by_id
        .get(&id)
        .copied()
}

/// The type and version behind a fingerprint, when this process caches that type.
pub(crate) fn fingerprint_of(fingerprint: u64) -> Option<(&'static str, u32)> {
    NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .by_fingerprint
        .get(&fingerprint)
        .copied()
}

/// Logs, once per pair of types (in either order), that `key` holds a `found` where a `T`
/// was read.
pub(crate) fn report<T>(key: &str, found: Option<&str>) {
    let expected = std::any::type_name::<T>();
    let found = found.unwrap_or("value of a type this process does not cache");
    let pair = if expected <= found {
        (expected.to_owned(), found.to_owned())
    } else {
        (found.to_owned(), expected.to_owned())
    };
    if !WARNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(pair)
    {
        return;
    }
    tracing::warn!(
        target: "cachemacro",
        key,
        expected,
        found,
        "cache: a key holds another type than the one read: two functions share a key template, or one key is read as two types, and each call evicts the other; give them different key templates or scopes"
    );
}
