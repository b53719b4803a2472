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
//! A subscription counts as lost when its connection closes or misses a heartbeat; behind
//! Sentinel also when the data connection moved to another primary. Then it is made
//! again, and L1 cleared as above.
//!
//! The sharded channels are subscribed over one connection per primary, and a connection
//! lost (closed, silent, or a node that gives up a channel: Redis sends `sunsubscribe`
//! when the channel's slot moves to another node, in a resharding or a failover) costs
//! only the *bands* of its channels ([`bands`]): the entries whose invalidations they carry
//! are dropped and not served until those channels are subscribed again, from a fresh view
//! of the cluster, and dropped once more then. The other primaries' channels stay
//! subscribed, and L1 keeps serving the keys they carry.
//!
//! # Reconnecting
//!
//! The listener retries at once, then backs off from 25 ms up to the cache's
//! `redis_cooldown`; it also retries at once whenever the data connection gets through
//! (and tells the data connection to check itself when the bus drops), so both come back
//! together after a Redis restart.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::l2::L2;
use crate::link::{Fault, Primary, Wakeups};
use crate::throttle::Throttle;

pub(crate) mod bands;
mod classic;
mod message;
mod sharded;

use bands::{Bands, Hearing, ALL};
use classic::{follow, subscribe_classic, watch_classic, Pair, Switch};
pub(crate) use message::Message;
pub(crate) use sharded::SHARDS;
use sharded::{shard_channel, shard_of, Healer};

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
    /// A primary that dies costs an instance only the channels it served: until they are
    /// subscribed again on its replica, the L1 entries whose invalidations they carry (by
    /// key, scope or tag) are read from Redis, and the others are still answered from L1
    /// (band 0's channel carries `clear`: while it is down, L1 answers nothing).
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
    /// Another instance's message; `count`: whether the stats count it (a message heard
    /// twice, through two subscriptions, counts once).
    fn heard(self: Arc<Self>, message: Message, count: bool);
    /// The subscription may have missed messages: forget whatever could have been
    /// invalidated meanwhile.
    fn flush(self: Arc<Self>);
    /// The channels of `bands` may have missed messages: forget whatever they could have
    /// invalidated meanwhile (see [`bands`]).
    fn flush_bands(self: Arc<Self>, bands: Bands);
    /// The subscription dropped (counted in the stats).
    fn disconnected(&self);
}

/// The publishing side, held by the cache. Dropping it stops the listener.
pub(crate) struct Bus {
    l2: L2,
    channel: String,
    instance: u64,
    hearing: Arc<Hearing>,
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

    /// Whether the listener is subscribed to every channel right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.hearing.all()
    }

    /// What this instance hears of the bus now.
    pub(crate) fn hearing(&self) -> &Hearing {
        &self.hearing
    }

    /// Stops the listener: it unsubscribes (its connections close) and stops reconnecting.
    pub(crate) fn close(&self) {
        let _ = self.stop.send(());
        self.hearing.lose(ALL);
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
    hearing: Arc<Hearing>,
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
    root: Arc<str>,
) -> (Bus, Listener) {
    let hearing = Arc::new(Hearing::new(root));
    let (stop_tx, stop_rx) = watch::channel(());
    let bus = Bus {
        l2,
        channel: channel.clone(),
        instance,
        hearing: Arc::clone(&hearing),
        stop: stop_tx,
    };
    let listener = Listener {
        sources,
        channel,
        instance,
        hearing,
        stop: stop_rx,
        timings,
        wakeups,
        attempts: 0,
    };
    (bus, listener)
}

/// What the connections of a subscription report to the listener.
enum Event {
    /// A message's payload, and which part of a [`Pair`] heard it.
    Payload {
        payload: Vec<u8>,
        part: Option<usize>,
    },
    /// The channels of `bands` ([`ALL`]: the whole subscription) may have missed
    /// messages, for this reason.
    Lost { bands: Bands, reason: String },
    /// The channels of these bands are subscribed again.
    Regained(Bands),
    /// One classic subscription of a [`Pair`] is lost, for this reason.
    PartLost { part: usize, reason: String },
    /// ... and made again, on node `node` of the source's list.
    PartBack { part: usize, node: usize },
}

/// A subscription: one task per connection (and one following the link's primary, and one
/// per group of sharded channels being subscribed again), all reporting on one channel.
/// Dropping it closes every connection.
struct Subscription {
    events: mpsc::UnboundedReceiver<Event>,
    /// The two classic subscriptions on a cluster's nodes, when there are.
    pair: Option<Pair>,
    /// For the tasks started later (healers).
    sender: mpsc::UnboundedSender<Event>,
    tasks: JoinSet<()>,
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
        let mut backoff = Backoff::new(self.timings.max_backoff);
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
                    self.hearing.regain(ALL);
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
                    backoff.reset();
                    let lost = self.listen(subscription, &cache).await;
                    self.hearing.lose(ALL);
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
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                _ = self.wakeups.bus.notified() => {}
            }
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
        let sender = events.clone();
        let mut pair = None;
        for source in &mut self.sources {
            match source {
                Source::Classic(clients) => {
                    // On a cluster, two nodes: either hears every message, so that one dead
                    // node costs nothing.
                    let parts = clients.len().min(2);
                    for part in 0..parts {
                        let client = &clients[(attempt + part) % clients.len()];
                        let pubsub = subscribe_classic(client, channel).await?;
                        let part = (parts == 2).then_some(part);
                        tasks.spawn(watch_classic(pubsub, events.clone(), timings, part));
                    }
                    if parts == 2 {
                        let n = clients.len();
                        pair = Some(Pair::new([attempt % n, (attempt + 1) % n], timings));
                    }
                }
                Source::Primary(primary) => {
                    let Some(current) = primary.borrow_and_update().clone() else {
                        return Err(RedisError::from((
                            ErrorKind::Io,
                            "no primary yet: the data connection has not connected",
                        )));
                    };
                    let pubsub = subscribe_classic(&current.client, channel).await?;
                    tasks.spawn(watch_classic(pubsub, events.clone(), timings, None));
                    tasks.spawn(follow(primary.clone(), current.address, events.clone()));
                }
                Source::Sharded { seeds, known } => {
                    let connections =
                        sharded::subscribe_sharded(seeds, known, channel, timings, attempt, ALL)
                            .await?;
                    tasks.spawn(sharded::watch_all(connections, events.clone(), timings));
                }
            }
        }
        Ok(Subscription {
            events: receiver,
            pair,
            sender,
            tasks,
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
                    Some(Event::Payload { payload, part }) => {
                        let peer = cache.upgrade()?;
                        match (part, subscription.pair.as_mut()) {
                            (Some(part), Some(pair)) => {
                                if let Some(payload) = pair.heard(part, payload) {
                                    self.apply(peer, &payload, true);
                                }
                            }
                            _ => self.apply(peer, &payload, true),
                        }
                    }
                    Some(Event::PartLost { part, reason }) => {
                        let Some(pair) = subscription.pair.as_mut() else {
                            return Some(reason);
                        };
                        let Switch::Replay(kept) = pair.lose(part) else {
                            return Some(reason);
                        };
                        let nodes = (pair.node(part), pair.node(1 - part));
                        // What the lost part may not have delivered, from the other's copies.
                        if !kept.is_empty() {
                            let peer = cache.upgrade()?;
                            for payload in &kept {
                                self.apply(Arc::clone(&peer), payload, false);
                            }
                        }
                        self.heal_part(part, nodes, &reason, &mut subscription);
                    }
                    Some(Event::PartBack { part, node }) => {
                        if let Some(pair) = subscription.pair.as_mut() {
                            pair.regain(part, node);
                        }
                    }
                    Some(Event::Lost { bands, reason }) if bands != ALL && self.is_sharded() => {
                        let peer = cache.upgrade()?;
                        self.lose(peer, bands, &reason, &mut subscription);
                    }
                    Some(Event::Lost { reason, .. }) => return Some(reason),
                    Some(Event::Regained(bands)) => {
                        let peer = cache.upgrade()?;
                        // What was loaded while the bands were unheard goes first.
                        peer.flush_bands(bands);
                        self.hearing.regain(bands);
                        tracing::info!(
                            target: "cachemacro",
                            channel = %self.channel,
                            bands = %bands::describe(bands),
                            "invalidation bus: subscribed again to the channels of some slot bands"
                        );
                    }
                    None => return Some("every connection ended".to_owned()),
                },
            }
        }
    }

    /// Part of a sharded subscription is lost: its bands are unheard, what they carry is
    /// dropped, and a healer subscribes them again while the rest stays subscribed.
    fn lose(
        &mut self,
        peer: Arc<dyn Peer>,
        bands: Bands,
        reason: &str,
        subscription: &mut Subscription,
    ) {
        let Some(healer) = self.healer(bands) else {
            return;
        };
        self.hearing.lose(bands);
        peer.disconnected();
        peer.flush_bands(bands);
        // The data connection may have lost the same node: have it checked now.
        self.wakeups.link.notify_one();
        tracing::warn!(
            target: "cachemacro",
            channel = %self.channel,
            bands = %bands::describe(bands),
            %reason,
            "invalidation bus: lost the channels of some slot bands: dropped the local entries they carry, read from Redis until they are back"
        );
        self.attempts += 1;
        subscription
            .tasks
            .spawn(healer.run(subscription.sender.clone()));
    }

    /// One of the two classic subscriptions is lost: the other still hears every message,
    /// so nothing is dropped; it is made again on another node.
    fn heal_part(
        &mut self,
        part: usize,
        (lost, other): (usize, usize),
        reason: &str,
        subscription: &mut Subscription,
    ) {
        let Some(clients) = self.sources.iter().find_map(|source| match source {
            Source::Classic(clients) => Some(clients.clone()),
            _ => None,
        }) else {
            return;
        };
        tracing::info!(
            target: "cachemacro",
            channel = %self.channel,
            %reason,
            "invalidation bus: one of its two subscriptions dropped (the other hears every message); subscribing again on another node"
        );
        subscription.tasks.spawn(classic::heal_part(
            clients,
            lost,
            other,
            self.channel.clone(),
            part,
            self.timings,
            subscription.sender.clone(),
        ));
    }

    /// Whether some channels are sharded (and so can be lost a few at a time).
    fn is_sharded(&self) -> bool {
        self.sources
            .iter()
            .any(|source| matches!(source, Source::Sharded { .. }))
    }

    /// What subscribes the sharded channels of `bands` again; `None` without sharded
    /// channels.
    fn healer(&self, bands: Bands) -> Option<Healer> {
        self.sources.iter().find_map(|source| match source {
            Source::Sharded { seeds, known } => Some(Healer {
                seeds: seeds.clone(),
                known: known.clone(),
                channel: self.channel.clone(),
                bands,
                timings: self.timings,
                attempt: self.attempts,
            }),
            _ => None,
        })
    }

    /// Hands another instance's message to the cache; drops this instance's own.
    fn apply(&self, peer: Arc<dyn Peer>, payload: &[u8], count: bool) {
        match Message::decode(payload) {
            Some((from, _)) if from == self.instance => {}
            Some((_, message)) => {
                tracing::debug!(target: "cachemacro", ?message, "invalidation received");
                peer.heard(message, count);
            }
            None => {
                tracing::debug!("invalidation bus: ignored a message this version does not read")
            }
        }
    }
}

pub(super) fn heartbeat(timings: BusTimings) -> tokio::time::Interval {
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
                    sharded::shard_channels("ns:c1:bus")[band].clone(),
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
}
