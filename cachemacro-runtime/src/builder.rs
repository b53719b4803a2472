//! `CacheBuilder`: the configuration of a [`Cache`].

use std::time::Duration;

use crate::cache::{Cache, Inner};
use crate::flight::Flights;
use crate::key::{Layout, Place};
use crate::l1::L1;
use crate::Error;

/// The default namespace: the first part of every stored key.
pub const DEFAULT_NAMESPACE: &str = "cachemacro";
/// The default number of entries L1 holds before it evicts.
pub const DEFAULT_L1_CAPACITY: u64 = 10_000;
/// The default TTL: every entry expires, so a missed invalidation heals itself.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Configures a [`Cache`]; start with [`Cache::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
/// use std::time::Duration;
/// use cachemacro_runtime::Cache;
///
/// let cache = Cache::builder()
///     .namespace("shop")
///     .l1_capacity(50_000)
///     .default_ttl(Duration::from_secs(60))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.build().await`"]
pub struct CacheBuilder {
    namespace: String,
    l1_capacity: u64,
    default_ttl: Duration,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheBuilder {
    /// A builder with the defaults: namespace [`DEFAULT_NAMESPACE`], L1 capacity
    /// [`DEFAULT_L1_CAPACITY`], TTL [`DEFAULT_TTL`], no Redis.
    pub fn new() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            l1_capacity: DEFAULT_L1_CAPACITY,
            default_ttl: DEFAULT_TTL,
        }
    }

    /// The prefix of every key this cache stores. Services sharing one Redis use different
    /// namespaces; replicas of one service share theirs.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// How many entries L1 holds before it evicts the least useful ones.
    pub fn l1_capacity(mut self, entries: u64) -> Self {
        self.l1_capacity = entries;
        self
    }

    /// The TTL of entries stored without one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.namespace.is_empty() {
            return Err(Error::Config("the namespace must not be empty".into()));
        }
        if self.default_ttl.is_zero() {
            return Err(Error::Config(
                "the default TTL must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    /// Builds the cache.
    pub async fn build(self) -> Result<Cache, Error> {
        self.validate()?;
        Ok(self.build_local())
    }

    /// Builds the in-process part; callers have validated the settings.
    pub(crate) fn build_local(self) -> Cache {
        let layout = Layout::new(&self.namespace);
        let unscoped_prefix = layout.prefix(Place::Unscoped);
        Cache::from_inner(Inner {
            layout,
            unscoped_prefix,
            default_ttl: self.default_ttl,
            l1: L1::new(self.l1_capacity),
            flights: Flights::new(),
        })
    }
}
