//! The invalidation bus: Redis pub/sub, so that every instance drops its L1 copy of what
//! another instance removed.
//!
//! # Message format (version `cm1`)
//!
//! One pub/sub message per invalidation, on the channel `<namespace>:c1:bus`:
//!
//! ```text
//! cm1 <instance id, 16 hex digits> del <storage key>     remove one key
//! cm1 <instance id, 16 hex digits> clr                   clear all L1 entries of the namespace
//! cm1 <instance id, 16 hex digits> pfx <key prefix>      clear the L1 entries under a prefix (a scope)
//! ```
//!
//! An instance ignores its own messages (they were applied locally already) and any message
//! of another version or kind, so a newer format can be rolled out beside this one.
//!
//! # Lost messages
//!
//! Pub/sub drops messages while a subscriber is disconnected. The listener therefore clears
//! this instance's L1 when the connection drops *and* again once it is subscribed again: no
//! invalidation missed during the outage can leave a stale L1 value past the reconnect. A
//! heartbeat PING on the subscription detects a connection that died without closing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisError;
use tokio::sync::{oneshot, watch};

use crate::cache::{Cache, Inner};
use crate::l2::Conn;

const VERSION: &str = "cm1";

/// An invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Drop one storage key.
    Remove(String),
    /// Drop every entry.
    Clear,
    /// Drop every entry whose storage key starts with this prefix.
    ClearPrefix(String),
}

impl Message {
    pub(crate) fn encode(&self, instance: u64) -> String {
        match self {
            Message::Remove(key) => format!("{VERSION} {instance:016x} del {key}"),
            Message::Clear => format!("{VERSION} {instance:016x} clr"),
            Message::ClearPrefix(prefix) => format!("{VERSION} {instance:016x} pfx {prefix}"),
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
            _ => return None,
        };
        Some((instance, message))
    }
}

/// Timings of the bus.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BusTimings {
    /// How long one connect, subscribe or ping may take.
    pub(crate) timeout: Duration,
    /// How often the subscription is checked with a PING.
    pub(crate) heartbeat: Duration,
}

/// The publishing side, held by the cache. Dropping it stops the listener.
pub(crate) struct Bus {
    conn: Conn,
    channel: String,
    instance: u64,
    connected: Arc<AtomicBool>,
    _stop: watch::Sender<()>,
}

impl Bus {
    /// Publishes `message` to every other instance.
    pub(crate) async fn publish(&self, message: &Message) -> Result<(), RedisError> {
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(self.payload(message))
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
    }

    /// The channel, for callers that publish in a pipeline of their own.
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
}

/// Everything the listener needs, made before the cache exists.
pub(crate) struct Listener {
    /// One client per node: a cluster broadcasts every message to all its nodes, so a
    /// subscription to any one of them hears everything; on failure the next is tried.
    clients: Vec<redis::Client>,
    channel: String,
    instance: u64,
    connected: Arc<AtomicBool>,
    stop: watch::Receiver<()>,
    timings: BusTimings,
}

/// Makes the two halves of the bus.
pub(crate) fn bus(
    clients: Vec<redis::Client>,
    conn: Conn,
    channel: String,
    instance: u64,
    timings: BusTimings,
) -> (Bus, Listener) {
    let connected = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(());
    let bus = Bus {
        conn,
        channel: channel.clone(),
        instance,
        connected: Arc::clone(&connected),
        _stop: stop_tx,
    };
    let listener = Listener {
        clients,
        channel,
        instance,
        connected,
        stop: stop_rx,
        timings,
    };
    (bus, listener)
}

impl Listener {
    /// Runs the listener until the cache is dropped. `ready` fires after the first
    /// subscription.
    pub(crate) fn spawn(self, cache: Weak<Inner>) -> oneshot::Receiver<()> {
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(self.run(cache, ready_tx));
        ready_rx
    }

    async fn run(mut self, cache: Weak<Inner>, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 0usize;
        loop {
            let client = self.clients[attempt % self.clients.len()].clone();
            attempt += 1;
            let connect = tokio::time::timeout(self.timings.timeout, async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, RedisError>(pubsub)
            });
            let attempt = tokio::select! {
                _ = self.stop.changed() => return,
                attempt = connect => attempt,
            };
            match attempt {
                Ok(Ok(pubsub)) => {
                    // Whatever was published while we were not subscribed is lost: start over.
                    if !flush(&cache) {
                        return;
                    }
                    self.connected.store(true, Ordering::Release);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    tracing::debug!(channel = %self.channel, "invalidation bus subscribed");
                    backoff = Duration::from_millis(50);
                    let stopped = self.listen(pubsub, &cache).await;
                    self.connected.store(false, Ordering::Release);
                    if stopped || !flush(&cache) {
                        return;
                    }
                    if let Some(inner) = cache.upgrade() {
                        crate::stats::bump(&inner.counters.bus_disconnects);
                    }
                    tracing::warn!(
                        channel = %self.channel,
                        "invalidation bus disconnected: cleared the local cache, reconnecting"
                    );
                }
                Ok(Err(err)) => {
                    tracing::warn!(channel = %self.channel, error = %err, "invalidation bus: cannot subscribe, retrying");
                }
                Err(_) => {
                    tracing::warn!(channel = %self.channel, "invalidation bus: subscribe timed out, retrying");
                }
            }
            tokio::select! {
                _ = self.stop.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Applies messages until the connection fails (`false`) or the cache is gone (`true`).
    async fn listen(&mut self, pubsub: redis::aio::PubSub, cache: &Weak<Inner>) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        let mut heartbeat = tokio::time::interval(self.timings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = self.stop.changed() => return true,
                message = stream.next() => {
                    let Some(message) = message else { return false };
                    let Some(inner) = cache.upgrade() else { return true };
                    self.apply(&Cache::from_arc(inner), message.get_payload_bytes());
                }
                _ = heartbeat.tick() => {
                    let ping = tokio::time::timeout(self.timings.timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        return false;
                    }
                }
            }
        }
    }

    fn apply(&self, cache: &Cache, payload: &[u8]) {
        let message = Message::decode(payload);
        if matches!(message, Some((from, _)) if from != self.instance) {
            crate::stats::bump(&cache.inner.counters.invalidations_received);
        }
        match message {
            Some((from, _)) if from == self.instance => {}
            Some((_, Message::Remove(key))) => cache.remove_local_at(&key),
            Some((_, Message::Clear)) => cache.clear_memory_at(""),
            Some((_, Message::ClearPrefix(prefix))) => cache.clear_memory_at(&prefix),
            None => {
                tracing::debug!("invalidation bus: ignored a message this version does not read")
            }
        }
    }
}

/// Clears the local cache; `false` when the cache is gone.
fn flush(cache: &Weak<Inner>) -> bool {
    match cache.upgrade() {
        Some(inner) => {
            Cache::from_arc(inner).clear_memory_at("");
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
        ] {
            assert_eq!(
                Message::decode(m.encode(0xabc).as_bytes()),
                Some((0xabc, m))
            );
        }
    }

    #[test]
    fn unknown_versions_and_kinds_are_ignored() {
        assert_eq!(Message::decode(b"cm2 0000000000000001 del k"), None);
        assert_eq!(Message::decode(b"cm1 0000000000000001 zap k"), None);
        assert_eq!(Message::decode(b"cm1 zz del k"), None);
        assert_eq!(Message::decode(&[0xff, 0xfe]), None);
    }
}
