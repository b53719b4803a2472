//! Classic pub/sub subscriptions: on one server, on the primary behind Sentinel, and on a
//! cluster, where Redis forwards every message to every node. There the listener keeps a
//! [`Pair`] of subscriptions on two nodes: either hears every message, so losing one (its
//! node died) loses nothing, and it is made again on another node while the other carries
//! the bus.

use std::time::Duration;

use futures_util::StreamExt;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, watch};

use super::bands::ALL;
use super::{heartbeat, BusTimings, Event, MIN_BACKOFF};
use crate::link::Primary;
use crate::throttle::Throttle;

/// What a classic subscription reports when it fails.
fn lost(part: Option<usize>, reason: &str) -> Event {
    match part {
        Some(part) => Event::PartLost {
            part,
            reason: reason.to_owned(),
        },
        None => Event::Lost {
            bands: ALL,
            reason: reason.to_owned(),
        },
    }
}

/// Which of a cluster's two classic subscriptions are up, and on which nodes: either hears
/// every message.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pair {
    up: [bool; 2],
    /// The index of each part's node in the source's list.
    nodes: [usize; 2],
}

impl Pair {
    /// Both up, on these nodes.
    pub(super) fn new(nodes: [usize; 2]) -> Self {
        Self {
            up: [true; 2],
            nodes,
        }
    }

    /// `part` is lost; returns whether the other still hears the bus.
    pub(super) fn lose(&mut self, part: usize) -> bool {
        self.up[part] = false;
        self.up[1 - part]
    }

    /// `part` is subscribed again, on node `node`.
    pub(super) fn regain(&mut self, part: usize, node: usize) {
        self.up[part] = true;
        self.nodes[part] = node;
    }

    /// The node of `part`.
    pub(super) fn node(&self, part: usize) -> usize {
        self.nodes[part]
    }

    /// Whether a message from `part` is counted in the stats: each message comes twice,
    /// once per part, and is counted from the first part that is up.
    pub(super) fn counts(&self, part: usize) -> bool {
        part == usize::from(!self.up[0])
    }
}

/// Subscribes part `part` of a pair again, on one of `clients` other than `other` (the
/// other part's node), starting after `lost`, with a back-off from 25 ms up to
/// `max_backoff`; then reports it back and watches it.
pub(super) async fn heal_part(
    clients: Vec<redis::Client>,
    lost: usize,
    other: usize,
    channel: String,
    part: usize,
    timings: BusTimings,
    events: mpsc::UnboundedSender<Event>,
) {
    let complaints = Throttle::new(Duration::from_secs(10));
    let mut backoff = MIN_BACKOFF;
    let cap = timings.max_backoff.max(MIN_BACKOFF);
    let n = clients.len();
    // Input: the nodes after the lost one, in turn. Output: those not the other part's.
    let mut candidates = (1..=n)
        .map(|i| (lost + i) % n)
        .filter(|&i| i != other)
        .cycle();
    loop {
        tokio::time::sleep(backoff).await;
        let Some(node) = candidates.next() else {
            return;
        };
        let subscribed =
            tokio::time::timeout(timings.timeout, subscribe_classic(&clients[node], &channel))
                .await;
        let error = match subscribed {
            Ok(Ok(pubsub)) => {
                if events.send(Event::PartBack { part, node }).is_ok() {
                    watch_classic(pubsub, events, timings, Some(part)).await;
                }
                return;
            }
            Ok(Err(err)) => format!("{err} ({})", crate::link::describe(&err)),
            Err(_) => "timed out".to_owned(),
        };
        if let Some(suppressed) = complaints.allow() {
            tracing::warn!(target: "cachemacro", %channel, %error, suppressed, "invalidation bus: cannot subscribe again on a second node, retrying (the first still hears every message)");
        }
        backoff = (backoff * 2).min(cap);
    }
}

/// A classic subscription to `channel` on `client`'s server.
pub(super) async fn subscribe_classic(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Forwards a classic subscription's messages and pings it every heartbeat, until it fails;
/// `part`: which of a [`Pair`]'s two it is (`None`: the only one, whose loss is the whole
/// bus's).
pub(super) async fn watch_classic(
    pubsub: redis::aio::PubSub,
    events: mpsc::UnboundedSender<Event>,
    timings: BusTimings,
    part: Option<usize>,
) {
    let (mut sink, mut stream) = pubsub.split();
    let mut heartbeat = heartbeat(timings);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    let _ = events.send(lost(part, "the connection closed"));
                    return;
                };
                let payload = message.get_payload_bytes().to_vec();
                if events.send(Event::Payload { payload, part }).is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                let ping = tokio::time::timeout(timings.timeout, sink.ping::<Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    let _ = events.send(lost(part, "no answer to the heartbeat PING"));
                    return;
                }
            }
        }
    }
}

/// Reports the subscription lost when the link connects to another primary than
/// `address` (a failover).
pub(super) async fn follow(
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
            let _ = events.send(Event::Lost {
                bands: ALL,
                reason: format!("the data connection moved from {address} to another primary"),
            });
            return;
        }
    }
}
