//! The runtime of [cachemacro](https://docs.rs/cachemacro): everything that runs behind
//! `#[cached]`.
//!
//! Users depend on the `cachemacro` crate, which re-exports this one; see its documentation
//! for the guide. This crate holds:
//!
//! - [`Cache`] and [`CacheBuilder`]: the two-level cache (L1 in process, L2 in Redis),
//! - [`Scope`]: a named group of keys,
//! - [`KeyPart`] and the [key layout](key),
//! - [`set_global`] / [`global`]: the cache `#[cached]` uses by default,
//! - [`Error`].

mod breaker;
mod builder;
mod bus;
mod cache;
pub mod codec;
mod envelope;
mod error;
mod flight;
mod global;
mod groups;
pub mod key;
mod l1;
mod l2;
mod output;
mod read;
mod scope;
mod stats;

pub use builder::{
    CacheBuilder, DEFAULT_L1_CAPACITY, DEFAULT_MAX_VALUE_SIZE, DEFAULT_NAMESPACE,
    DEFAULT_REDIS_TIMEOUT, DEFAULT_TOMBSTONE_TTL, DEFAULT_TTL,
};
pub use cache::Cache;
pub use codec::{Bincode, Codec};
pub use error::Error;
pub use global::{global, set_global};
pub use key::{escape, write_text, KeyPart};
pub use output::{CacheValue, Mode};
pub use scope::Scope;
pub use stats::Stats;

/// What `#[cached]` expands to. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::sync::Arc;

    pub use crate::global::global;
    pub use crate::output::{Always, Mode, OkOnly, SomeOnly};
    pub use crate::{Cache, Error, KeyPart};
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use core::time::Duration;
    pub use std::string::String;
    pub use std::vec::Vec;

    use crate::key::Place;

    /// Anything `cache = <expr>` may evaluate to.
    #[diagnostic::on_unimplemented(
        message = "`cache = ...` must give a `Cache`, `&Cache` or `Arc<Cache>`, not `{Self}`",
        label = "this is not a `Cache`",
        note = "for a `static CACHE: LazyLock<Cache>` write `cache = &*CACHE`"
    )]
    pub trait AsCache {
        /// The cache.
        fn as_cache(&self) -> &Cache;
    }

    impl AsCache for Cache {
        fn as_cache(&self) -> &Cache {
            self
        }
    }

    impl<T: AsCache + ?Sized> AsCache for &T {
        fn as_cache(&self) -> &Cache {
            (**self).as_cache()
        }
    }

    impl<T: AsCache + ?Sized> AsCache for Arc<T> {
        fn as_cache(&self) -> &Cache {
            (**self).as_cache()
        }
    }

    fn place(scope: Option<&str>) -> Place<'_> {
        match scope {
            Some(name) => Place::Scope(name),
            None => Place::Unscoped,
        }
    }

    /// An empty storage key for `scope`, with room for `extra` bytes of key.
    #[inline]
    pub fn key_buffer(cache: &Cache, scope: Option<&str>, extra: usize) -> String {
        cache.key_buffer(place(scope), extra)
    }

    /// The hit path of a cached function: `Ok` with the L1 value when present and of the
    /// right type, else `Err` with the storage key for [`load`].
    #[inline]
    pub fn lookup<M: Mode<R>, R>(
        cache: &Cache,
        scope: Option<&str>,
        write: impl FnOnce(&mut String),
    ) -> Result<R, String> {
        cache.lookup::<M::Value>(place(scope), write).map(M::wrap)
    }

    /// The miss path of a cached function: single flight, L2, the body. Boxed, so that the
    /// caller's future stays small on the hit path.
    #[inline]
    pub fn load<'a, M, R, F>(
        cache: &'a Cache,
        storage_key: String,
        ttl: Option<Duration>,
        version: u32,
        tags: Vec<String>,
        fut: F,
    ) -> std::pin::Pin<Box<impl Future<Output = R> + 'a>>
    where
        M: Mode<R> + 'a,
        R: 'a,
        F: Future<Output = R> + 'a,
    {
        let options = crate::read::LoadOptions { ttl, version, tags };
        Box::pin(cache.load::<M, R, F>(storage_key, options, fut))
    }

    /// `remove_cached`.
    pub async fn remove(cache: &Cache, storage_key: String) -> Result<(), Error> {
        cache.remove_at(&storage_key).await
    }

    /// `remove_local`.
    pub fn remove_local(cache: &Cache, storage_key: String) {
        cache.remove_local_at(&storage_key);
    }
}
