//! The invalidation bus: Redis pub/sub, so that every instance drops its L1 copy of what
//! another instance removed.
//!
//! # Message format (version `cm1`)
//!
//! One pub/sub message per invalidation:
//!
//! ```text
//! cm1 <instance id, 16 hex digits> del <storage key>     remove one key
//! cm1 <instance id, 16 hex digits> clr                   clear all L1 entries of the namespace
//! cm1 <instance id, 16 hex digits> pfx <key prefix>      clear the L1 entries under a prefix (a scope)
//! cm1 <instance id, 16 hex digits> ver <version> <group> a group version was bumped to <version>
//! cm1 <instance id, 16 hex digits> tag <tag>             drop the entries registered under a tag in memory only
//! cm1 <instance id, 16 hex digits> fil <storage key>     a key was loaded for the fleet: its waiters look again
//! ```
//!
//! An instance ignores its own messages (they were applied locally already) and any message
//! of another version or kind, so a newer format can be rolled out beside this one.
//!
//! # Channels
//!
//! Classic pub/sub (`PUBLISH`/`SUBSCRIBE`) on `<namespace>:c1:bus`: on one server, and by
//! default on a cluster, where Redis forwards every message to every node, so a
//! subscription on any one node hears all of them.
//!
//! On a cluster, [`BusChannels::Sharded`] uses Redis 7 sharded pub/sub instead: 16 channels
//! `<namespace>:c1:bus:s<i>:{<tag i>}` (`i` from 0 to 15), each with a hash tag chosen so
//! that channel `i` lies in slots `1024 i .. 1024 (i + 1)`, which spreads them over the
//! primaries (see [`shard_channels`]). A message goes by `SPUBLISH` to the channel of
//! the slot band of its subject (the key, prefix, tag or group): one node and its replicas
//! carry it, not the whole cluster. Every instance subscribes to all 16 with `SSUBSCRIBE`,
//! each on the primary that serves the channel's slot. [`BusChannels::ClassicAndSharded`]
//! publishes and subscribes both ways, for the rolling deploy between the two.
//!
//! # Lost messages
//!
//! Pub/sub drops messages while a subscriber is disconnected. The listener therefore clears
//! this instance's L1 when its subscription is lost *and* again once it is subscribed again:
//! no invalidation missed during the outage can leave a stale L1 value past the reconnect.
//! A heartbeat PING on every subscribed connection detects one that died without closing.
//!
//! A subscription counts as lost when any of its connections closes or misses a heartbeat;
//! for sharded channels also when a node gives up a channel (Redis sends `sunsubscribe`
//! when the channel's slot moves to another node: a resharding, a failover); behind
//! Sentinel also when the data connection moved to another primary. Then every
//! connection is closed and the whole subscription made again from a fresh view of the
//! cluster, so no part of it can quietly stay on a node that no longer hears the channel.
//!
//! # Reconnecting
//!
//! The listener retries at once, then backs off from 25 ms up to the cache's
//! `redis_cooldown`; it also retries at once whenever the data connection gets through
//! (and tells the data connection to check itself when the bus drops), so both come back
//! together after a Redis restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use once_cell::sync::Lazy;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, ProtocolVersion, PushInfo, PushKind,
    RedisError, Value,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::l2::L2;
use crate::link::{Fault, Primary, Wakeups};
use crate::throttle::Throttle;

/// Which pub/sub channels carry the invalidation bus on a Redis Cluster
/// ([`CacheBuilder::bus_channels`](crate::CacheBuilder::bus_channels)).
///
/// Classic pub/sub on a cluster sends every message to every node, so the bus's traffic
/// grows with the cluster; sharded pub/sub (Redis 7) sends each to one primary and its
/// replicas. The message format is the same on both.
///
/// # Rolling deploy
///
/// An instance hears only the channels it subscribes to, so switching needs two deploys:
///
/// 1. Deploy with [`ClassicAndSharded`](Self::ClassicAndSharded): these instances publish
///    every message both ways and listen both ways, so they hear, and are heard by, the
///    instances still on [`Classic`](Self::Classic) (any older version of cachemacro).
/// 2. Once no instance runs `Classic` any more, deploy with [`Sharded`](Self::Sharded):
///    the `ClassicAndSharded` instances still running listen to the sharded channels too.
///
/// Never run `Classic` and `Sharded` instances of one namespace side by side: they do not
/// hear each other (each would keep its L1 copies of the other's removals until their
/// TTL). Going back takes the same two steps in reverse. While `ClassicAndSharded`
/// instances run, they receive every message twice (harmless: applying one is idempotent;
/// the `invalidations_received` counter counts both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusChannels {
    /// `PUBLISH`/`SUBSCRIBE` on one channel, heard through any one node. The default, and
    /// what every earlier version of cachemacro uses.
    #[default]
    Classic,
    /// Both: publish each message with `PUBLISH` and `SPUBLISH`, listen to both. For the
    /// rolling deploy from one to the other.
    ClassicAndSharded,
    /// `SPUBLISH`/`SSUBSCRIBE` on 16 channels spread over the primaries (Redis 7 or later).
    Sharded,
}

impl BusChannels {
    fn classic(self) -> bool {
        matches!(self, Self::Classic | Self::ClassicAndSharded)
    }

    fn sharded(self) -> bool {
        matches!(self, Self::Sharded | Self::ClassicAndSharded)
    }
}

/// How many sharded channels carry the bus. Part of the format: instances with another
/// number would not hear each other.
pub(crate) const SHARDS: usize = 16;

/// The hash tag of each sharded channel: the smallest integer (in decimal) whose slot lies
/// in the channel's band of 1024 slots.
static SHARD_TAGS: Lazy<Vec<String>> = Lazy::new(|| {
    (0..SHARDS)
        .map(|band| {
            (0u32..)
                .map(|n| n.to_string())
                .find(|tag| usize::from(crate::l2::slot(tag.as_bytes())) / 1024 == band)
                .expect("every band of 1024 slots holds some integer's slot")
        })
        .collect()
});

/// The sharded channels of the bus whose classic channel is `classic`, in shard order.
pub(crate) fn shard_channels(classic: &str) -> Vec<String> {
    (0..SHARD_TAGS.len())
        .map(|i| shard_channel(classic, i))
        .collect()
}

/// Sharded channel `i` of the bus whose classic channel is `classic`.
fn shard_channel(classic: &str, i: usize) -> String {
    format!("{classic}:s{i}:{{{}}}", SHARD_TAGS[i])
}

/// The shard of `payload`: the band of its subject's slot (for `del`, the key's own, so its
/// message usually goes to the node that holds the key).
fn shard_of(payload: &str) -> usize {
    // Input: `cm1 <instance> <kind> <subject>`. Output: the band of `<subject>`'s slot.
    let subject = payload.splitn(4, ' ').nth(3).unwrap_or("");
    usize::from(crate::l2::slot(subject.as_bytes())) / 1024
}

/// The commands that publish `payload` on the bus whose classic channel is `classic`.
pub(crate) fn publish_commands(channels: BusChannels, classic: &str, payload: &str) -> Vec<Cmd> {
    let mut commands = Vec::with_capacity(2);
    if channels.classic() {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(classic).arg(payload);
        commands.push(publish);
    }
    if channels.sharded() {
        let mut publish = redis::cmd("SPUBLISH");
        publish
            .arg(shard_channel(classic, shard_of(payload)))
            .arg(payload);
        commands.push(publish);
    }
    commands
}

const VERSION: &str = "cm1";

/// The first pause after a failed subscription attempt (the very first retry is immediate).
const MIN_BACKOFF: Duration = Duration::from_millis(25);

/// An invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Drop one storage key.
    Remove(String),
    /// Drop every entry.
    Clear,
    /// Drop every entry whose storage key starts with this prefix.
    ClearPrefix(String),
    /// A group version was bumped.
    Version { group: String, version: u64 },
    /// A tag was invalidated: drop the entries registered under it in memory only (those
    /// loaded while Redis could not be reached).
    Tag(String),
    /// A key was loaded for the fleet (or its loader gave up): the instances waiting for
    /// it look again.
    Filled(String),
}

impl Message {
    pub(crate) fn encode(&self, instance: u64) -> String {
        match self {
            Message::Remove(key) => format!("{VERSION} {instance:016x} del {key}"),
            Message::Clear => format!("{VERSION} {instance:016x} clr"),
            Message::ClearPrefix(prefix) => format!("{VERSION} {instance:016x} pfx {prefix}"),
            Message::Version { group, version } => {
                format!("{VERSION} {instance:016x} ver {version} {group}")
            }
            Message::Tag(tag) => format!("{VERSION} {instance:016x} tag {tag}"),
            Message::Filled(key) => format!("{VERSION} {instance:016x} fil {key}"),
        }
    }

    /// The sender and the message; `None` for anything this version does not understand.
    pub(crate) fn decode(payload: &[u8]) -> Option<(u64, Message)> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.splitn(4, ' ');
        if parts.next()? != VERSION {
            return None;
        }
        let instance = u64::from_str_radix(parts.next()?, 16).ok()?;
        let message = match (parts.next()?, parts.next()) {
            ("del", Some(key)) => Message::Remove(key.to_owned()),
            ("clr", None) => Message::Clear,
            ("pfx", Some(prefix)) => Message::ClearPrefix(prefix.to_owned()),
            ("tag", Some(tag)) => Message::Tag(tag.to_owned()),
            ("fil", Some(key)) => Message::Filled(key.to_owned()),
            ("ver", Some(rest)) => {
                let (version, group) = rest.split_once(' ')?;
                Message::Version {
                    group: group.to_owned(),
                    version: version.parse().ok()?,
                }
            }
            _ => return None,
        };
        Some((instance, message))
    }
}

/// Timings of the bus.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BusTimings {
    /// How long one subscription attempt (connects and subscribes included) or ping may take.
    pub(crate) timeout: Duration,
    /// How often the subscription is checked with a PING.
    pub(crate) heartbeat: Duration,
    /// The longest pause between two subscription attempts.
    pub(crate) max_backoff: Duration,
}

/// What the listener does with what it hears. The cache implements it, so that the bus
/// needs nothing of the cache's internals (and a test could give it another).
pub(crate) trait Peer: Send + Sync + 'static {
    /// Another instance's message.
    fn heard(self: Arc<Self>, message: Message);
    /// The subscription may have missed messages: forget whatever could have been
    /// invalidated meanwhile.
    fn flush(self: Arc<Self>);
    /// The subscription dropped (counted in the stats).
    fn disconnected(&self);
}

/// The publishing side, held by the cache. Dropping it stops the listener.
pub(crate) struct Bus {
    l2: L2,
    channel: String,
    instance: u64,
    connected: Arc<AtomicBool>,
    /// Stops the listener when sent to ([`Bus::close`]) or dropped.
    stop: watch::Sender<()>,
}

impl Bus {
    /// Publishes `message` to every other instance.
    pub(crate) async fn publish(&self, message: &Message) -> Result<(), Fault> {
        self.l2.publish(&self.channel, &self.payload(message)).await
    }

    /// The classic channel, for callers that publish in a pipeline of their own (L2 turns
    /// it into the commands of the configured [`BusChannels`]).
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// `message` as this instance publishes it.
    pub(crate) fn payload(&self, message: &Message) -> String {
        message.encode(self.instance)
    }

    /// Whether the listener is subscribed right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Stops the listener: it unsubscribes (its connections close) and stops reconnecting.
    pub(crate) fn close(&self) {
        let _ = self.stop.send(());
        self.connected.store(false, Ordering::Release);
    }
}

/// Where the listener subscribes.
pub(crate) enum Source {
    /// The classic channel on one of these servers: a single server, or the nodes of a
    /// cluster (which forwards classic messages to every node); on failure the next is
    /// tried.
    Classic(Vec<redis::Client>),
    /// The classic channel on the primary the link is connected to (Sentinel).
    Primary(watch::Receiver<Option<Primary>>),
    /// Every sharded channel on the primary that serves its slot, the cluster's layout
    /// read from one of `seeds` (or a node seen in the last layout).
    Sharded {
        seeds: Vec<redis::Client>,
        /// The primaries of the last layout read, asked first next time.
        known: Vec<(String, u16)>,
    },
}

/// Everything the listener needs, made before the cache exists.
pub(crate) struct Listener {
    sources: Vec<Source>,
    /// The classic channel (the sharded ones derive from it).
    channel: String,
    instance: u64,
    connected: Arc<AtomicBool>,
    stop: watch::Receiver<()>,
    timings: BusTimings,
    wakeups: Arc<Wakeups>,
    /// Subscription attempts so far, to rotate over a cluster's nodes.
    attempts: usize,
}

/// Makes the two halves of the bus.
pub(crate) fn bus(
    sources: Vec<Source>,
    l2: L2,
    channel: String,
    instance: u64,
    timings: BusTimings,
    wakeups: Arc<Wakeups>,
) -> (Bus, Listener) {
    let connected = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(());
    let bus = Bus {
        l2,
        channel: channel.clone(),
        instance,
        connected: Arc::clone(&connected),
        stop: stop_tx,
    };
    let listener = Listener {
        sources,
        channel,
        instance,
        connected,
        stop: stop_rx,
        timings,
        wakeups,
        attempts: 0,
    };
    (bus, listener)
}

/// What the connections of a subscription report to the listener.
enum Event {
    /// A message's payload.
    Payload(Vec<u8>),
    /// The subscription may have missed messages, for this reason.
    Lost(String),
}

/// A subscription: one task per connection (and one following the link's primary), all
/// reporting on one channel. Dropping it closes every connection.
struct Subscription {
    events: mpsc::UnboundedReceiver<Event>,
    _tasks: JoinSet<()>,
}

impl Listener {
    /// Runs the listener until the cache is dropped. `ready` fires after the first
    /// subscription.
    pub(crate) fn spawn(self, cache: Weak<dyn Peer>) -> oneshot::Receiver<()> {
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(self.run(cache, ready_tx));
        ready_rx
    }

    async fn run(mut self, cache: Weak<dyn Peer>, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let mut backoff = Duration::ZERO;
        let complaints = Throttle::new(Duration::from_secs(10));
        loop {
            let timeout = self.timings.timeout;
            let mut stop = self.stop.clone();
            let attempt = tokio::select! {
                _ = stop.changed() => return,
                attempt = tokio::time::timeout(timeout, self.subscribe()) => attempt,
            };
            match attempt {
                Ok(Ok(subscription)) => {
                    // Whatever was published while we were not subscribed is lost: start over.
                    if !flush(&cache) {
                        return;
                    }
                    self.connected.store(true, Ordering::Release);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    if complaints.has_fired() {
                        tracing::info!(target: "cachemacro", channel = %self.channel, "invalidation bus subscribed again");
                    } else {
                        tracing::debug!(target: "cachemacro", channel = %self.channel, "invalidation bus subscribed");
                    }
                    complaints.reset();
                    // The data connection may be waiting to retry: Redis is back.
                    self.wakeups.link.notify_one();
                    backoff = Duration::ZERO;
                    let lost = self.listen(subscription, &cache).await;
                    self.connected.store(false, Ordering::Release);
                    let Some(reason) = lost else { return };
                    if !flush(&cache) {
                        return;
                    }
                    if let Some(peer) = cache.upgrade() {
                        peer.disconnected();
                    }
                    // The data connection likely broke too: have it checked now rather
                    // than at the next call.
                    self.wakeups.link.notify_one();
                    tracing::warn!(
                        target: "cachemacro",
                        channel = %self.channel,
                        %reason,
                        "invalidation bus disconnected: cleared the local cache, reconnecting"
                    );
                }
                Ok(Err(err)) => {
                    if let Some(suppressed) = complaints.allow() {
                        tracing::warn!(target: "cachemacro", channel = %self.channel, error = %err, suppressed, "invalidation bus: cannot subscribe ({}), retrying", crate::link::describe(&err));
                    }
                }
                Err(_) => {
                    if let Some(suppressed) = complaints.allow() {
                        tracing::warn!(target: "cachemacro", channel = %self.channel, suppressed, "invalidation bus: subscribe timed out, retrying");
                    }
                }
            }
            // Wait before the next attempt, unless the data connection just got through.
            tokio::select! {
                _ = self.stop.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
                _ = self.wakeups.bus.notified() => {}
            }
            backoff = (backoff * 2).clamp(MIN_BACKOFF, self.timings.max_backoff.max(MIN_BACKOFF));
        }
    }

    /// Subscribes on every source; fails if any part fails (the parts made are closed).
    async fn subscribe(&mut self) -> Result<Subscription, RedisError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let attempt = self.attempts;
        self.attempts += 1;
        let timings = self.timings;
        let channel = self.channel.as_str();
        for source in &mut self.sources {
            match source {
                Source::Classic(clients) => {
                    let client = &clients[attempt % clients.len()];
                    let pubsub = subscribe_classic(client, channel).await?;
                    tasks.spawn(watch_classic(pubsub, events.clone(), timings));
                }
                Source::Primary(primary) => {
                    let Some(current) = primary.borrow_and_update().clone() else {
                        return Err(RedisError::from((
                            ErrorKind::Io,
                            "no primary yet: the data connection has not connected",
                        )));
                    };
                    let pubsub = subscribe_classic(&current.client, channel).await?;
                    tasks.spawn(watch_classic(pubsub, events.clone(), timings));
                    tasks.spawn(follow(primary.clone(), current.address, events.clone()));
                }
                Source::Sharded { seeds, known } => {
                    for (conn, pushes, node) in
                        subscribe_sharded(seeds, known, channel, timings, attempt).await?
                    {
                        tasks.spawn(watch_shard(conn, pushes, node, events.clone(), timings));
                    }
                }
            }
        }
        Ok(Subscription {
            events: receiver,
            _tasks: tasks,
        })
    }

    /// Applies messages until the subscription is lost (`Some` with why) or the cache is
    /// gone (`None`).
    async fn listen(
        &mut self,
        mut subscription: Subscription,
        cache: &Weak<dyn Peer>,
    ) -> Option<String> {
        loop {
            tokio::select! {
                _ = self.stop.changed() => return None,
                event = subscription.events.recv() => match event {
                    Some(Event::Payload(payload)) => {
                        let peer = cache.upgrade()?;
                        self.apply(peer, &payload);
                    }
                    Some(Event::Lost(reason)) => return Some(reason),
                    None => return Some("every connection ended".to_owned()),
                },
            }
        }
    }

    /// Hands another instance's message to the cache; drops this instance's own.
    fn apply(&self, peer: Arc<dyn Peer>, payload: &[u8]) {
        match Message::decode(payload) {
            Some((from, _)) if from == self.instance => {}
            Some((_, message)) => {
                tracing::debug!(target: "cachemacro", ?message, "invalidation received");
                peer.heard(message);
            }
            None => {
                tracing::debug!("invalidation bus: ignored a message this version does not read")
            }
        }
    }
}

/// A classic subscription to `channel` on `client`'s server.
async fn subscribe_classic(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Forwards a classic subscription's messages and pings it every heartbeat, until it fails.
async fn watch_classic(
    pubsub: redis::aio::PubSub,
    events: mpsc::UnboundedSender<Event>,
    timings: BusTimings,
) {
    let (mut sink, mut stream) = pubsub.split();
    let mut heartbeat = heartbeat(timings);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let event = match message {
                    Some(message) => Event::Payload(message.get_payload_bytes().to_vec()),
                    None => Event::Lost("the connection closed".to_owned()),
                };
                let lost = matches!(event, Event::Lost(_));
                if events.send(event).is_err() || lost {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                let ping = tokio::time::timeout(timings.timeout, sink.ping::<Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    let _ = events.send(Event::Lost("no answer to the heartbeat PING".to_owned()));
                    return;
                }
            }
        }
    }
}

/// Reports the subscription lost when the link connects to another primary than
/// `address` (a failover).
async fn follow(
    mut primary: watch::Receiver<Option<Primary>>,
    address: String,
    events: mpsc::UnboundedSender<Event>,
) {
    while primary.changed().await.is_ok() {
        // `None` never comes after a primary; a reconnection to the same server is no move.
        let moved = primary
            .borrow_and_update()
            .as_ref()
            .is_some_and(|p| p.address != address);
        if moved {
            let _ = events.send(Event::Lost(format!(
                "the data connection moved from {address} to another primary"
            )));
            return;
        }
    }
}

/// A connection that received sharded subscriptions: the connection, its push messages,
/// and the node's address.
type ShardConnection = (
    MultiplexedConnection,
    mpsc::UnboundedReceiver<PushInfo>,
    String,
);

/// Subscribes to every sharded channel on the primary that serves its slot, over RESP3
/// connections (one per primary) whose push messages carry the channels' messages.
///
/// redis-rs's cluster connection can subscribe too (`ClusterConnection::ssubscribe`), but
/// it resubscribes on its own after a reconnection, which would hide from us that messages
/// were missed, and forgets a channel a node unsubscribes it from (a slot that moved). One
/// connection per primary, all given up together on any of those events, keeps the rule
/// simple: any doubt, clear L1 and start over.
async fn subscribe_sharded(
    seeds: &[redis::Client],
    known: &mut Vec<(String, u16)>,
    channel: &str,
    timings: BusTimings,
    attempt: usize,
) -> Result<Vec<ShardConnection>, RedisError> {
    let template = seeds[0].get_connection_info().clone();
    let node_client = |host: &str, port: u16| {
        let addr = match template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let redis = template
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        redis::Client::open(template.clone().set_addr(addr).set_redis_settings(redis))
    };
    // The layout, from the first node that answers: the primaries seen last time, then the
    // seeds, starting one further on each attempt (a node that hangs would otherwise use up
    // every attempt's time).
    let mut candidates = Vec::with_capacity(known.len() + seeds.len());
    for (host, port) in known.iter() {
        candidates.push(node_client(host, *port)?);
    }
    candidates.extend(seeds.iter().cloned());
    let first = attempt % candidates.len();
    candidates.rotate_left(first);
    let mut layout = None;
    let mut last_error = None;
    for client in &candidates {
        match cluster_slots(client, timings).await {
            Ok(slots) => {
                layout = Some(slots);
                break;
            }
            Err(err) => last_error = Some(err),
        }
    }
    let layout = match (layout, last_error) {
        (Some(layout), _) => layout,
        (None, Some(err)) => return Err(err),
        (None, None) => unreachable!("there is at least one seed"),
    };
    *known = layout
        .iter()
        .map(|(_, _, host, port)| (host.clone(), *port))
        .collect();
    // A primary serving several ranges of slots is listed once.
    known.sort_unstable();
    known.dedup();
    // Input: the channels. Output: per primary, the channels whose slot it serves.
    let mut by_node: Vec<((String, u16), Vec<String>)> = Vec::new();
    for name in shard_channels(channel) {
        let slot = crate::l2::slot(name.as_bytes());
        let Some((_, _, host, port)) = layout
            .iter()
            .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
        else {
            return Err(RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "no node serves the slot of a bus channel",
            )));
        };
        let node = (host.clone(), *port);
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, names)) => names.push(name),
            None => by_node.push((node, vec![name])),
        }
    }
    let node_client = &node_client;
    futures_util::future::try_join_all(by_node.into_iter().map(
        |((host, port), names)| async move {
            let (pushes_tx, pushes) = mpsc::unbounded_channel();
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timings.timeout))
                .set_response_timeout(Some(timings.timeout))
                .set_push_sender(pushes_tx);
            let mut conn = node_client(&host, port)?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            for name in &names {
                // One channel per command: its one confirmation is the command's answer. A
                // node that does not serve the slot answers MOVED, and the attempt starts over.
                let mut ssubscribe = redis::cmd("SSUBSCRIBE");
                ssubscribe.arg(name);
                ssubscribe.query_async::<Value>(&mut conn).await?;
            }
            Ok::<_, RedisError>((conn, pushes, format!("{host}:{port}")))
        },
    ))
    .await
}

/// The slot ranges of a cluster and the primary serving each, from `CLUSTER SLOTS`:
/// `(first slot, last slot, host, port)`.
async fn cluster_slots(
    client: &redis::Client,
    timings: BusTimings,
) -> Result<Vec<(u16, u16, String, u16)>, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timings.timeout))
        .set_response_timeout(Some(timings.timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let answer: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let asked = match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        ConnectionAddr::Unix(_) => String::new(),
        _ => String::new(),
    };
    crate::l2::parse_cluster_slots(answer, &asked).ok_or_else(|| {
        RedisError::from((ErrorKind::UnexpectedReturnType, "unreadable CLUSTER SLOTS"))
    })
}

/// Forwards a sharded subscription's messages and pings its connection every heartbeat,
/// until it fails or the node gives up one of its channels.
async fn watch_shard(
    mut conn: MultiplexedConnection,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    node: String,
    events: mpsc::UnboundedSender<Event>,
    timings: BusTimings,
) {
    let mut heartbeat = heartbeat(timings);
    heartbeat.tick().await;
    loop {
        let event = tokio::select! {
            push = pushes.recv() => match push {
                Some(PushInfo { kind: PushKind::SMessage, data }) => {
                    // `[channel, payload]`
                    match data.into_iter().nth(1).map(redis::from_redis_value::<Vec<u8>>) {
                        Some(Ok(payload)) => Event::Payload(payload),
                        _ => continue,
                    }
                }
                // We never unsubscribe: the node did, because the channel's slot left it.
                Some(PushInfo { kind: PushKind::SUnsubscribe, .. }) => Event::Lost(format!(
                    "{node} gave up a bus channel (its slot moved to another node)"
                )),
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                    Event::Lost(format!("the connection to {node} closed"))
                }
                Some(_) => continue,
            },
            _ = heartbeat.tick() => {
                let ping = tokio::time::timeout(
                    timings.timeout,
                    redis::cmd("PING").query_async::<Value>(&mut conn),
                )
                .await;
                if matches!(ping, Ok(Ok(_))) {
                    continue;
                }
                Event::Lost(format!("{node} did not answer the heartbeat PING"))
            }
        };
        let lost = matches!(event, Event::Lost(_));
        if events.send(event).is_err() || lost {
            return;
        }
    }
}

fn heartbeat(timings: BusTimings) -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(timings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat
}

/// Clears the local cache; `false` when the cache is gone.
fn flush(cache: &Weak<dyn Peer>) -> bool {
    match cache.upgrade() {
        Some(peer) => {
            peer.flush();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Remove("ns:c1:k:user:1 with space".into()),
            Message::Clear,
            Message::ClearPrefix("ns:c1:s:users:".into()),
            Message::Version {
                group: "catalog v2".into(),
                version: 1_764_000_000_000,
            },
            Message::Tag("user:42 and more".into()),
            Message::Filled("ns:c1:k:user:1".into()),
        ] {
            assert_eq!(
                Message::decode(m.encode(0xabc).as_bytes()),
                Some((0xabc, m))
            );
        }
    }

    #[test]
    fn shard_channels_spread_over_the_slots_and_keep_their_names() {
        let channels = shard_channels("ns:c1:bus");
        assert_eq!(channels.len(), SHARDS);
        for (i, channel) in channels.iter().enumerate() {
            assert_eq!(usize::from(crate::l2::slot(channel.as_bytes())) / 1024, i);
        }
        // The names are part of the format: instances of every version must agree.
        assert_eq!(
            &channels[..3],
            ["ns:c1:bus:s0:{10}", "ns:c1:bus:s1:{3}", "ns:c1:bus:s2:{61}"]
        );
    }

    #[test]
    fn a_message_goes_to_the_channel_of_its_subject() {
        let payload = Message::Remove("ns:c1:k:user:1".into()).encode(7);
        let commands = publish_commands(BusChannels::ClassicAndSharded, "ns:c1:bus", &payload);
        let band = usize::from(crate::l2::slot(b"ns:c1:k:user:1")) / 1024;
        let args: Vec<Vec<String>> = commands
            .iter()
            .map(|c| {
                c.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => String::new(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            args,
            [
                vec![
                    "PUBLISH".to_owned(),
                    "ns:c1:bus".to_owned(),
                    payload.clone()
                ],
                vec![
                    "SPUBLISH".to_owned(),
                    shard_channels("ns:c1:bus")[band].clone(),
                    payload.clone()
                ],
            ]
        );
        assert_eq!(
            publish_commands(BusChannels::Sharded, "c", &payload).len(),
            1
        );
        assert_eq!(
            publish_commands(BusChannels::Classic, "c", &payload).len(),
            1
        );
    }

    #[test]
    fn unknown_versions_and_kinds_are_ignored() {
        assert_eq!(Message::decode(b"cm2 0000000000000001 del k"), None);
        assert_eq!(Message::decode(b"cm1 0000000000000001 zap k"), None);
        assert_eq!(Message::decode(b"cm1 zz del k"), None);
        assert_eq!(Message::decode(&[0xff, 0xfe]), None);
    }
}
