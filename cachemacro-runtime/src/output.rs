//! How a cached function's return value maps to the value that is cached.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type whose values can be cached: held in memory as they are, encoded for Redis.
///
/// Implemented for every `Clone + Serialize + DeserializeOwned + Send + Sync + 'static` type:
/// derive `Clone`, `serde::Serialize` and `serde::Deserialize` for your own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached value must be `Clone`, `serde::Serialize` and `serde::Deserialize` (and `Send + Sync + 'static`)",
    label = "this value would be cached",
    note = "add `#[derive(Clone, serde::Serialize, serde::Deserialize)]` to `{Self}`"
)]
pub trait CacheValue: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

// `do_not_recommend`: a type missing `Clone` gets the message above, not "`Clone` is not
// implemented" followed by this impl's bounds.
#[diagnostic::do_not_recommend]
impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> CacheValue for T {}

/// How a function returning `R` is cached: which part of `R` is stored, and how a stored
/// value becomes an `R` again. Chosen by `#[cached]` from the function's return type, as
/// the compiler sees it (through type aliases), or from its `result` / `option` argument.
pub trait Mode<R> {
    /// The cached value.
    type Value: CacheValue;

    /// The value to cache, or `None` when `r` must not be cached (an `Err`, a `None`).
    fn split(r: &R) -> Option<Self::Value>;

    /// Rebuilds the function's return value from a cached value.
    fn wrap(value: Self::Value) -> R;
}

/// Caches every return value: a function returning any type other than `Result` and
/// `Option`; an `Option<T>` with `cache_none = true`; a `Result<T, E>` with
/// `result = false` (errors cached too).
///
/// How to spot it: when a function's `Err` or `None` is served from the cache, its return
/// type is cached in this mode. A type alias is seen through (`type ApiResult<T> =
/// Result<T, ApiError>` caches `Ok` only), but a struct or enum of your own that wraps a
/// result (`struct Reply { result: Result<..> }`, `enum Outcome { Found(..), Failed(..) }`)
/// is a plain value, cached whatever it holds: return the `Result` itself, or cache the
/// function that produces the success value.
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
