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

/// Records the name of `T`, a type this process caches.
pub(crate) fn remember<T: 'static>() {
    let id = TypeId::of::<T>();
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
