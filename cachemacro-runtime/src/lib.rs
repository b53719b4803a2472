//! The runtime of [cachemacro](https://docs.rs/cachemacro): everything that runs behind
//! `#[cached]`.
//!
//! Users depend on the `cachemacro` crate, which re-exports this one; see its documentation
//! for the guide. This crate holds:
//!
//! - [`Cache`] and [`CacheBuilder`]: the two-level cache (L1 in process, L2 in Redis),
//! - [`Scope`]: a named group of keys,
//! - [`KeyPart`] and the [key layout](key),
//! - [`set_global`] / [`global`]: the cache `#[cached]` uses by default, and
//!   [`with_cache`] / [`without_cache`] to replace or bypass it in tests,
//! - [`Error`].

mod background;
mod backoff;
mod batch;
mod builder;
mod bus;
mod cache;
pub mod codec;
mod compress;
mod conflicts;
mod entry;
mod envelope;
mod error;
mod flight;
mod global;
mod groups;
pub mod key;
mod l1;
mod l2;
mod link;
#[cfg(feature = "metrics")]
pub mod metrics;
mod output;
mod read;
mod resilience;
mod scope;
mod sentinel;
mod site;
mod source;
mod stats;
mod tag_log;
mod tags;
mod throttle;
mod versions;

pub use builder::{
    CacheBuilder, RedisTarget, DEFAULT_COMPRESS_ABOVE, DEFAULT_HEARTBEAT, DEFAULT_L1_CAPACITY,
    DEFAULT_MAX_VALUE_SIZE, DEFAULT_NAMESPACE, DEFAULT_REDIS_COOLDOWN, DEFAULT_REDIS_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TOMBSTONE_TTL, DEFAULT_TTL, DEFAULT_VERSION_REFRESH, MAX_TTL,
    MAX_WAIT,
};
pub use bus::BusChannels;
pub use cache::Cache;
pub use codec::{Bincode, Codec, Json};
pub use compress::Compression;
pub use entry::{entry, EntryHandle, MAX_ENTRY_TAGS};
pub use error::Error;
pub use global::{global, set_global, with_cache, without_cache};
pub use key::{escape, write_text, KeyPart, ScopedKey};
pub use output::{CacheValue, Mode};
pub use resilience::{Fleet, Resilience, DEFAULT_FAIL_SAFE_THROTTLE};
pub use scope::Scope;
pub use site::{functions, FunctionStats, LoadTimes, LOAD_BUCKETS};
pub use source::Source;
pub use stats::Stats;

/// The redis-rs this cache is built on, for naming its types (`ConnectionInfo`,
/// `TlsCertificates`) at the version cachemacro uses.
pub use redis;

/// What `#[cached]` expands to. Not a public API: it changes without notice.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
