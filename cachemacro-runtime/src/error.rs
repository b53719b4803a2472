//! The one error type of cachemacro.

/// What can go wrong in a cache operation.
///
/// Reads never return this error for a Redis fault: a `#[cached]` function falls back to
/// its body (fail-open) and [`Cache::get`](crate::Cache::get) reports it. Invalidations
/// (`remove`, `clear`) do return it, because the caller must know that other instances may
/// still hold the old value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached or answered with an error.
    #[error("redis error during {operation}: {source}; the local cache was still updated, check the Redis connection and retry the invalidation")]
    Redis {
        /// What the cache was doing.
        operation: &'static str,
        /// The error from the Redis client.
        #[source]
        source: redis::RedisError,
    },

    /// Redis failed several times in a row, and reads skip it for a while (the circuit
    /// breaker is open).
    #[error("Redis is unavailable (it failed several times in a row); reads skip it for another {retry_in:?}")]
    Unavailable {
        /// When reads try Redis again.
        retry_in: std::time::Duration,
    },

    /// A value could not be encoded for the shared cache.
    #[error("could not encode the value for key `{key}`: {reason}; check the type's Serialize implementation")]
    Encode {
        /// The storage key.
        key: String,
        /// What the codec reported.
        reason: String,
    },

    /// A value is larger than the configured maximum for the shared cache.
    #[error("the value for key `{key}` is {size} bytes, over the limit of {limit} bytes; raise `CacheBuilder::max_value_size` or cache a smaller value")]
    TooLarge {
        /// The storage key.
        key: String,
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The cache configuration is invalid.
    #[error("invalid cache configuration: {0}")]
    Config(String),

    /// `set_global` was called after a global cache was set or first used.
    #[error("the global cache is already in use; call `cachemacro::set_global` once, at start-up, before the first `#[cached]` call")]
    GlobalAlreadySet,
}

impl Error {
    pub(crate) fn redis(operation: &'static str, source: redis::RedisError) -> Self {
        Error::Redis { operation, source }
    }
}
