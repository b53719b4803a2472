//! The data connection to Redis, supervised.
//!
//! One multiplexed connection (or one cluster connection) carries every command of this
//! instance. A background task owns it: it connects, and reconnects after any failure
//! (refused, reset, an authentication error, a port that speaks another protocol) with a
//! short back-off; it checks the connection with a `PING` every heartbeat, at once when a
//! call failed, and when the invalidation bus lost its own connection.
//!
//! Callers never wait on a connection that is known to be bad:
//!
//! - **down** (not connected): every call fails at once;
//! - **in doubt** (a call just failed or timed out and the probe has not answered yet):
//!   reads skip Redis at once, writes wait for the probe within their own deadline;
//! - **up**: the call runs.
//!
//! Every call is bounded, end to end (waiting for a connection included), by the Redis
//! timeout. So a Redis that hangs costs the calls in flight at that moment one timeout
//! (one wave), not one per caller or one per cool-down, and a Redis that comes back is
//! used again as soon as one connection attempt succeeds.
//!
//! # Sentinel
//!
//! Behind Redis Sentinel, every connection attempt first asks the sentinels for the current
//! primary, and the link publishes the server it connected to ([`Wakeups::primary`]): the
//! invalidation bus subscribes on that same server and resubscribes when the link moves.
//! The link leaves a server that stops being the primary: the heartbeat asks `ROLE`
//! instead of `PING`, and a `READONLY` answer puts the connection in doubt, so the probe
//! asks at once. (The sentinels also close the normal connections of a primary they
//! demote.)

use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::sentinel::Resolver;
use crate::throttle::Throttle;

/// A connection to one Redis server or to a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How to make a new connection.
#[derive(Clone)]
pub(crate) enum Connector {
    Single {
        client: redis::Client,
        config: AsyncConnectionConfig,
    },
    Cluster(ClusterClient),
    /// The primary the sentinels name, asked again on every connection attempt.
    Sentinel {
        resolver: Arc<Resolver>,
        config: AsyncConnectionConfig,
    },
}

impl Connector {
    /// A new connection, and for Sentinel the primary it is to.
    async fn connect(&self) -> Result<(Conn, Option<Primary>), RedisError> {
        match self {
            Connector::Single { client, config } => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(|conn| (Conn::Single(conn), None)),
            Connector::Cluster(client) => client
                .get_async_connection()
                .await
                .map(|conn| (Conn::Cluster(conn), None)),
            Connector::Sentinel { resolver, config } => {
                let client = resolver.primary().await?;
                let conn = client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                Ok((Conn::Single(conn), Some(Primary::new(client))))
            }
        }
    }

    /// The command that checks a connection: `ROLE` behind Sentinel (the server must still
    /// be the primary), `PING` otherwise.
    fn check(&self) -> Cmd {
        match self {
            Connector::Sentinel { .. } => redis::cmd("ROLE"),
            Connector::Single { .. } | Connector::Cluster(_) => redis::cmd("PING"),
        }
    }
}

impl Conn {
    /// Runs the check `cmd`. On a cluster it goes to every primary and succeeds when one
    /// answers: the cluster is reachable while any node is, and a primary that died (or a
    /// slot that migrates) concerns only the calls to its slots, which report their own
    /// faults while the cluster client finds its replacement.
    async fn probe(&mut self, cmd: Cmd) -> redis::RedisResult<Value> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
        self.route(
            cmd,
            RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::OneSucceeded),
            )),
        )
        .await
    }

    /// Runs `cmd` where `routing` says on a cluster; on one server, there.
    pub(crate) async fn route(
        &mut self,
        cmd: Cmd,
        routing: redis::cluster_routing::RoutingInfo,
    ) -> redis::RedisResult<Value> {
        match self {
            Conn::Single(conn) => cmd.query_async(conn).await,
            Conn::Cluster(conn) => conn.route_command(cmd, routing).await,
        }
    }
}

/// The server the link is connected to, behind Sentinel.
#[derive(Clone)]
pub(crate) struct Primary {
    /// A client for it, with the credentials and database of the link's.
    pub(crate) client: redis::Client,
    /// `host:port`, to tell servers apart.
    pub(crate) address: String,
}

impl Primary {
    fn new(client: redis::Client) -> Self {
        let address = client.get_connection_info().addr().to_string();
        Self { client, address }
    }
}

impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// Why a Redis call did not succeed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Not attempted: the connection is down, or in doubt and this was a read.
    Unavailable,
    /// The call did not finish within the Redis timeout (this one).
    Timeout(Duration),
    /// The connection failed (reset, refused, closed...).
    Connection(RedisError),
    /// Redis answered with an error (`OOM`, `WRONGTYPE`, a script error...): the connection
    /// is fine.
    Reply(RedisError),
}

impl Fault {
    fn from_redis(err: RedisError) -> Self {
        if is_connection_error(&err) {
            Fault::Connection(err)
        } else {
            Fault::Reply(err)
        }
    }

    /// The server's error code (`OOM`, `WRONGTYPE`...), for an error reply.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Fault::Reply(err) => err.code().or_else(|| {
                // An error inside a pipeline or a script carries the code in its text only.
                let text = err.to_string();
                ["WRONGTYPE", "OOM", "READONLY"]
                    .into_iter()
                    .find(|code| text.contains(code))
            }),
            _ => None,
        }
    }

    /// Whether this says something about the connection (as opposed to one command).
    pub(crate) fn is_connection(&self) -> bool {
        matches!(self, Fault::Timeout(_) | Fault::Connection(_))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Unavailable => f.write_str("Redis is unavailable"),
            Fault::Timeout(after) => write!(f, "Redis did not answer within {after:?}"),
            Fault::Connection(err) | Fault::Reply(err) => err.fmt(f),
        }
    }
}

/// Whether `err` means the connection (not the command) failed.
fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Parse
                | ErrorKind::RESP3NotSupported
        )
}

/// What a call needs from the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A read can fall back to the function: skip Redis while it is in doubt.
    Read,
    /// An invalidation or a write: worth waiting (within the timeout) for the probe.
    Write,
}

#[derive(Clone)]
enum State {
    /// The first connection attempt has not finished.
    Starting,
    Up {
        conn: Conn,
        doubted: bool,
        /// Which connection this is: one more for each connection made.
        epoch: u64,
    },
    Down,
}

/// Signals between the link and the invalidation bus: each asks the other to look again.
#[derive(Default)]
pub(crate) struct Wakeups {
    /// Asks the link to check its connection now (the bus lost its own) or to stop waiting
    /// before the next connection attempt (the bus got through).
    pub(crate) link: Notify,
    /// Asks the bus to stop waiting before its next subscription attempt (the link got
    /// through).
    pub(crate) bus: Notify,
    /// Behind Sentinel, the primary the link last connected to: the bus subscribes there.
    pub(crate) primary: watch::Sender<Option<Primary>>,
}

/// Timings of the link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkTimings {
    /// The bound of every call, and of every connection attempt and probe.
    pub(crate) timeout: Duration,
    /// How often an idle connection is checked.
    pub(crate) heartbeat: Duration,
    /// The longest pause between two connection attempts while Redis is down.
    pub(crate) max_backoff: Duration,
}

struct Shared {
    state: RwLock<State>,
    /// Bumped on every change of `state`, to wake callers waiting for it.
    changed: watch::Sender<u64>,
    wakeups: Arc<Wakeups>,
    timeout: Duration,
    /// Every failed call, for the stats.
    errors: std::sync::atomic::AtomicU64,
    /// Stops the supervisor when sent to ([`Link::close`]) or dropped with the last `Link`.
    stop: watch::Sender<()>,
    /// Set by [`Link::close`]: every call is then `Fault::Unavailable`.
    closed: std::sync::atomic::AtomicBool,
    /// A cluster connection: a call's fault concerns its node, not the link (see
    /// [`Link::run_on`]).
    cluster: bool,
}

/// The supervised data connection. Cloning it is cheap; the supervisor stops when the
/// last clone is dropped.
#[derive(Clone)]
pub(crate) struct Link {
    shared: Arc<Shared>,
}

impl Link {
    /// Starts the supervisor, which makes the first connection in the background.
    pub(crate) fn start(
        connector: Connector,
        timings: LinkTimings,
        wakeups: Arc<Wakeups>,
        target: String,
    ) -> Self {
        let (stop_tx, stop_rx) = watch::channel(());
        let shared = Arc::new(Shared {
            state: RwLock::new(State::Starting),
            changed: watch::Sender::new(0),
            wakeups,
            timeout: timings.timeout,
            errors: Default::default(),
            stop: stop_tx,
            closed: Default::default(),
            cluster: matches!(connector, Connector::Cluster(_)),
        });
        let supervisor = Supervisor {
            shared: Arc::downgrade(&shared),
            wakeups: Arc::clone(&shared.wakeups),
            connector,
            timings,
            stop: stop_rx,
            target,
        };
        tokio::spawn(supervisor.run());
        Self { shared }
    }

    /// Runs `call` on the connection, bounded end to end by the Redis timeout.
    pub(crate) async fn run<T, F, Fut>(&self, access: Access, call: F) -> Result<T, Fault>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.run_on(access, None, call).await
    }

    /// [`run`](Self::run), only on the connection of `epoch` (see [`epoch`](Self::epoch)):
    /// `Fault::Unavailable` when it has been replaced since, which means Redis may have
    /// restarted and lost what the caller read from it.
    pub(crate) async fn run_on<T, F, Fut>(
        &self,
        access: Access,
        epoch: Option<u64>,
        call: F,
    ) -> Result<T, Fault>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + self.shared.timeout;
        let attempt = tokio::time::timeout_at(deadline, async {
            let (conn, current) = self.conn(access).await?;
            if epoch.is_some_and(|epoch| epoch != current) {
                return Err(Fault::Unavailable);
            }
            call(conn).await.map_err(Fault::from_redis)
        })
        .await;
        let result = attempt.unwrap_or(Err(Fault::Timeout(self.shared.timeout)));
        if let Err(fault) = &result {
            // Not attempted is not a failure; WRONGTYPE is what the key holds (an unusable
            // value), not a failure of Redis.
            if !matches!(fault, Fault::Unavailable) && fault.code() != Some("WRONGTYPE") {
                self.shared
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // READONLY: the server was demoted to a replica (a failover); the probe finds out.
            // On a cluster, a fault is one node's (dead, paused, being replaced), which the
            // cluster client reconnects on its own; the other nodes' slots stay in use, and
            // the probe (any primary answering) says whether the cluster is reachable.
            if fault.is_connection() || fault.code() == Some("READONLY") {
                if self.shared.cluster {
                    self.shared.wakeups.link.notify_one();
                } else {
                    self.doubt();
                }
            }
        }
        result
    }

    /// Runs `cmd`.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        access: Access,
        cmd: &Cmd,
    ) -> Result<T, Fault> {
        self.run(access, |mut conn| async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// Runs `pipe` in one round trip.
    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &self,
        access: Access,
        pipe: &Pipeline,
    ) -> Result<T, Fault> {
        self.run(access, |mut conn| async move {
            pipe.query_async(&mut conn).await
        })
        .await
    }

    /// A connection for `access`, waiting (within the caller's deadline) only while the
    /// first connection is being made, or, for a write, while the connection is in doubt.
    async fn conn(&self, access: Access) -> Result<(Conn, u64), Fault> {
        if let Some(ready) = self.ready(access) {
            return ready;
        }
        let mut changed = self.shared.changed.subscribe();
        loop {
            if let Some(ready) = self.ready(access) {
                return ready;
            }
            if changed.changed().await.is_err() {
                return Err(Fault::Unavailable);
            }
        }
    }

    /// The answer for `access` in the current state; `None` to wait for a change.
    fn ready(&self, access: Access) -> Option<Result<(Conn, u64), Fault>> {
        if self.is_closed() {
            return Some(Err(Fault::Unavailable));
        }
        match &*read(&self.shared.state) {
            State::Up {
                conn,
                doubted: false,
                epoch,
            } => Some(Ok((conn.clone(), *epoch))),
            State::Up { doubted: true, .. } if access == Access::Read => {
                Some(Err(Fault::Unavailable))
            }
            State::Down => Some(Err(Fault::Unavailable)),
            State::Up { doubted: true, .. } | State::Starting => None,
        }
    }

    /// Marks the connection in doubt and asks the supervisor to probe it.
    fn doubt(&self) {
        {
            let mut state = write(&self.shared.state);
            if let State::Up { doubted, .. } = &mut *state {
                if *doubted {
                    return;
                }
                *doubted = true;
            }
        }
        self.shared.changed.send_modify(|n| *n += 1);
        self.shared.wakeups.link.notify_one();
    }

    /// Which connection is in use now: a caller that read something from Redis can check,
    /// with [`run_on`](Self::run_on), that it writes on the same one.
    pub(crate) fn epoch(&self) -> u64 {
        match &*read(&self.shared.state) {
            State::Up { epoch, .. } => *epoch,
            State::Starting | State::Down => 0,
        }
    }

    /// Whether calls go to Redis right now (connected, not in doubt).
    pub(crate) fn is_up(&self) -> bool {
        !self.is_closed() && matches!(&*read(&self.shared.state), State::Up { doubted: false, .. })
    }

    /// The bound of every call.
    pub(crate) fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops the supervisor and drops the connection: every later call is
    /// `Fault::Unavailable`, without waiting.
    pub(crate) fn close(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.stop.send(());
        *write(&self.shared.state) = State::Down;
        self.shared.changed.send_modify(|n| *n += 1);
    }

    /// Failed calls so far.
    pub(crate) fn errors(&self) -> u64 {
        self.shared
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the first connection attempt has finished (or `timeout` passed); returns
    /// whether the link is up.
    pub(crate) async fn first_attempt(&self, timeout: Duration) -> bool {
        let mut changed = self.shared.changed.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while matches!(&*read(&self.shared.state), State::Starting) {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.is_up()
    }
}

fn read(state: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    // The state is replaced whole under the lock; a panic cannot leave it half-written.
    state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(state: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The background task that owns the connection.
struct Supervisor {
    shared: Weak<Shared>,
    wakeups: Arc<Wakeups>,
    connector: Connector,
    timings: LinkTimings,
    stop: watch::Receiver<()>,
    /// What it connects to, for logs.
    target: String,
}

impl Supervisor {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.timings.max_backoff);
        let mut was_up = false;
        let mut epoch = 0;
        let complaints = Throttle::new(Duration::from_secs(10));
        loop {
            let attempt = tokio::select! {
                _ = self.stop.changed() => return,
                attempt = tokio::time::timeout(self.timings.timeout, self.connector.connect()) => attempt,
            };
            match attempt {
                Ok(Ok((conn, primary))) => {
                    epoch += 1;
                    if let Some(primary) = primary {
                        let moved = self.wakeups.primary.send_replace(Some(primary.clone()));
                        if moved.is_some_and(|old| old.address != primary.address) {
                            tracing::info!(target: "cachemacro", redis = %self.target, primary = %primary.address, "cache: the sentinels name a new Redis primary");
                        }
                    }
                    if !self.set(State::Up {
                        conn: conn.clone(),
                        doubted: false,
                        epoch,
                    }) {
                        return;
                    }
                    if was_up || complaints.has_fired() {
                        tracing::info!(target: "cachemacro", redis = %self.target, "cache: connected to Redis again");
                    }
                    was_up = true;
                    complaints.reset();
                    // The bus may be waiting to retry: Redis is back.
                    self.wakeups.bus.notify_one();
                    backoff.reset();
                    match self.watch(conn).await {
                        None => return,
                        Some(reason) => {
                            if !self.set(State::Down) {
                                return;
                            }
                            tracing::warn!(target: "cachemacro", redis = %self.target, %reason, "cache: lost the Redis connection; reads go to the functions until it is back");
                        }
                    }
                }
                Ok(Err(err)) => {
                    if !self.set(State::Down) {
                        return;
                    }
                    if let Some(suppressed) = complaints.allow() {
                        tracing::warn!(target: "cachemacro", redis = %self.target, error = %err, suppressed, "cache: cannot connect to Redis ({}); retrying", describe(&err));
                    }
                }
                Err(_) => {
                    if !self.set(State::Down) {
                        return;
                    }
                    if let Some(suppressed) = complaints.allow() {
                        tracing::warn!(target: "cachemacro", redis = %self.target, timeout = ?self.timings.timeout, suppressed, "cache: connecting to Redis timed out; retrying");
                    }
                }
            }
            // Wait before the next attempt, unless the bus just got through (Redis is back).
            tokio::select! {
                _ = self.stop.changed() => return,
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                _ = self.wakeups.link.notified() => {}
            }
        }
    }

    /// Checks `conn` every heartbeat and whenever asked, until a check fails (`Some` with
    /// why) or the link is dropped (`None`).
    async fn watch(&mut self, conn: Conn) -> Option<String> {
        loop {
            tokio::select! {
                _ = self.stop.changed() => return None,
                _ = tokio::time::sleep(self.timings.heartbeat) => {}
                _ = self.wakeups.link.notified() => {}
            }
            let mut conn = conn.clone();
            let check = self.connector.check();
            let ping = tokio::time::timeout(self.timings.timeout, conn.probe(check)).await;
            match ping {
                Ok(Ok(answer)) => {
                    if matches!(self.connector, Connector::Sentinel { .. })
                        && !matches!(
                            redis::from_redis_value::<redis::Role>(answer),
                            Ok(redis::Role::Primary { .. })
                        )
                    {
                        return Some("the server is no longer the primary".to_owned());
                    }
                    let shared = self.shared.upgrade()?;
                    let cleared = {
                        let mut state = write(&shared.state);
                        match &mut *state {
                            State::Up { doubted, .. } if *doubted => {
                                *doubted = false;
                                true
                            }
                            _ => false,
                        }
                    };
                    if cleared {
                        shared.changed.send_modify(|n| *n += 1);
                    }
                }
                Ok(Err(err)) if !is_connection_error(&err) => {
                    // The server answered, with an error (`LOADING`...): the connection works.
                }
                Ok(Err(err)) => return Some(err.to_string()),
                Err(_) => {
                    return Some(format!(
                        "no answer to PING within {:?}",
                        self.timings.timeout
                    ))
                }
            }
        }
    }

    /// Publishes `state`; `false` when the link is gone.
    fn set(&self, state: State) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        *write(&shared.state) = state;
        shared.changed.send_modify(|n| *n += 1);
        true
    }
}

/// A hint on what to fix, for a connection error.
pub(crate) fn describe(err: &RedisError) -> &'static str {
    if err.kind() == ErrorKind::AuthenticationFailed
        || err.code() == Some("NOAUTH")
        || err.code() == Some("WRONGPASS")
    {
        "Redis refused the credentials: check the user name and password in the URL"
    } else if err.kind() == ErrorKind::MasterNameNotFoundBySentinel {
        "no sentinel names a reachable primary for the master name (a failover may be under way): check the name and the sentinels"
    } else if err.is_connection_refusal() {
        "nothing listens on that address"
    } else if err.kind() == ErrorKind::Parse {
        "the server does not speak the Redis protocol: check the address"
    } else if err.is_timeout() {
        "no answer in time"
    } else if matches!(
        err.code(),
        Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN")
    ) || err.kind() == ErrorKind::ClusterConnectionNotFound
    {
        "the cluster is moving a slot or replacing a node; this passes once it is done"
    } else {
        "Redis is not reachable"
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    fn server_error(reply: &str) -> redis::RedisError {
        redis::parse_redis_value(reply.as_bytes())
            .and_then(redis::Value::extract_error)
            .expect_err("an error reply")
    }

    #[test]
    fn a_moved_slot_is_not_described_as_redis_unreachable() {
        for reply in [
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-ASK 3999 127.0.0.1:6381\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
        ] {
            let hint = describe(&server_error(reply));
            assert!(hint.contains("moving a slot"), "{reply}: {hint}");
        }
        assert_eq!(
            describe(&server_error("-ERR something else\r\n")),
            "Redis is not reachable"
        );
    }
}
