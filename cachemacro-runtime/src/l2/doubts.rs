//! A cluster's nodes in doubt: one that failed a call (it died, hangs, or is being
//! replaced) costs the reads of its slots one timeout, not one per read.
//!
//! On a single server the link itself goes in doubt after a failed call, and reads skip
//! Redis until its probe answers. On a cluster that would take every slot away for one
//! node's fault, so the doubt is the node's: its slot ranges (from `CLUSTER SLOTS`, asked
//! of whichever primary answers first) are skipped by reads, which go to the functions,
//! while a probe pings the node, backing off from 25 ms up to the Redis timeout, and lifts
//! the doubt when it answers or when another node serves those slots (a failover). Writes
//! still try: an invalidation is worth its timeout, and it must report the fault.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::Value;

use super::{slot, L2};
use crate::link::{Access, Conn, Fault};

/// The name of a doubt about one slot, before its node is known.
fn slot_name(slot: u16) -> String {
    format!("slot {slot}")
}

/// The first pause of a probe.
const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// The nodes in doubt, each as the slot ranges it served when it failed.
#[derive(Default)]
pub(crate) struct Doubts {
    /// How many nodes are in doubt: the read path looks no further while it is 0.
    count: AtomicUsize,
    nodes: Mutex<Vec<Doubted>>,
    /// The last layout read (slot ranges and the node serving each): a fault's node is put
    /// in doubt with it at once, then with a fresh one.
    layout: Mutex<Vec<(u16, u16, String)>>,
}

struct Doubted {
    /// `host:port`, as `CLUSTER SLOTS` names it.
    node: String,
    ranges: Vec<(u16, u16)>,
}

impl Doubts {
    /// Whether a node in doubt served `slot`.
    pub(crate) fn covers(&self, slot: u16) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.lock()
            .iter()
            .any(|d| d.ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
    }

    /// Puts `node` in doubt; `false` if it was already.
    fn add(&self, node: String, ranges: Vec<(u16, u16)>) -> bool {
        let mut nodes = self.lock();
        if nodes.iter().any(|d| d.node == node) {
            return false;
        }
        nodes.push(Doubted { node, ranges });
        self.count.store(nodes.len(), Ordering::Release);
        true
    }

    fn remove(&self, node: &str) {
        let mut nodes = self.lock();
        nodes.retain(|d| d.node != node);
        self.count.store(nodes.len(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Doubted>> {
        // Replaced whole under the lock: a panic cannot leave it half-written.
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn layout(&self) -> std::sync::MutexGuard<'_, Vec<(u16, u16, String)>> {
        self.layout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts the node that serves `slot` in `layout` in doubt; `None` when the layout does
    /// not say, else its name and whether it was in doubt already.
    fn add_node_of(&self, slot: u16, layout: &[(u16, u16, String)]) -> Option<(String, bool)> {
        let (_, _, node) = layout.iter().find(|(a, b, _)| (*a..=*b).contains(&slot))?;
        let ranges = layout
            .iter()
            .filter(|(_, _, n)| n == node)
            .map(|(a, b, _)| (*a, *b))
            .collect();
        Some((node.clone(), !self.add(node.clone(), ranges)))
    }
}

impl L2 {
    /// `Fault::Unavailable` at once for a read of `key` whose node is in doubt.
    pub(super) fn skip_doubted(&self, key: &str, access: Access) -> Result<(), Fault> {
        if self.cluster && access == Access::Read && self.doubts.covers(slot(key.as_bytes())) {
            return Err(Fault::Unavailable);
        }
        Ok(())
    }

    /// Passes `result` on; when a call about `key` failed for its connection on a cluster,
    /// puts the node that serves `key` in doubt first (see the module's documentation).
    pub(super) fn noted<T>(&self, key: &str, result: Result<T, Fault>) -> Result<T, Fault> {
        if let Err(fault) = &result {
            if self.cluster && fault.is_connection() {
                let slot = slot(key.as_bytes());
                // At once, so that the next read skips it already: the node, as the last
                // layout read says (or the slot alone before any); then as a fresh one says.
                if !self.doubts.covers(slot) {
                    let known = self.doubts.add_node_of(slot, &self.doubts.layout());
                    let first = match &known {
                        Some((_, already)) => !already,
                        None => self.doubts.add(slot_name(slot), vec![(slot, slot)]),
                    };
                    if first {
                        let name = known.map_or_else(|| slot_name(slot), |(node, _)| node);
                        tokio::spawn(self.clone().doubt_node(slot, name));
                    }
                }
            }
        }
        result
    }

    /// Finds the node that serves `slot`, puts it in doubt, and lifts the doubt once it
    /// answers a ping or no longer serves the slot.
    async fn doubt_node(self, slot: u16, first: String) {
        // A fresh layout: the node that serves the slot now (the one put in doubt at once
        // may be another, or a placeholder for the slot).
        let node = match self.read_layout().await {
            Ok(layout) => match self.doubts.add_node_of(slot, &layout) {
                Some((node, already)) if node != first => {
                    self.doubts.remove(&first);
                    if already {
                        // Another probe watches that node already.
                        return;
                    }
                    node
                }
                _ => first,
            },
            Err(_) => first,
        };
        let node = &node;
        tracing::debug!(target: "cachemacro", %node, "cache: a Redis Cluster node failed a call; reads of its slots go to the functions until it answers");
        let timeout = self.link.timeout();
        let mut pause = FIRST_PAUSE;
        loop {
            tokio::time::sleep(pause).await;
            let mut ping = redis::cmd("PING");
            let ping = &mut ping;
            let answered =
                self.link
                    .run(Access::Write, |mut conn| async move {
                        conn.route(
                            ping.clone(),
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                                Route::new(slot, SlotAddr::Master),
                            )),
                        )
                        .await
                    })
                    .await;
            if answered.is_ok() || self.link.is_closed() {
                break;
            }
            pause = (pause * 2).min(timeout);
        }
        self.doubts.remove(node);
    }

    /// The slot ranges of the cluster and the node serving each (`host:port`), from
    /// `CLUSTER SLOTS` asked of every primary, the first answer taken.
    /// Reads the layout ahead of any fault (a cluster's L2 does it once when it starts).
    pub(crate) async fn prefetch_layout(self) {
        let _ = self.read_layout().await;
    }

    /// [`layout`](Self::layout) read afresh, and kept.
    async fn read_layout(&self) -> Result<Vec<(u16, u16, String)>, Fault> {
        let layout = self.layout().await?;
        if !layout.is_empty() {
            *self.doubts.layout() = layout.clone();
        }
        Ok(layout)
    }

    /// The slot ranges of the cluster and the node serving each (`host:port`), read now.
    pub(super) async fn layout(&self) -> Result<Vec<(u16, u16, String)>, Fault> {
        let answer = self
            .link
            .run(Access::Write, |mut conn: Conn| async move {
                conn.route(
                    {
                        let mut cmd = redis::cmd("CLUSTER");
                        cmd.arg("SLOTS");
                        cmd
                    },
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::OneSucceeded),
                    )),
                )
                .await
            })
            .await?;
        // The node that answered is not known here: an empty host stays empty.
        Ok(parse_cluster_slots(answer, "")
            .unwrap_or_default()
            .into_iter()
            .map(|(start, end, host, port)| (start, end, format!("{host}:{port}")))
            .collect())
    }
}

/// The slot ranges of a `CLUSTER SLOTS` answer and the primary serving each: `(first slot,
/// last slot, host, port)`; a primary with an empty (or unknown) host is `asked`, the node
/// that answered. `None` when the answer is not one.
pub(crate) fn parse_cluster_slots(
    answer: Value,
    asked: &str,
) -> Option<Vec<(u16, u16, String, u16)>> {
    let Value::Array(ranges) = answer else {
        return None;
    };
    ranges
        .into_iter()
        .map(|range| {
            // `[start, end, [host, port, id, ...], replicas...]`
            let Value::Array(fields) = range else {
                return None;
            };
            let mut fields = fields.into_iter();
            let start = redis::from_redis_value(fields.next()?).ok()?;
            let end = redis::from_redis_value(fields.next()?).ok()?;
            let Value::Array(primary) = fields.next()? else {
                return None;
            };
            let mut primary = primary.into_iter();
            let host: Option<String> = redis::from_redis_value(primary.next()?).ok()?;
            let host = host
                .filter(|h| !h.is_empty() && h != "?")
                .unwrap_or_else(|| asked.to_owned());
            let port = redis::from_redis_value(primary.next()?).ok()?;
            Some((start, end, host, port))
        })
        .collect()
}
