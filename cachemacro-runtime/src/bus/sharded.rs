//! The sharded channels of the bus (Redis 7 sharded pub/sub on a cluster): their names,
//! which band of slots each carries, and the subscriptions to them, one connection per
//! primary. A connection lost costs only its channels' bands: a healer subscribes them
//! again from a fresh view of the cluster while the others stay subscribed.

use std::time::Duration;

use once_cell::sync::Lazy;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, ProtocolVersion, PushInfo, PushKind,
    RedisError, Value,
};
use tokio::sync::mpsc;

use super::bands::Bands;
use super::{heartbeat, BusTimings, Event};
use crate::backoff::Backoff;
use crate::throttle::Throttle;

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
pub(super) fn shard_channel(classic: &str, i: usize) -> String {
    format!("{classic}:s{i}:{{{}}}", SHARD_TAGS[i])
}

/// The shard of `payload`: the band of its subject's slot (for `del`, the key's own, so its
/// message usually goes to the node that holds the key).
pub(super) fn shard_of(payload: &str) -> usize {
    // Input: `cm1 <instance> <kind> <subject>`. Output: the band of `<subject>`'s slot.
    let subject = payload.splitn(4, ' ').nth(3).unwrap_or("");
    super::bands::band_of(subject)
}
/// A connection that received sharded subscriptions: the connection, its push messages,
/// the node's address, and the bands of its channels.
pub(super) struct ShardConnection {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    node: String,
    /// The bands of the channels subscribed on it.
    bands: Bands,
}

/// Subscribes to every sharded channel on the primary that serves its slot, over RESP3
/// connections (one per primary) whose push messages carry the channels' messages; only
/// the channels of `bands`.
///
/// redis-rs's cluster connection can subscribe too (`ClusterConnection::ssubscribe`), but
/// it resubscribes on its own after a reconnection, which would hide from us that messages
/// were missed, and forgets a channel a node unsubscribes it from (a slot that moved). One
/// connection per primary, given up on any of those events with all its channels, keeps
/// the rule simple: any doubt, drop what those bands carry and subscribe them again.
pub(super) async fn subscribe_sharded(
    seeds: &[redis::Client],
    known: &mut Vec<(String, u16)>,
    channel: &str,
    timings: BusTimings,
    attempt: usize,
    bands: Bands,
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
    let mut by_node: Vec<((String, u16), Vec<String>, Bands)> = Vec::new();
    for (band, name) in shard_channels(channel).into_iter().enumerate() {
        if bands & (1 << band) == 0 {
            continue;
        }
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
        match by_node.iter_mut().find(|(n, _, _)| *n == node) {
            Some((_, names, bits)) => {
                names.push(name);
                *bits |= 1 << band;
            }
            None => by_node.push((node, vec![name], 1 << band)),
        }
    }
    let node_client = &node_client;
    futures_util::future::try_join_all(by_node.into_iter().map(
        |((host, port), names, bands)| async move {
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
            Ok::<_, RedisError>(ShardConnection {
                conn,
                pushes,
                node: format!("{host}:{port}"),
                bands,
            })
        },
    ))
    .await
}

/// The slot ranges of a cluster and the primary serving each, from `CLUSTER SLOTS`:
/// `(first slot, last slot, host, port)`.
pub(super) async fn cluster_slots(
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

impl ShardConnection {
    /// Forwards the messages of this connection's channels and pings it every heartbeat,
    /// until it fails or the node gives up one of its channels: then reports its bands
    /// lost.
    async fn watch(mut self, events: mpsc::UnboundedSender<Event>, timings: BusTimings) {
        let node = &self.node;
        let mut heartbeat = heartbeat(timings);
        heartbeat.tick().await;
        let reason = loop {
            tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(PushInfo { kind: PushKind::SMessage, data }) => {
                        // `[channel, payload]`
                        let payload = data.into_iter().nth(1).map(redis::from_redis_value::<Vec<u8>>);
                        if let Some(Ok(payload)) = payload {
                            if events.send(Event::Payload { payload, part: None }).is_err() {
                                return;
                            }
                        }
                    }
                    // We never unsubscribe: the node did, because the channel's slot left it.
                    Some(PushInfo { kind: PushKind::SUnsubscribe, .. }) => {
                        break format!("{node} gave up a bus channel (its slot moved to another node)");
                    }
                    Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                        break format!("the connection to {node} closed");
                    }
                    Some(_) => {}
                },
                _ = heartbeat.tick() => {
                    let ping = tokio::time::timeout(
                        timings.timeout,
                        redis::cmd("PING").query_async::<Value>(&mut self.conn),
                    )
                    .await;
                    if !matches!(ping, Ok(Ok(_))) {
                        break format!("{node} did not answer the heartbeat PING");
                    }
                }
            }
        };
        let _ = events.send(Event::Lost {
            bands: self.bands,
            reason,
        });
    }
}

/// Watches the connections of a subscription, each until it is lost.
pub(super) async fn watch_all(
    connections: Vec<ShardConnection>,
    events: mpsc::UnboundedSender<Event>,
    timings: BusTimings,
) {
    futures_util::future::join_all(
        connections
            .into_iter()
            .map(|connection| connection.watch(events.clone(), timings)),
    )
    .await;
}

/// Where a healer looks for the cluster's layout, and what it subscribes.
pub(super) struct Healer {
    pub(super) seeds: Vec<redis::Client>,
    /// The primaries of the last layout read.
    pub(super) known: Vec<(String, u16)>,
    /// The classic channel (the sharded ones derive from it).
    pub(super) channel: String,
    /// The bands to subscribe again.
    pub(super) bands: Bands,
    pub(super) timings: BusTimings,
    /// Attempts so far, to rotate over the nodes.
    pub(super) attempt: usize,
}

impl Healer {
    /// Subscribes the channels of its bands again, from a fresh view of the cluster (a
    /// failover moves them to the new primary), retrying with a back-off from 25 ms up to
    /// `max_backoff`; then reports them regained and watches the new connections.
    pub(super) async fn run(mut self, events: mpsc::UnboundedSender<Event>) {
        let complaints = Throttle::new(Duration::from_secs(10));
        let mut backoff = Backoff::after_failure(self.timings.max_backoff);
        loop {
            tokio::time::sleep(backoff.next_pause()).await;
            let attempt = tokio::time::timeout(
                self.timings.timeout,
                subscribe_sharded(
                    &self.seeds,
                    &mut self.known,
                    &self.channel,
                    self.timings,
                    self.attempt,
                    self.bands,
                ),
            )
            .await;
            self.attempt += 1;
            let error = match attempt {
                Ok(Ok(connections)) => {
                    // Sent before any message of the new connections: the listener drops
                    // what was loaded meanwhile first.
                    if events.send(Event::Regained(self.bands)).is_ok() {
                        watch_all(connections, events, self.timings).await;
                    }
                    return;
                }
                Ok(Err(err)) => format!("{err} ({})", crate::link::describe(&err)),
                Err(_) => "timed out".to_owned(),
            };
            if let Some(suppressed) = complaints.allow() {
                tracing::warn!(
                    target: "cachemacro",
                    channel = %self.channel,
                    bands = %super::bands::describe(self.bands),
                    %error,
                    suppressed,
                    "invalidation bus: cannot subscribe again to the channels of some slot bands, retrying"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
