//! How a cached function's return value maps to the value that is cached.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type whose values can be cached: held in L1 as they are, encoded for L2.
///
/// Implemented for every `Clone + Serialize + DeserializeOwned + Send + Sync + 'static` type.
pub trait CacheValue: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> CacheValue for T {}

/// How a function returning `R` is cached: which part of `R` is stored, and how a stored
/// value becomes an `R` again. Chosen by `#[cached]` from the function's return type.
pub trait Mode<R> {
    /// The cached value.
    type Value: CacheValue;

    /// The value to cache, or `None` when `r` must not be cached (an `Err`, a `None`).
    fn split(r: &R) -> Option<Self::Value>;

    /// Rebuilds the function's return value from a cached value.
    fn wrap(value: Self::Value) -> R;
}

/// Caches every return value: a function returning `T`, or `Option<T>` with
/// `cache_none = true`.
pub struct Always;

impl<T: CacheValue> Mode<T> for Always {
    type Value = T;

    #[inline]
    fn split(r: &T) -> Option<T> {
        Some(r.clone())
    }

    #[inline]
    fn wrap(value: T) -> T {
        value
    }
}

/// Caches `Ok` values; an `Err` is returned to the caller and never cached.
pub struct OkOnly;

impl<T: CacheValue, E> Mode<Result<T, E>> for OkOnly {
    type Value = T;

    #[inline]
    fn split(r: &Result<T, E>) -> Option<T> {
        r.as_ref().ok().cloned()
    }

    #[inline]
    fn wrap(value: T) -> Result<T, E> {
        Ok(value)
    }
}

/// Caches `Some` values; `None` is returned to the caller and not cached.
pub struct SomeOnly;

impl<T: CacheValue> Mode<Option<T>> for SomeOnly {
    type Value = T;

    #[inline]
    fn split(r: &Option<T>) -> Option<T> {
        r.clone()
    }

    #[inline]
    fn wrap(value: T) -> Option<T> {
        Some(value)
    }
}
