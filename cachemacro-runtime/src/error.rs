//! The one error type of cachemacro.

/// What can go wrong in a cache operation.
///
/// Reads never return this error for a Redis fault: a `#[cached]` function falls back to
/// its body (fail-open) and [`Cache::get`](crate::Cache::get) reports it. Invalidations
/// (`remove`, `clear`) do return it, because the caller must know that other instances may
/// still hold the old value.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis answered with an error, or the connection failed during the call.
    #[error("Redis error during {operation}: {source}; {}", hint(operation))]
    Redis {
        /// What the cache was doing.
        operation: &'static str,
        /// The error from the Redis client.
        #[source]
        source: redis::RedisError,
    },

    /// Redis did not answer within the configured timeout.
    #[error(
        "Redis did not answer within {timeout:?} during {operation}; {}",
        hint(operation)
    )]
    Timeout {
        /// What the cache was doing.
        operation: &'static str,
        /// The configured Redis timeout.
        timeout: std::time::Duration,
    },

    /// The connection to Redis is down (or in doubt after a failure, for a read), so the
    /// call was not attempted; it is remade in the background.
    #[error(
        "Redis is unavailable during {operation} (the connection is down and being remade); {}",
        hint(operation)
    )]
    Unavailable {
        /// What the cache was doing.
        operation: &'static str,
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
        /// The encoded size (what Redis would store, envelope included).
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

/// What the caller can do after a Redis fault during `operation`.
fn hint(operation: &str) -> &'static str {
    match operation {
        "read" | "read version" => "the value was not read from Redis",
        _ => "the local cache was still updated; other instances may keep the old value until its TTL ends: check Redis and retry",
    }
}

impl Error {
    /// The error for a Redis call that did not succeed.
    pub(crate) fn from_fault(operation: &'static str, fault: crate::link::Fault) -> Self {
        use crate::link::Fault;
        match fault {
            Fault::Unavailable => Error::Unavailable { operation },
            Fault::Timeout(timeout) => Error::Timeout { operation, timeout },
            Fault::Connection(source) | Fault::Reply(source) => Error::Redis { operation, source },
        }
    }
}
