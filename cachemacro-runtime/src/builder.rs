//! `CacheBuilder`: the configuration of a [`Cache`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::bus::{self, BusChannels, BusTimings, Source};
use crate::cache::{Cache, Inner};
use crate::codec::{Bincode, Codec};
use crate::compress::Compression;
use crate::flight::Flights;
use crate::key::{Layout, Place};
use crate::l1::{Bound, Weigh, L1};
use crate::l2::L2;
use crate::link::{Connector, Link, LinkTimings, Wakeups};
use crate::sentinel::{Resolver, SentinelConfig};
use crate::Error;

/// The default namespace: the first part of every stored key.
pub const DEFAULT_NAMESPACE: &str = "cachemacro";
/// The default number of entries L1 holds before it evicts.
pub const DEFAULT_L1_CAPACITY: u64 = 10_000;
/// The default TTL: every entry expires, so a missed invalidation heals itself.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The default largest value stored in Redis, encoded: 8 MiB.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8 << 20;
/// The default size from which values are compressed, when compression is on: 1 KiB.
pub const DEFAULT_COMPRESS_ABOVE: usize = 1024;
/// The default lifetime of a removal's tombstone in Redis. A load that takes longer than
/// this and began before the removal may store the value it read.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// The default time one Redis operation may take before the cache gives up on it.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times the cluster client follows a redirection or retries a command the cluster
/// asked to retry (`TRYAGAIN`...), within the Redis timeout.
const CLUSTER_RETRIES: u32 = 24;

/// The longest pause between two such retries, in ms.
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 50;
/// The default time a group version is used from memory before it is read from Redis again.
pub const DEFAULT_VERSION_REFRESH: Duration = Duration::from_secs(1);
/// The default longest pause between two attempts to reconnect to Redis.
pub const DEFAULT_REDIS_COOLDOWN: Duration = Duration::from_millis(250);
/// The default interval of the connection checks (a `PING` on the data connection and on
/// the invalidation bus).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
/// How often group versions are read again while instances of 0.1, which announce no
/// bump, may share the namespace (see [`CacheBuilder::compat_0_1`]).
const COMPAT_VERSION_REFRESH: Duration = Duration::from_millis(50);
/// The default bound on [`Cache::shutdown`]'s wait for background work.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest TTL an entry gets: ten years. A longer one, given per call (`ttl = EXPR`,
/// [`Cache::set`]), is shortened to it; the builder refuses a longer default TTL, stale
/// window or tombstone TTL. Redis takes any expiry up to it, and L1 keeps an entry at most
/// 49 days (it then ends early, never late).
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);
/// The longest wait or period a setting takes (timeouts, heartbeat, cooldown, throttle,
/// fleet wait, version refresh): a day. The builder refuses a longer one; one given per
/// function (`hard_timeout = "..."`) is shortened to it.
pub const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Configures a [`Cache`]; start with [`Cache::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// use std::time::Duration;
/// use cachemacro::Cache;
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
    /// A byte bound on L1, replacing the entry bound.
    l1_max_bytes: Option<u64>,
    l1_weigher: Option<Weigh>,
    /// Entries per function front; `None`: the default (see `l1_front_capacity`).
    l1_front_capacity: Option<u64>,
    default_ttl: Duration,
    /// The server [`redis`](Self::redis) names, or why it names none (reported by `build`).
    redis_target: Option<Result<ConnectionInfo, String>>,
    /// The certificates of TLS connections to that server.
    #[cfg(feature = "tls-rustls")]
    tls: Option<redis::TlsCertificates>,
    /// The seed nodes of a Redis Cluster, instead of `redis_target`.
    cluster_urls: Vec<String>,
    /// Redis Sentinel, instead of `redis_target`.
    sentinel: Option<SentinelConfig>,
    bus_channels: BusChannels,
    redis_timeout: Duration,
    heartbeat: Duration,
    cooldown: Duration,
    ttl_jitter: f64,
    tombstone_ttl: Duration,
    max_value_size: usize,
    /// The configured codec, and the same when it is [`Bincode`].
    codec: Option<(Arc<dyn Codec>, Option<Bincode>)>,
    compression: Compression,
    compress_above: usize,
    version_refresh: Duration,
    shutdown_timeout: Duration,
    /// Instances of cachemacro 0.1 may share the namespace.
    compat_0_1: bool,
    resilience: crate::resilience::Defaults,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("namespace", &self.namespace)
            .field("l1_capacity", &self.l1_capacity)
            .field("l1_max_bytes", &self.l1_max_bytes)
            .field("l1_front_capacity", &self.l1_front_capacity)
            .field("default_ttl", &self.default_ttl)
            .field(
                "redis",
                &self.redis_target.as_ref().map(|t| t.as_ref().map(describe)),
            )
            .field("redis_cluster", &self.cluster_urls)
            .field(
                "redis_sentinel",
                &self.sentinel.as_ref().map(|s| {
                    (
                        &s.master,
                        s.sentinels.iter().map(|u| redacted(u)).collect::<Vec<_>>(),
                    )
                }),
            )
            .field("bus_channels", &self.bus_channels)
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_cooldown", &self.cooldown)
            .field("ttl_jitter", &self.ttl_jitter)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("max_value_size", &self.max_value_size)
            .field("compression", &self.compression)
            .field("compress_above", &self.compress_above)
            .field("version_refresh", &self.version_refresh)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("compat_0_1", &self.compat_0_1)
            .field("resilience", &self.resilience)
            .field(
                "codec",
                &self.codec.as_ref().map_or("bincode1", |(c, _)| c.name()),
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
            l1_max_bytes: None,
            l1_weigher: None,
            l1_front_capacity: None,
            default_ttl: DEFAULT_TTL,
            redis_target: None,
            #[cfg(feature = "tls-rustls")]
            tls: None,
            cluster_urls: Vec::new(),
            sentinel: None,
            bus_channels: BusChannels::Classic,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            cooldown: DEFAULT_REDIS_COOLDOWN,
            ttl_jitter: 0.0,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            codec: None,
            compression: Compression::None,
            compress_above: DEFAULT_COMPRESS_ABOVE,
            version_refresh: DEFAULT_VERSION_REFRESH,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            compat_0_1: true,
            resilience: Default::default(),
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

    /// How many values each `#[cached]` function keeps in its *front*: a store of its own,
    /// in front of L1, keyed by the function's arguments and holding its value type, so a
    /// hit there neither writes nor compares the key text (about half the cost of an L1
    /// hit). A value enters it when a call finds it in L1 again, and is served from it only
    /// while L1 holds it unchanged and fresh: every invalidation, and every eviction, L1
    /// sees ends the copy too.
    ///
    /// A value read again is held twice, typed in its function's front and in L1 (about
    /// 340 bytes more for a small struct, `bench/results/memory.md`); the copies that may
    /// be served are never more than L1's entries, and dead copies are swept when the
    /// fronts hold more than that. Fronts work for keys made of integers, `bool`, `char`,
    /// strings, and `Option`s, `Vec`s and tuples of them; other functions (and generic
    /// ones) hit L1 directly.
    ///
    /// The default is [`l1_capacity`](Self::l1_capacity) under an entry bound, and 0 (no
    /// fronts) under [`l1_max_bytes`](Self::l1_max_bytes), whose bound does not count the
    /// copies. 0 turns fronts off, and with them the epochs every L1 change bumps for
    /// them (8 bytes per entry of `l1_capacity`, at most 2 MB).
    ///
    /// ```
    /// # fn main() -> Result<(), cachemacro_runtime::Error> {
    /// let cache = cachemacro_runtime::Cache::builder()
    ///     .l1_capacity(100_000)
    ///     .l1_front_capacity(10_000) // each function's 10k hottest values
    ///     .build_in_memory()?;
    /// # Ok(()) }
    /// ```
    pub fn l1_front_capacity(mut self, entries: u64) -> Self {
        self.l1_front_capacity = Some(entries);
        self
    }

    /// Bounds L1 by size instead of by count: it holds entries whose weights add up to at
    /// most `bytes`, and [`l1_capacity`](Self::l1_capacity) becomes only the estimate it is
    /// sized for. An entry weighs what [`l1_weigher`](Self::l1_weigher) says; by default
    /// its key, the value's inline size (`size_of_val`) and 192 bytes of bookkeeping, which
    /// misses the heap data a value owns (a `String`'s text, a `Vec`'s items): give a
    /// weigher when values vary in size.
    ///
    /// ```
    /// # fn main() -> Result<(), cachemacro_runtime::Error> {
    /// let cache = cachemacro_runtime::Cache::builder()
    ///     .l1_max_bytes(64 << 20)
    ///     .l1_weigher(|key, value| {
    ///         let text = value.downcast_ref::<String>().map_or(64, |s| s.len());
    ///         (key.len() + text + 192) as u64
    ///     })
    ///     .build_in_memory()?;
    /// # Ok(()) }
    /// ```
    pub fn l1_max_bytes(mut self, bytes: u64) -> Self {
        self.l1_max_bytes = Some(bytes);
        self
    }

    /// The weight of an L1 entry under [`l1_max_bytes`](Self::l1_max_bytes):
    /// `weigher(storage key, value)`, the value as `&dyn Any` to downcast to the types the
    /// cache holds. Called once per insert, never on a hit; a weight of 0 counts as 1.
    pub fn l1_weigher(
        mut self,
        weigher: impl Fn(&str, &(dyn std::any::Any + Send + Sync)) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.l1_weigher = Some(Arc::new(weigher));
        self
    }

    /// The TTL of entries stored without one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Turns on L2 and the invalidation bus on one Redis server: whatever redis-rs takes
    /// (see [`RedisTarget`]): a URL as `&str`, `String` or `&String`
    /// (`redis://[user:password@]host:port/db`, `rediss://` for TLS, `redis+unix:///path`),
    /// or a [`ConnectionInfo`] built in code. A URL that does not parse is reported by
    /// [`build`](Self::build).
    ///
    /// TLS (`rediss://`) needs the cargo feature `tls-rustls` of cachemacro (rustls with
    /// the `ring` provider); the server's certificate is checked against the system's
    /// roots, or against your own CA with `redis_tls` (same feature).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cachemacro::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
    ///
    /// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    /// let cache = cachemacro::Cache::builder().redis(url).build().await?;
    ///
    /// let info: ConnectionInfo = ConnectionAddr::Tcp("10.0.0.7".into(), 6379).into_connection_info()?;
    /// let other = cachemacro::Cache::builder().redis(info).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn redis(mut self, target: impl RedisTarget) -> Self {
        self.redis_target = Some(target.connection_info().map_err(|e| e.to_string()));
        self
    }

    /// The certificates of the TLS connection to the server of [`redis`](Self::redis)
    /// (a `rediss://` URL): your own CA's certificate (PEM) when the server's is not signed
    /// by one the system trusts, and a client certificate and key for mutual TLS. Needs the
    /// cargo feature `tls-rustls`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cachemacro::redis::TlsCertificates;
    ///
    /// let cache = cachemacro::Cache::builder()
    ///     .redis("rediss://redis.internal:6380")
    ///     .redis_tls(TlsCertificates {
    ///         client_tls: None,
    ///         root_cert: Some(std::fs::read("/etc/redis/ca.crt")?),
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls-rustls")]
    pub fn redis_tls(mut self, certificates: redis::TlsCertificates) -> Self {
        self.tls = Some(certificates);
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

    /// Which pub/sub channels carry the invalidation bus on a Redis Cluster: classic
    /// (`PUBLISH`, which the cluster forwards to every node: the default), sharded
    /// (`SPUBLISH` on 16 channels spread over the primaries, Redis 7 or later), or both,
    /// for the rolling deploy from one to the other. Read [`BusChannels`] before you switch:
    /// it takes two deploys. Only for [`redis_cluster`](Self::redis_cluster).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), cachemacro::Error> {
    /// use cachemacro::{BusChannels, Cache};
    ///
    /// let cache = Cache::builder()
    ///     .redis_cluster(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .bus_channels(BusChannels::ClassicAndSharded)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn bus_channels(mut self, channels: BusChannels) -> Self {
        self.bus_channels = channels;
        self
    }

    /// Turns on L2 and the invalidation bus on the primary that Redis Sentinel names for
    /// `master_name` (as in `sentinel monitor <master_name> ...`), asking the sentinels
    /// (`redis://[user:password@]host:port`, the sentinels' own credentials) on every
    /// (re)connection. After a failover, the data connection and the invalidation bus both
    /// move to the new primary; reads fail open meanwhile, and the bus's reconnection clears
    /// this instance's L1 (messages may have been missed).
    ///
    /// What a failover can cost: Redis replicates asynchronously, so a write the old primary
    /// acknowledged but had not yet sent to the replica that takes over is lost. For the
    /// cache, the loss that matters is a removal's *tombstone*: a value removed just before
    /// the failover can be read again from Redis (and cached again) until its TTL ends; no
    /// L1 flush can help, the old value is in Redis. Redis's `min-replicas-to-write` and
    /// `min-replicas-max-lag` on the primary narrow the window (the primary refuses writes,
    /// so the removal returns an error instead of succeeding and being lost), as would a
    /// `WAIT` after each write; the TTL bounds it.
    ///
    /// Credentials and database of the primary: [`redis_sentinel_auth`](Self::redis_sentinel_auth).
    /// TLS to the sentinels and the primary is not supported yet: use it on a private
    /// network, or [`redis`](Self::redis) / [`redis_cluster`](Self::redis_cluster) with
    /// `rediss://`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), cachemacro::Error> {
    /// let cache = cachemacro::Cache::builder()
    ///     .redis_sentinel("mymaster", &["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"])
    ///     .redis_sentinel_auth(None, Some("s3cret"), 0)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_sentinel(mut self, master_name: &str, sentinels: &[&str]) -> Self {
        let config = self.sentinel.get_or_insert_with(Default::default);
        master_name.clone_into(&mut config.master);
        config.sentinels = sentinels.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The user name, password and database number to use on the primary (and nothing
    /// else) that [`redis_sentinel`](Self::redis_sentinel) finds. Default: none, none, 0.
    pub fn redis_sentinel_auth(
        mut self,
        username: Option<&str>,
        password: Option<&str>,
        db: i64,
    ) -> Self {
        let config = self.sentinel.get_or_insert_with(Default::default);
        config.username = username.map(str::to_owned);
        config.password = password.map(str::to_owned);
        config.db = db;
        self
    }

    /// How long one Redis operation (read, write, publish) may take, end to end, before the
    /// cache gives up on it: reads then fall back to the function, invalidations return an
    /// error. It also bounds each connection attempt and each connection check. Default
    /// [`DEFAULT_REDIS_TIMEOUT`].
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// How often the data connection and the invalidation bus are checked with a `PING`. A
    /// connection that died without closing is noticed within this time plus the Redis
    /// timeout (a closed one at once). Default [`DEFAULT_HEARTBEAT`].
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

    /// The longest pause between two attempts to reconnect while Redis is down (attempts
    /// start at once, then back off from 25 ms). While the connection is down, or in doubt
    /// after a call failed, reads skip Redis without waiting, so an outage costs the calls
    /// in flight when it began one [`redis_timeout`](Self::redis_timeout), not one per
    /// request; this bounds how soon after Redis is back the cache uses it again. Default
    /// [`DEFAULT_REDIS_COOLDOWN`].
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

    /// Compresses values on their way to Redis (see [`Compression`]): less memory in Redis
    /// and fewer bytes on the wire, for some CPU on each fill and L2 hit. Only values whose
    /// encoding reaches [`compress_above`](Self::compress_above) bytes, and only when that
    /// saves at least 1/16 of them. L1 keeps values decoded, so L1 hits do not pay for it.
    /// Default: [`Compression::None`]. The max value size still applies to the
    /// uncompressed encoding.
    ///
    /// Turning it on is a second deploy when older cachemacro versions still run: they read
    /// a compressed value as a miss. Reading compressed values needs no setting.
    ///
    #[cfg_attr(feature = "zstd", doc = "```no_run")]
    #[cfg_attr(not(feature = "zstd"), doc = "```ignore")]
    /// # #[tokio::main] async fn main() -> Result<(), cachemacro::Error> {
    /// // With the cargo feature `zstd` of cachemacro.
    /// use cachemacro::{Cache, Compression};
    ///
    /// let cache = Cache::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .compression(Compression::Zstd { level: 1 })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The encoded size from which values are compressed, when
    /// [`compression`](Self::compression) is on. Default [`DEFAULT_COMPRESS_ABOVE`]; below
    /// about 512 bytes compression rarely pays for itself.
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = bytes;
        self
    }

    /// How long a group version (see [`Cache::version`]) is used from this process's memory
    /// before it is read from Redis again. Bumps reach every instance over the bus at once;
    /// this is the safety net for a message that was lost. Default
    /// [`DEFAULT_VERSION_REFRESH`].
    pub fn version_refresh(mut self, every: Duration) -> Self {
        self.version_refresh = every;
        self
    }

    /// How long [`Cache::shutdown`] waits for the cache's background work (refreshes ahead
    /// of expiry, reloads that went on past a soft timeout) to finish and store what it
    /// loaded. Work still running then is abandoned where it stands: it stores nothing, in
    /// L1 or in Redis. Keep it under your orchestrator's grace period (Kubernetes' default is
    /// 30 s) minus the time your server takes to drain its requests. Default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether instances of cachemacro 0.1 may share this cache's namespace (a rolling
    /// deploy from 0.1 to this release). On (the default in 0.2), this instance keeps the
    /// promises of invalidation with them:
    ///
    /// - tags are registered in 0.1's set too (`<namespace>:c1:t:<tag>`), so that 0.1's
    ///   `invalidate_tag`, which reads only that set, finds what this instance cached;
    /// - group versions are read from Redis again at least every 50 ms
    ///   ([`version_refresh`](Self::version_refresh) if shorter), since 0.1 announces no
    ///   bump on the bus: a bump on a 0.1 instance is seen here within 50 ms; and when Redis
    ///   cannot be read then, [`Cache::version`] returns an error, as 0.1's does, rather
    ///   than a version a 0.1 instance may have bumped meanwhile.
    ///
    /// What it costs: 0.1's plain sets have no deadline per member, so while it is on they
    /// grow, as they did under 0.1, with every key registered while the tag lives (an
    /// invalidation of the tag empties it, and tombstones every key it held); and versions
    /// are read from Redis every 50 ms per group. Off, a tagged load skips one `SADD`, tag
    /// registrations are kept only while their entries can be alive, and versions are read
    /// every `version_refresh`. Turn it off once no 0.1 instance runs (a second deploy);
    /// 0.3 will drop it. See the README's "Rolling deploys" and `CHANGELOG.md`.
    pub fn compat_0_1(mut self, on: bool) -> Self {
        self.compat_0_1 = on;
        self
    }

    /// Keeps entries this long past their TTL, in L1 and in Redis, to serve when a reload
    /// fails (the *fail-safe*): an `Err`, a `None` (for `Option`), a panic or the hard
    /// timeout. An invalidation removes them like any entry: a removed value is never
    /// served as stale. `#[cached(stale_for = ...)]` sets it per function. Default: off.
    pub fn stale_for(mut self, stale_for: Duration) -> Self {
        self.resilience.stale_for = stale_for;
        self
    }

    /// With a stale value to fall back on, how long callers wait for a reload before they
    /// get the stale value; the reload goes on in the background and stores its value when
    /// it finishes. Applies to functions whose future can run in a task of its own (owned
    /// arguments, `Send`); `#[cached(soft_timeout = ...)]` sets it per function. Default:
    /// none.
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.resilience.soft_timeout = Some(timeout);
        self
    }

    /// With a stale value to fall back on, how long a reload may take before it counts as
    /// failed and the stale value is served. Without one, callers wait for the reload
    /// however long it takes (no error of the function's type can be made up).
    /// `#[cached(hard_timeout = ...)]` sets it per function. Default: none.
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.resilience.hard_timeout = Some(timeout);
        self
    }

    /// A hit past this fraction of the TTL (0.0 to 1.0, exclusive) returns the cached value
    /// at once and reloads it in the background; across the fleet, one instance reloads and
    /// the others take the new value from Redis. Applies to functions whose future can run
    /// in a task of its own; `#[cached(refresh_ahead = ...)]` sets it per function.
    /// Default: off.
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.resilience.refresh_ahead = Some(fraction);
        self
    }

    /// After a reload failed and a stale value was served, how long that value is served
    /// as if fresh before the next reload is tried, so that a failing source is not
    /// hammered. Default [`DEFAULT_FAIL_SAFE_THROTTLE`](crate::DEFAULT_FAIL_SAFE_THROTTLE).
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.resilience.throttle = throttle;
        self
    }

    /// Fleet-wide single flight for cold keys: one instance takes a short lease on the key
    /// in Redis and loads it, the others wait (at most `max_wait`, then load themselves) and
    /// read the value from Redis as soon as it is stored, woken by the bus. A crashed
    /// loader's lease expires. `#[cached(fleet_single_flight)]` turns it on (or off) per
    /// function. Default: off.
    pub fn fleet_single_flight(mut self, max_wait: Duration) -> Self {
        self.resilience.fleet = Some(max_wait);
        self
    }

    /// The format of values in Redis. Default [`Bincode`].
    pub fn codec(mut self, codec: impl Codec) -> Self {
        let native = crate::codec::native_bincode(&codec);
        self.codec = Some((Arc::new(codec), native));
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::Config(message.to_owned()));
        if self.namespace.is_empty() {
            return fail("the namespace must not be empty");
        }
        self.check_durations()?;
        self.compression.validate().map_err(Error::Config)?;
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            return fail("the TTL jitter is a fraction from 0.0 to 0.5");
        }
        let r = &self.resilience;
        if r.refresh_ahead.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
            return fail("refresh_ahead is a fraction of the TTL, between 0.0 and 1.0 (exclusive)");
        }
        if let (Some(soft), Some(hard)) = (r.soft_timeout, r.hard_timeout) {
            if soft > hard {
                return fail("the soft timeout must not be longer than the hard timeout");
            }
        }
        if let Some(sentinel) = &self.sentinel {
            if self.redis_target.is_some() || !self.cluster_urls.is_empty() {
                return fail("choose one of `redis`, `redis_cluster` and `redis_sentinel`");
            }
            if sentinel.master.is_empty() || sentinel.sentinels.is_empty() {
                return fail("`redis_sentinel` needs the master name and at least one sentinel");
            }
        }
        if self.bus_channels != BusChannels::Classic && self.cluster_urls.is_empty() {
            return fail("sharded bus channels are for a Redis Cluster (`redis_cluster`)");
        }
        Ok(())
    }

    /// Every duration setting within its bounds: longer than zero where zero means nothing,
    /// at most [`MAX_TTL`] for lifetimes and [`MAX_WAIT`] for waits and periods. The error
    /// names the setting.
    fn check_durations(&self) -> Result<(), Error> {
        let r = &self.resilience;
        let lifetimes = [
            ("default_ttl", Some(self.default_ttl), true),
            ("tombstone_ttl", Some(self.tombstone_ttl), true),
            ("stale_for", Some(r.stale_for), false),
        ];
        let waits = [
            ("redis_timeout", Some(self.redis_timeout), true),
            ("bus_heartbeat", Some(self.heartbeat), true),
            ("redis_cooldown", Some(self.cooldown), false),
            ("version_refresh", Some(self.version_refresh), false),
            ("shutdown_timeout", Some(self.shutdown_timeout), false),
            ("soft_timeout", r.soft_timeout, true),
            ("hard_timeout", r.hard_timeout, true),
            ("fleet_single_flight", r.fleet, true),
            ("fail_safe_throttle", Some(r.throttle), false),
        ];
        let bounded = lifetimes
            .iter()
            .map(|(name, d, positive)| (name, d, positive, MAX_TTL, "ten years"))
            .chain(
                waits
                    .iter()
                    .map(|(name, d, positive)| (name, d, positive, MAX_WAIT, "a day")),
            );
        for (name, duration, positive, max, max_text) in bounded {
            let Some(duration) = *duration else { continue };
            if *positive && duration.is_zero() {
                return Err(Error::Config(format!("`{name}` must be longer than zero")));
            }
            if duration > max {
                return Err(Error::Config(format!(
                    "`{name}` is {duration:?}, longer than the {max_text} it takes at most"
                )));
            }
        }
        Ok(())
    }

    /// Builds the cache. With Redis, it connects and subscribes to the invalidation bus
    /// before returning; when Redis cannot be reached within the Redis timeout (or refuses
    /// the connection, say for a wrong password) it still returns the cache, which serves
    /// from L1 and the functions (fail-open), logs why, and keeps connecting in the
    /// background.
    ///
    /// Fails on an invalid configuration or Redis URL, and, with
    /// [`redis_cluster`](Self::redis_cluster), when no node of the cluster answers. Behind
    /// [`redis_sentinel`](Self::redis_sentinel), no answer from the sentinels is like Redis
    /// down: the cache is built and keeps asking.
    pub async fn build(self) -> Result<Cache, Error> {
        self.validate()?;
        let wakeups = Arc::new(Wakeups::default());
        let (connector, sources, target) = if !self.cluster_urls.is_empty() {
            self.cluster_connector()?
        } else if let Some(sentinel) = &self.sentinel {
            self.sentinel_connector(sentinel, &wakeups)?
        } else if let Some(target) = self.redis_target.clone() {
            self.single_connector(
                target.map_err(|e| Error::Config(format!("invalid Redis connection info: {e}")))?,
            )?
        } else {
            return Ok(self.build_local());
        };
        let cluster = matches!(connector, Connector::Cluster(_));
        let instance = RandomState::new().hash_one(std::process::id());
        let layout = Layout::new(&self.namespace);
        let channel = format!("{}bus", layout.root());
        let timeout = self.redis_timeout;
        let link = Link::start(
            connector,
            LinkTimings {
                timeout,
                heartbeat: self.heartbeat,
                max_backoff: self.cooldown,
            },
            Arc::clone(&wakeups),
            target.clone(),
        );
        if cluster && !link.first_attempt(timeout).await {
            return Err(Error::Unavailable {
                operation: "connect to the cluster",
            });
        }
        let l2 = L2::new(link.clone(), cluster, self.bus_channels, self.compat_0_1);
        if cluster {
            tokio::spawn(l2.clone().prefetch_layout());
        }
        let timings = BusTimings {
            timeout,
            heartbeat: self.heartbeat,
            max_backoff: self.cooldown,
        };
        let (bus, listener) = bus::bus(
            sources,
            l2.clone(),
            channel,
            instance,
            timings,
            wakeups,
            layout.root().into(),
        );
        let cache = self.assemble(layout, Some(l2), Some(bus), instance);
        let peer: std::sync::Weak<dyn bus::Peer> = Arc::downgrade(cache.inner()) as _;
        let ready = listener.spawn(peer);
        let (subscribed, connected) = tokio::join!(
            tokio::time::timeout(timeout, ready),
            link.first_attempt(timeout)
        );
        if subscribed.is_err() || !connected {
            tracing::warn!(
                target: "cachemacro",
                redis = %target,
                "cache: Redis is not available yet (see the errors logged); serving from memory and the functions, and connecting in the background"
            );
        }
        Ok(cache)
    }

    /// The configuration of every data connection to one server. No response timeout:
    /// every call on these connections is bounded end to end by the link (`Link::run_on`,
    /// and the supervisor's probe), and a second timer per request would only cost a
    /// registration in tokio's timer wheel on every read.
    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.redis_timeout))
            .set_response_timeout(None)
    }

    /// How to connect to one server.
    fn single_connector(
        &self,
        info: ConnectionInfo,
    ) -> Result<(Connector, Vec<Source>, String), Error> {
        let target = describe(&info);
        #[cfg(feature = "tls-rustls")]
        let client = match &self.tls {
            Some(certificates) => redis::Client::build_with_tls(info, certificates.clone()),
            None => redis::Client::open(info),
        };
        #[cfg(not(feature = "tls-rustls"))]
        let client = redis::Client::open(info);
        let client =
            client.map_err(|e| Error::Config(format!("invalid Redis target `{target}`: {e}")))?;
        Ok((
            Connector::Single {
                client: client.clone(),
                config: self.connection_config(),
            },
            vec![Source::Classic(vec![client])],
            target,
        ))
    }

    /// How to connect to the primary the sentinels name; the bus subscribes where the link
    /// connected.
    fn sentinel_connector(
        &self,
        sentinel: &SentinelConfig,
        wakeups: &Wakeups,
    ) -> Result<(Connector, Vec<Source>, String), Error> {
        let resolver = Resolver::new(sentinel).map_err(|e| {
            Error::Config(format!(
                "invalid Redis Sentinel addresses {:?}: {e}",
                sentinel
                    .sentinels
                    .iter()
                    .map(|u| redacted(u))
                    .collect::<Vec<_>>()
            ))
        })?;
        let target = resolver.describe();
        Ok((
            Connector::Sentinel {
                resolver: Arc::new(resolver),
                config: self.connection_config(),
            },
            vec![Source::Primary(wakeups.primary.subscribe())],
            target,
        ))
    }

    /// How to connect to a cluster, and where the bus subscribes.
    fn cluster_connector(&self) -> Result<(Connector, Vec<Source>, String), Error> {
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
            // Follow MOVED and ASK, and retry TRYAGAIN, CLUSTERDOWN and a node being
            // replaced with a short back-off, as often as the Redis timeout (which bounds
            // every call end to end, see `Link::run_on`) leaves time for: a slot migration
            // or a failover is then ridden out, not reported.
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(1)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .retry_wait_formula(2, 2)
            .build()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster nodes {urls:?}: {e}")))?;
        let target = urls
            .iter()
            .map(|u| redacted(u))
            .collect::<Vec<_>>()
            .join(",");
        let sharded = || Source::Sharded {
            seeds: clients.clone(),
            known: Vec::new(),
        };
        let sources = match self.bus_channels {
            BusChannels::Classic => vec![Source::Classic(clients.clone())],
            BusChannels::ClassicAndSharded => vec![Source::Classic(clients.clone()), sharded()],
            BusChannels::Sharded => vec![sharded()],
        };
        Ok((Connector::Cluster(cluster), sources, target))
    }

    /// Builds an in-process cache synchronously, for a `static` or a non-async context.
    /// Fails on an invalid configuration, or when [`redis`](Self::redis) was set (use
    /// [`build`](Self::build) for that).
    ///
    /// ```
    /// use once_cell::sync::Lazy;
    /// use cachemacro::Cache;
    ///
    /// static APP_CACHE: Lazy<Cache> =
    ///     Lazy::new(|| Cache::builder().namespace("app").l1_capacity(100_000).build_in_memory().unwrap());
    /// ```
    pub fn build_in_memory(self) -> Result<Cache, Error> {
        self.validate()?;
        if self.redis_target.is_some() || !self.cluster_urls.is_empty() || self.sentinel.is_some() {
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
        let formats = match self.codec {
            Some((codec, native)) => crate::codec::Formats::new(codec, native),
            None => {
                let bincode = Bincode::with_limit(self.max_value_size as u64);
                crate::codec::Formats::new(Arc::new(bincode), Some(bincode))
            }
        };
        let l1 = match self.l1_max_bytes {
            None => L1::bounded(
                Bound::Entries(self.l1_capacity),
                self.l1_front_capacity.unwrap_or(self.l1_capacity),
            ),
            Some(bytes) => L1::bounded(
                Bound::Bytes {
                    bytes,
                    weigh: self
                        .l1_weigher
                        .unwrap_or_else(|| Arc::new(crate::l1::default_weight)),
                    estimated_entries: self.l1_capacity,
                },
                self.l1_front_capacity.unwrap_or(0),
            ),
        };
        Cache::from_inner(Inner {
            local_tags: crate::tags::LocalTags::new(4096),
            layout,
            unscoped_prefix,
            default_ttl: self.default_ttl,
            l1,
            flights: Flights::new(),
            l2,
            bus,
            formats,
            compressor: crate::compress::Compressor {
                compression: self.compression,
                above: self.compress_above,
            },
            max_value_size: self.max_value_size,
            tombstone_ttl: self.tombstone_ttl,
            instance,
            ttl_jitter: self.ttl_jitter,
            counters: Default::default(),
            versions: crate::versions::Versions::new(if self.compat_0_1 {
                self.version_refresh.min(COMPAT_VERSION_REFRESH)
            } else {
                self.version_refresh
            }),
            defaults: self.resilience,
            stale_window_ms: Default::default(),
            tag_log: Default::default(),
            waiters: Default::default(),
            background: Default::default(),
            shutdown_timeout: self.shutdown_timeout,
            compat_0_1: self.compat_0_1,
            shut: Default::default(),
        })
    }
}

/// What [`CacheBuilder::redis`] takes: what redis-rs's `IntoConnectionInfo` takes (a URL
/// as `&str` or `String`, a `ConnectionInfo`, a `ConnectionAddr`, a `(host, port)` pair),
/// and a `&String`, which `.redis(&url)` passes.
pub trait RedisTarget {
    /// The connection info redis-rs makes of it, or why it makes none.
    fn connection_info(self) -> redis::RedisResult<ConnectionInfo>;
}

macro_rules! redis_targets {
    ($($target:ty),*) => {$(
        impl RedisTarget for $target {
            fn connection_info(self) -> redis::RedisResult<ConnectionInfo> {
                self.into_connection_info()
            }
        }
    )*};
}

redis_targets!(
    &str,
    String,
    ConnectionInfo,
    ConnectionAddr,
    (&str, u16),
    (String, u16)
);

impl RedisTarget for &String {
    fn connection_info(self) -> redis::RedisResult<ConnectionInfo> {
        self.as_str().into_connection_info()
    }
}

/// Where a connection goes, without credentials, for logs.
fn describe(info: &ConnectionInfo) -> String {
    let scheme = match info.addr() {
        ConnectionAddr::Tcp(..) => "redis",
        ConnectionAddr::TcpTls { .. } => "rediss",
        ConnectionAddr::Unix(_) => "redis+unix",
        _ => "redis",
    };
    format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db())
}

/// `url` without its password, for logs.
fn redacted(url: &str) -> String {
    let redact = || {
        let (scheme, rest) = url.split_once("://")?;
        let (userinfo, host) = rest.rsplit_once('@')?;
        let (user, _password) = userinfo.split_once(':')?;
        Some(format!("{scheme}://{user}:***@{host}"))
    };
    redact().unwrap_or_else(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::redacted;
    use crate::{BusChannels, Cache, Error};

    #[test]
    fn sentinel_and_sharded_channels_are_checked() {
        let invalid =
            |builder: super::CacheBuilder| matches!(builder.validate(), Err(Error::Config(_)));
        assert!(invalid(
            Cache::builder()
                .redis("redis://127.0.0.1/")
                .bus_channels(BusChannels::Sharded)
        ));
        assert!(invalid(
            Cache::builder()
                .redis("redis://127.0.0.1/")
                .redis_sentinel("mymaster", &["redis://127.0.0.1:26379"])
        ));
        assert!(invalid(Cache::builder().redis_sentinel("mymaster", &[])));
        assert!(invalid(Cache::builder().redis_sentinel_auth(
            None,
            Some("pw"),
            0
        )));
        assert!(Cache::builder()
            .redis_sentinel("mymaster", &["redis://127.0.0.1:26379"])
            .validate()
            .is_ok());
        assert!(Cache::builder()
            .redis_cluster(&["redis://127.0.0.1:7000"])
            .bus_channels(BusChannels::ClassicAndSharded)
            .validate()
            .is_ok());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redacted("rediss://app:p@ss@host"), "rediss://app:***@host");
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
