//! Classic pub/sub subscriptions: on one server, on the primary behind Sentinel, and on a
//! cluster, where Redis forwards every message to every node. There the listener keeps a
//! [`Pair`] of subscriptions on two nodes: either hears every message, so losing one (its
//! node died) loses nothing, and it is made again on another node while the other carries
//! the bus.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, watch};

use super::bands::ALL;
use super::{heartbeat, BusTimings, Event};
use crate::backoff::Backoff;
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

/// A cluster's two classic subscriptions, on two nodes: either hears every message. The
/// *active* one's messages are applied; the *standby*'s are kept for a short while
/// (`window`), to be applied if the active one is lost: a message the active connection had
/// not delivered when it died is then applied from the standby's copy (some twice: applying
/// one again only drops what it dropped). Applying both copies of every message instead
/// would drop, a few milliseconds after each invalidation, what was loaded since.
#[derive(Debug)]
pub(super) struct Pair {
    up: [bool; 2],
    active: usize,
    /// The index of each part's node in the source's list.
    nodes: [usize; 2],
    /// The standby's recent messages, oldest first.
    kept: VecDeque<(Instant, Vec<u8>)>,
    /// How long the standby's messages are kept: longer than the active connection can be
    /// dead before it is noticed (a heartbeat and its timeout, twice).
    window: Duration,
    /// Whether messages were dropped from `kept` before their time (more than
    /// [`KEPT`] in a window): then losing the active part is losing the bus.
    overflowed: Option<Instant>,
}

/// The most standby messages kept.
const KEPT: usize = 100_000;

/// What losing a part costs.
pub(super) enum Switch {
    /// The standby was lost, or the active one with these messages to apply from the
    /// standby, which is now active.
    Replay(Vec<Vec<u8>>),
    /// Both are lost, or the standby could not keep every message: the bus is lost.
    Lost,
}

impl Pair {
    /// Both up, on these nodes, the first active.
    pub(super) fn new(nodes: [usize; 2], timings: BusTimings) -> Self {
        Self {
            up: [true; 2],
            active: 0,
            nodes,
            kept: VecDeque::new(),
            window: (timings.heartbeat + timings.timeout) * 2,
            overflowed: None,
        }
    }

    /// A message from `part`: returned to be applied (the active part's), or kept for a
    /// switch (the standby's).
    pub(super) fn heard(&mut self, part: usize, payload: Vec<u8>) -> Option<Vec<u8>> {
        if part == self.active {
            return Some(payload);
        }
        let now = Instant::now();
        while self
            .kept
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            self.kept.pop_front();
        }
        if self.kept.len() >= KEPT {
            self.kept.pop_front();
            self.overflowed = Some(now);
        }
        self.kept.push_back((now, payload));
        None
    }

    /// `part` is lost.
    pub(super) fn lose(&mut self, part: usize) -> Switch {
        self.up[part] = false;
        let other = 1 - part;
        if !self.up[other] {
            return Switch::Lost;
        }
        let kept = std::mem::take(&mut self.kept);
        if part != self.active {
            return Switch::Replay(Vec::new());
        }
        self.active = other;
        let overflowed = self
            .overflowed
            .take()
            .is_some_and(|at| at.elapsed() <= self.window);
        if overflowed {
            return Switch::Lost;
        }
        Switch::Replay(kept.into_iter().map(|(_, payload)| payload).collect())
    }

    /// `part` is subscribed again, on node `node`, as the standby.
    pub(super) fn regain(&mut self, part: usize, node: usize) {
        self.up[part] = true;
        self.nodes[part] = node;
    }

    /// The node of `part`.
    pub(super) fn node(&self, part: usize) -> usize {
        self.nodes[part]
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
    let mut backoff = Backoff::after_failure(timings.max_backoff);
    let n = clients.len();
    // Input: the nodes after the lost one, in turn. Output: those not the other part's.
    let mut candidates = (1..=n)
        .map(|i| (lost + i) % n)
        .filter(|&i| i != other)
        .cycle();
    loop {
        tokio::time::sleep(backoff.next_pause()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Pair {
        Pair::new(
            [0, 1],
            BusTimings {
                timeout: Duration::from_secs(1),
                heartbeat: Duration::from_secs(1),
                max_backoff: Duration::from_secs(1),
            },
        )
    }

    #[test]
    fn the_active_part_is_applied_and_the_standby_replayed_when_the_active_one_dies() {
        let mut pair = pair();
        assert_eq!(pair.heard(0, b"a".to_vec()), Some(b"a".to_vec()));
        assert_eq!(pair.heard(1, b"a".to_vec()), None);
        assert_eq!(pair.heard(1, b"b".to_vec()), None);
        // The active part dies before delivering `b`: the standby's copies are applied.
        match pair.lose(0) {
            Switch::Replay(kept) => assert_eq!(kept, [b"a".to_vec(), b"b".to_vec()]),
            Switch::Lost => panic!("the standby carries the bus"),
        }
        assert_eq!(pair.heard(1, b"c".to_vec()), Some(b"c".to_vec()));
        pair.regain(0, 2);
        assert_eq!(pair.heard(0, b"c".to_vec()), None);
        assert_eq!(pair.node(0), 2);
        // The standby dies: nothing to replay; then the active one: the bus is lost.
        assert!(matches!(pair.lose(0), Switch::Replay(kept) if kept.is_empty()));
        assert!(matches!(pair.lose(1), Switch::Lost));
    }

    #[test]
    fn a_standby_that_could_not_keep_every_message_does_not_carry_the_bus() {
        let mut pair = pair();
        for i in 0..=KEPT {
            pair.heard(1, i.to_string().into_bytes());
        }
        assert!(matches!(pair.lose(0), Switch::Lost));
    }
}
