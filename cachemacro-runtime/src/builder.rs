//! `CacheBuilder`: the configuration of a [`Cache`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::bus::{self, BusTimings};
use crate::cache::{Cache, Inner};
use crate::codec::{Bincode, Codec};
use crate::flight::Flights;
use crate::key::{Layout, Place};
use crate::l1::L1;
use crate::l2::{Conn, L2};
use crate::Error;

/// The default namespace: the first part of every stored key.
pub const DEFAULT_NAMESPACE: &str = "cachemacro";
/// The default number of entries L1 holds before it evicts.
pub const DEFAULT_L1_CAPACITY: u64 = 10_000;
/// The default TTL: every entry expires, so a missed invalidation heals itself.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The default largest value stored in Redis, encoded: 8 MiB.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8 << 20;
/// The default lifetime of a removal's tombstone in Redis. A load that takes longer than
/// this and began before the removal may store the value it read.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// The default time one Redis operation may take before the cache gives up on it.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

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
///     // .redis("redis://127.0.0.1:6379")   // turns on L2 and the invalidation bus
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `.build().await`"]
pub struct CacheBuilder {
    namespace: String,
    l1_capacity: u64,
    default_ttl: Duration,
    redis_url: Option<String>,
    /// The seed nodes of a Redis Cluster, instead of `redis_url`.
    cluster_urls: Vec<String>,
    redis_timeout: Duration,
    heartbeat: Duration,
    cooldown: Duration,
    ttl_jitter: f64,
    tombstone_ttl: Duration,
    max_value_size: usize,
    codec: Option<Arc<dyn Codec>>,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("namespace", &self.namespace)
            .field("l1_capacity", &self.l1_capacity)
            .field("default_ttl", &self.default_ttl)
            .field("redis", &self.redis_url.is_some())
            .field("redis_cluster", &self.cluster_urls)
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_cooldown", &self.cooldown)
            .field("ttl_jitter", &self.ttl_jitter)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("max_value_size", &self.max_value_size)
            .field(
                "codec",
                &self.codec.as_ref().map_or("bincode1", |c| c.name()),
            )
            .finish()
    }
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
            redis_url: None,
            cluster_urls: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            heartbeat: Duration::from_secs(2),
            cooldown: Duration::from_secs(2),
            ttl_jitter: 0.0,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            codec: None,
        }
    }

    /// The prefix of every key this cache stores. Services sharing one Redis use different
    /// namespaces; replicas of one service share theirs (and so share values and
    /// invalidations).
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

    /// Turns on L2 and the invalidation bus on the Redis server at `url`
    /// (`redis://host:port/db`, `rediss://` for TLS).
    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// Turns on L2 and the invalidation bus on a Redis Cluster, given some of its nodes
    /// (`redis://host:port`). Values are spread over the cluster's slots; invalidation
    /// messages are published cluster-wide and heard through any one node. Unlike
    /// [`redis`](Self::redis), building fails when no node can be reached.
    pub fn redis_cluster(mut self, nodes: &[&str]) -> Self {
        self.cluster_urls = nodes.iter().map(|n| n.to_string()).collect();
        self
    }

    /// How long one Redis operation (connect, read, write, publish) may take before the
    /// cache gives up on it: reads then fall back to the function, invalidations return an
    /// error. Default [`DEFAULT_REDIS_TIMEOUT`].
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// How often the invalidation bus checks its connection. A connection that died
    /// without closing is noticed within this time plus the Redis timeout. Default 2 s.
    pub fn bus_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Takes up to this fraction (0.0 to 0.5) off the TTL of each loaded entry, at random,
    /// so that entries loaded together (after a deploy, a purge, a version bump) do not all
    /// expire in the same second and stampede the database together. A TTL stays an upper
    /// bound. Default 0 (off); 0.1 is a good start.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// How long reads skip Redis after it failed several times in a row (the circuit
    /// breaker's cool-down), so an outage costs one [`redis_timeout`](Self::redis_timeout),
    /// not one per request. The first read after it tries Redis again. Default 2 s.
    pub fn redis_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long a removal keeps loads that began before it from storing what they read
    /// (see [`Cache::remove`]). Longer than your slowest loader. Default
    /// [`DEFAULT_TOMBSTONE_TTL`].
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// The largest encoded value stored in Redis. A larger value stays in this process's L1
    /// only (and [`Cache::set`] returns [`Error::TooLarge`]). Default
    /// [`DEFAULT_MAX_VALUE_SIZE`].
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The format of values in Redis. Default [`Bincode`].
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Some(Arc::new(codec));
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::Config(message.to_owned()));
        if self.namespace.is_empty() {
            return fail("the namespace must not be empty");
        }
        if self.default_ttl.is_zero() {
            return fail("the default TTL must be longer than zero");
        }
        if self.redis_timeout.is_zero() || self.heartbeat.is_zero() {
            return fail("the Redis timeout and the bus heartbeat must be longer than zero");
        }
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            return fail("the TTL jitter is a fraction from 0.0 to 0.5");
        }
        if self.tombstone_ttl.is_zero() {
            return fail("the tombstone TTL must be longer than zero");
        }
        Ok(())
    }

    /// Builds the cache. With Redis, it connects and subscribes to the invalidation bus
    /// before returning; when Redis cannot be reached within the Redis timeout it still
    /// returns the cache, which serves from L1 and the functions (fail-open), logs a
    /// warning, and connects in the background.
    ///
    /// Fails on an invalid configuration or Redis URL, and, with
    /// [`redis_cluster`](Self::redis_cluster), when no node of the cluster answers.
    pub async fn build(self) -> Result<Cache, Error> {
        self.validate()?;
        let (conn, clients, url) = if !self.cluster_urls.is_empty() {
            self.connect_cluster().await?
        } else if let Some(url) = self.redis_url.clone() {
            self.connect_single(&url)?
        } else {
            return Ok(self.build_local());
        };
        let instance = RandomState::new().hash_one(std::process::id());
        let layout = Layout::new(&self.namespace);
        let channel = format!("{}bus", layout.root());
        let timings = BusTimings {
            timeout: self.redis_timeout,
            heartbeat: self.heartbeat,
        };
        let (bus, listener) = bus::bus(clients, conn.clone(), channel, instance, timings);
        let timeout = self.redis_timeout;
        let cache = self.assemble(layout, Some(L2::new(conn)), Some(bus), instance);
        let ready = listener.spawn(Arc::downgrade(cache.inner()));
        if tokio::time::timeout(timeout, ready).await.is_err() {
            tracing::warn!(
                url = %url,
                "cache: Redis is not reachable; serving from memory and the functions until it is"
            );
        }
        Ok(cache)
    }

    /// A reconnecting connection to one server (made lazily, so building never waits for it).
    fn connect_single(&self, url: &str) -> Result<(Conn, Vec<redis::Client>, String), Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("invalid Redis URL `{url}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.redis_timeout))
            .set_response_timeout(Some(self.redis_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| Error::redis("connect", e))?;
        Ok((Conn::Single(conn), vec![client], url.to_owned()))
    }

    /// A connection to a cluster, and a client per seed node for the bus.
    async fn connect_cluster(&self) -> Result<(Conn, Vec<redis::Client>, String), Error> {
        let urls = &self.cluster_urls;
        let clients = urls
            .iter()
            .map(|url| {
                redis::Client::open(url.as_str())
                    .map_err(|e| Error::Config(format!("invalid Redis URL `{url}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(self.redis_timeout)
            .response_timeout(self.redis_timeout)
            .retries(1)
            .build()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster nodes {urls:?}: {e}")))?;
        let conn = cluster
            .get_async_connection()
            .await
            .map_err(|e| Error::redis("connect to the cluster", e))?;
        Ok((Conn::Cluster(conn), clients, urls.join(",")))
    }

    /// Builds an in-process cache synchronously, for a `static` or a non-async context.
    /// Fails on an invalid configuration, or when [`redis`](Self::redis) was set (use
    /// [`build`](Self::build) for that).
    ///
    /// ```
    /// use once_cell::sync::Lazy;
    /// use cachemacro_runtime::Cache;
    ///
    /// static APP_CACHE: Lazy<Cache> =
    ///     Lazy::new(|| Cache::builder().namespace("app").l1_capacity(100_000).build_in_memory().unwrap());
    /// ```
    pub fn build_in_memory(self) -> Result<Cache, Error> {
        self.validate()?;
        if self.redis_url.is_some() || !self.cluster_urls.is_empty() {
            return Err(Error::Config(
                "a cache with Redis is built with `.build().await`".into(),
            ));
        }
        Ok(self.build_local())
    }

    /// Builds a cache without Redis; callers have validated the settings.
    pub(crate) fn build_local(self) -> Cache {
        let layout = Layout::new(&self.namespace);
        self.assemble(layout, None, None, 0)
    }

    fn assemble(
        self,
        layout: Layout,
        l2: Option<L2>,
        bus: Option<bus::Bus>,
        instance: u64,
    ) -> Cache {
        let unscoped_prefix = layout.prefix(Place::Unscoped);
        let codec = self
            .codec
            .unwrap_or_else(|| Arc::new(Bincode::with_limit(self.max_value_size as u64)));
        Cache::from_inner(Inner {
            layout,
            unscoped_prefix,
            default_ttl: self.default_ttl,
            l1: L1::new(self.l1_capacity),
            flights: Flights::new(),
            l2,
            bus,
            codec,
            max_value_size: self.max_value_size,
            tombstone_ttl: self.tombstone_ttl,
            instance,
            ttl_jitter: self.ttl_jitter,
            breaker: crate::breaker::Breaker::new(self.cooldown),
            counters: Default::default(),
            local_versions: Default::default(),
            local_tags: Default::default(),
        })
    }
}
