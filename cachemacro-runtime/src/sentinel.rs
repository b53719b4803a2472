//! Finding the Redis primary through Redis Sentinel.
//!
//! The link asks the sentinels for the primary of a master name on every (re)connection,
//! through redis-rs's [`Sentinel`], which also checks with `ROLE` that the server it names
//! calls itself a primary. The invalidation bus subscribes on the server the link resolved
//! (see `link.rs`), so the two always talk to the same primary and both follow a failover.

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError};

/// Where to find the primary: what [`CacheBuilder::redis_sentinel`] and its companions set.
///
/// [`CacheBuilder::redis_sentinel`]: crate::CacheBuilder::redis_sentinel
#[derive(Clone, Debug, Default)]
pub(crate) struct SentinelConfig {
    /// The master name the sentinels monitor (`sentinel monitor <name> ...`).
    pub(crate) master: String,
    /// `redis://[user:password@]host:port` of each sentinel.
    pub(crate) sentinels: Vec<String>,
    /// The credentials of the primary (the sentinels' own are in their URLs).
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The database number on the primary.
    pub(crate) db: i64,
}

/// Asks the sentinels for the current primary.
pub(crate) struct Resolver {
    master: String,
    sentinels: Vec<ConnectionInfo>,
    node: SentinelNodeConnectionInfo,
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// redis-rs's client for the sentinels, which keeps a connection to each it talked to.
    sentinel: Sentinel,
    /// Which sentinel comes first in `sentinel`'s list.
    first: usize,
    /// Whether the last lookup did not complete (failed, or was given up at the timeout).
    failed: bool,
}

impl Resolver {
    /// Fails on a sentinel URL that does not parse, or on an empty list.
    pub(crate) fn new(config: &SentinelConfig) -> Result<Self, RedisError> {
        let sentinels = config
            .sentinels
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        if sentinels.is_empty() {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no sentinel address given",
            )));
        }
        let mut redis = RedisConnectionInfo::default().set_db(config.db);
        if let Some(username) = &config.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &config.password {
            redis = redis.set_password(password);
        }
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
        let sentinel = Sentinel::build(sentinels.clone())?;
        Ok(Self {
            master: config.master.clone(),
            sentinels,
            node,
            state: tokio::sync::Mutex::new(State {
                sentinel,
                first: 0,
                failed: false,
            }),
        })
    }

    /// A client for the current primary of the master name.
    ///
    /// redis-rs asks the sentinels in their list order and takes the first that names a
    /// valid primary, so one sentinel that hangs would hold up every lookup behind it: after
    /// a lookup that did not complete, the next one starts with the next sentinel.
    pub(crate) async fn primary(&self) -> Result<redis::Client, RedisError> {
        let mut state = self.state.lock().await;
        if state.failed {
            state.first = (state.first + 1) % self.sentinels.len();
            let mut rotated = self.sentinels.clone();
            rotated.rotate_left(state.first);
            state.sentinel = Sentinel::build(rotated)?;
        }
        // Stays set if this future is dropped at the caller's timeout.
        state.failed = true;
        let client = state
            .sentinel
            .async_master_for(&self.master, Some(&self.node))
            .await?;
        state.failed = false;
        Ok(client)
    }

    /// The sentinels' addresses and the master name, for logs.
    pub(crate) fn describe(&self) -> String {
        let addresses: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| s.addr().to_string())
            .collect();
        format!("sentinel {} via {}", self.master, addresses.join(","))
    }
}
