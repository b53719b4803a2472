//! A Redis Cluster reshaped in routine operation, under load: slots migrate (a window held
//! open with keys on both sides, a full `redis-cli --cluster reshard`), a primary dies. An
//! invalidation that Redis can serve returns Ok, and after an Ok invalidation no instance
//! serves what it removed: a writer changes a row, invalidates it on one instance, and
//! reads it back on that instance at once and on the other within the bus's bound, while
//! readers keep both instances busy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachemacro::{cached, BusChannels, Cache, Source};
use cachemacro_tests::{
    cluster_builder, current, eventually, on, race_reads_with_tag_invalidations, RedisCluster,
};
use once_cell::sync::Lazy;

/// The source of truth: id -> version.
static ROWS: Lazy<Mutex<HashMap<u64, u64>>> = Lazy::new(Default::default);

fn row(id: u64) -> u64 {
    ROWS.lock().unwrap().get(&id).copied().unwrap_or(0)
}

/// Every item lives in the slot of `g1` (the `{g1}` hash tag), with the sets of its tag.
#[cached(key = "{{g1}}:item:<id>", tags = ["g1"], cache = current())]
async fn item(id: u64) -> u64 {
    row(id)
}

/// Items spread over every slot, each under the tag `spread`.
#[cached(key = "spread:<id>", tags = ["spread"], cache = current())]
async fn spread(id: u64) -> u64 {
    row(1_000_000 + id)
}

const ITEMS: u64 = 200;
/// How long a peer may keep a removed value: the README's bound for the bus, with room for
/// a machine that also compiles.
const BOUND: Duration = Duration::from_secs(1);

async fn instance(cluster: &RedisCluster, channels: BusChannels) -> Cache {
    cluster_builder(cluster, "ops", channels)
        .build()
        .await
        .expect("the cluster cache builds")
}

async fn two_instances(cluster: &RedisCluster, channels: BusChannels) -> (Cache, Cache) {
    let a = instance(cluster, channels).await;
    let b = instance(cluster, channels).await;
    assert!(
        eventually(Duration::from_secs(20), || a.bus_connected()
            && b.bus_connected())
        .await,
        "both instances hear the bus"
    );
    (a, b)
}

/// What a run saw.
#[derive(Debug, Default)]
struct Report {
    invalidations: AtomicU64,
    /// Invalidations that returned an error, and the first few errors.
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    /// Reads after an Ok invalidation that returned the removed value: on the instance that
    /// invalidated, or on the other past `BOUND`.
    stale: AtomicU64,
    stale_examples: Mutex<Vec<String>>,
    /// The longest time the other instance took to read the new value, in ms.
    slowest_peer_ms: AtomicU64,
    /// The longest an invalidation took to return (Ok or not), in ms.
    slowest_invalidation_ms: AtomicU64,
    reads: AtomicU64,
}

impl Report {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 5 {
            first.push(what);
        }
    }

    fn stale(&self, what: String) {
        self.stale.fetch_add(1, Ordering::SeqCst);
        let mut examples = self.stale_examples.lock().unwrap();
        if examples.len() < 5 {
            examples.push(what);
        }
    }

    /// No invalidation failed and no read was stale.
    fn assert_clean(&self) {
        assert_eq!(
            self.errors.load(Ordering::SeqCst),
            0,
            "no invalidation failed"
        );
        assert_eq!(self.stale.load(Ordering::SeqCst), 0, "no stale read");
    }

    fn print(&self, name: &str) {
        eprintln!(
            "{name}: {} invalidations (slowest {} ms), {} errors {:?}, {} stale {:?}, slowest peer {} ms, {} reads",
            self.invalidations.load(Ordering::SeqCst),
            self.slowest_invalidation_ms.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
            self.first_errors.lock().unwrap(),
            self.stale.load(Ordering::SeqCst),
            self.stale_examples.lock().unwrap(),
            self.slowest_peer_ms.load(Ordering::SeqCst),
            self.reads.load(Ordering::SeqCst),
        );
    }
}

/// One write: a new version of a row, invalidated on `writer` by key or by tag, then read
/// back on `writer` (at once) and on `peer` (within `BOUND`).
async fn write_and_check(writer: &Cache, peer: &Cache, n: u64, report: &Report) {
    let id = n % ITEMS;
    let spread_id = (n * 7) % ITEMS;
    {
        let mut rows = ROWS.lock().unwrap();
        rows.insert(id, n + 1);
        rows.insert(1_000_000 + spread_id, n + 1);
    }
    report.invalidations.fetch_add(1, Ordering::SeqCst);
    let began = Instant::now();
    let invalidated = match n % 4 {
        0 => on(writer, item::remove_cached(id)).await.map(drop),
        1 => writer.invalidate_tag("g1").await.map(drop),
        2 => on(writer, spread::remove_cached(spread_id)).await.map(drop),
        _ => writer.invalidate_tag("spread").await.map(drop),
    };
    report
        .slowest_invalidation_ms
        .fetch_max(began.elapsed().as_millis() as u64, Ordering::SeqCst);
    if let Err(e) = invalidated {
        report.error(format!("write {n}: {e}"));
        return;
    }
    let (read, fresh): (_, u64) = if n % 4 < 2 {
        (on(writer, item(id)).await, n + 1)
    } else {
        (on(writer, spread(spread_id)).await, n + 1)
    };
    if read < fresh {
        report.stale(format!("write {n}: the writer read {read} < {fresh}"));
    }
    let started = Instant::now();
    loop {
        let read = if n % 4 < 2 {
            on(peer, item(id)).await
        } else {
            on(peer, spread(spread_id)).await
        };
        if read >= fresh {
            break;
        }
        if started.elapsed() > BOUND {
            report.stale(format!("write {n}: the peer still read {read} < {fresh}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    report
        .slowest_peer_ms
        .fetch_max(started.elapsed().as_millis() as u64, Ordering::SeqCst);
}

/// Runs writers and readers on `a` and `b` while `fault` runs (on a blocking thread), and
/// for a second after it returned.
async fn under_load<F>(a: &Cache, b: &Cache, fault: F) -> Arc<Report>
where
    F: FnOnce() + Send + 'static,
{
    for id in 0..ITEMS {
        on(a, item(id)).await;
        on(b, item(id)).await;
        on(a, spread(id)).await;
        on(b, spread(id)).await;
    }
    let report = Arc::new(Report::default());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(k, cache)| {
            let done = Arc::clone(&done);
            let report = Arc::clone(&report);
            tokio::spawn(async move {
                let mut n = k as u64;
                while !done.load(Ordering::SeqCst) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    on(&cache, item((n >> 33) % ITEMS)).await;
                    on(&cache, spread((n >> 40) % ITEMS)).await;
                    report.reads.fetch_add(2, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    let fault = tokio::task::spawn_blocking(fault);
    let mut n = 0;
    let mut finished: Option<Instant> = None;
    while finished.is_none_or(|at| at.elapsed() < Duration::from_secs(1)) {
        let (writer, peer) = if n % 2 == 0 { (a, b) } else { (b, a) };
        write_and_check(writer, peer, n, &report).await;
        n += 1;
        if finished.is_none() && fault.is_finished() {
            finished = Some(Instant::now());
        }
    }
    fault.await.expect("the fault ran");
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migration_held_open_with_keys_on_both_sides_costs_no_invalidation_and_no_stale_read(
) {
    let cluster = Arc::new(RedisCluster::start(3));
    let (a, b) = two_instances(&cluster, BusChannels::Classic).await;
    let slot = cluster.slot_of("g1");
    let from = cluster.primary_of(slot);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|&i| i != from)
        .unwrap();
    let moving = Arc::clone(&cluster);
    let report = under_load(&a, &b, move || {
        std::thread::sleep(Duration::from_millis(500));
        moving.begin_migration(slot, from, to);
        // Half the slot's keys move now; the slot then stays open, keys on both sides.
        moving.migrate_keys(slot, from, to, ITEMS as usize / 2);
        std::thread::sleep(Duration::from_secs(3));
        moving.finish_migration(slot, from, to);
    })
    .await;
    report.print("migration window");
    assert_eq!(cluster.primary_of(slot), to, "the slot moved");
    assert!(report.invalidations.load(Ordering::SeqCst) > 20);
    report.assert_clean();
}

/// Counts the changes of `redis_available()` on `cache` until `done`.
fn watch_availability(cache: &Cache, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let cache = cache.clone();
    tokio::spawn(async move {
        let mut last = cache.redis_available();
        let mut changes = 0;
        let mut bus_down = 0;
        while !done.load(Ordering::SeqCst) {
            if !cache.bus_connected() {
                bus_down += 1;
            }
            let now = cache.redis_available();
            if now != last {
                changes += 1;
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        eprintln!("bus down for {bus_down} samples of 2 ms");
        changes
    })
}

/// Kills the primary that serves the slot of `spread:<id>` for a few ids (not the `g1`
/// slot's: its keys keep being invalidated) and waits for its replica to take over.
async fn primary_killed(channels: BusChannels) -> (Arc<Report>, u64) {
    let cluster = RedisCluster::start_with_replicas(3, 1);
    let (a, b) = two_instances(&cluster, channels).await;
    let keep = cluster.primary_of(cluster.slot_of("g1"));
    let victim = cluster
        .primaries()
        .into_iter()
        .find(|&i| i != keep)
        .unwrap();
    let cluster = Arc::new(Mutex::new(cluster));
    let done = Arc::new(AtomicBool::new(false));
    let changes = watch_availability(&a, Arc::clone(&done));
    let faulty = Arc::clone(&cluster);
    let report = under_load(&a, &b, move || {
        std::thread::sleep(Duration::from_millis(500));
        let port = {
            let mut cluster = faulty.lock().unwrap();
            let port = cluster.node(victim).port();
            cluster.nodes()[victim].kill();
            port
        };
        faulty.lock().unwrap().wait_failover(port);
        std::thread::sleep(Duration::from_secs(1));
    })
    .await;
    done.store(true, Ordering::SeqCst);
    (report, changes.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_with_the_classic_bus_serves_no_stale_read_and_keeps_redis_available() {
    let (report, changes) = primary_killed(BusChannels::Classic).await;
    report.print("primary killed, classic bus");
    eprintln!("redis_available() changed {changes} times");
    assert_eq!(report.stale.load(Ordering::SeqCst), 0, "no stale read");
    assert!(
        changes <= 2,
        "redis_available() is stable: {changes} changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_with_the_sharded_bus_serves_no_stale_read_and_keeps_redis_available() {
    let (report, changes) = primary_killed(BusChannels::Sharded).await;
    report.print("primary killed, sharded bus");
    eprintln!("redis_available() changed {changes} times");
    assert_eq!(report.stale.load(Ordering::SeqCst), 0, "no stale read");
    assert!(
        changes <= 2,
        "redis_available() is stable: {changes} changes"
    );
}

/// An id whose key and bus channel live on primaries other than node `victim`: the key's
/// whole band of 1024 slots (which holds its sharded channel) is served elsewhere.
fn id_away_from(cluster: &RedisCluster, victim: usize) -> u64 {
    (0..10_000)
        .find(|id| {
            let slot = cluster.slot_of(&format!("ops:c1:k:spread:{id}"));
            let band = slot / 1024 * 1024;
            [slot, band, band + 1023]
                .iter()
                .all(|&s| cluster.primary_of(s) != victim)
        })
        .expect("some band lies away from one primary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_dead_primary_silences_the_sharded_bus_no_instance_serves_what_another_removed() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let (a, b) = two_instances(&cluster, BusChannels::Sharded).await;
    let victim = cluster.primaries()[0];
    let id = id_away_from(&cluster, victim);
    ROWS.lock().unwrap().insert(1_000_000 + id, 1);
    assert_eq!(on(&b, spread(id)).await, 1);
    assert!(b.contains_local(&format!("spread:{id}")));

    let port = cluster.node(victim).port();
    cluster.nodes()[victim].kill();
    assert!(
        eventually(Duration::from_secs(5), || !b.bus_connected()).await,
        "B's sharded subscription lost the dead primary's channels"
    );
    // B reads the key while it cannot hear the bus (from Redis, which still serves it).
    assert_eq!(on(&b, spread(id)).await, 1);

    ROWS.lock().unwrap().insert(1_000_000 + id, 2);
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Err(e) = on(&a, spread::remove_cached(id)).await {
        assert!(
            Instant::now() < deadline,
            "a key on a live primary can be removed: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        on(&b, spread(id)).await,
        2,
        "B, deaf to the bus, does not serve from L1 what A removed"
    );
    assert!(
        !b.bus_connected(),
        "the check ran while B's bus was down (the failover had not happened yet)"
    );
    assert!(
        b.redis_available(),
        "one dead primary is not Redis down for an instance"
    );
    cluster.wait_failover(port);
    assert!(eventually(Duration::from_secs(10), || b.bus_connected()).await);
    assert_eq!(on(&b, spread(id)).await, 2);
}

/// The node (index) of the primary that serves the sharded bus channel of `subject`'s band:
/// the channel of band `i` lies in the slot of the smallest integer whose slot is in the
/// band (the bus's own rule, `bus::sharded`).
fn channel_node(cluster: &RedisCluster, subject: &str) -> usize {
    let band = cluster.slot_of(subject) / 1024;
    let tag = (0u32..)
        .map(|n| n.to_string())
        .find(|n| cluster.slot_of(n) / 1024 == band)
        .unwrap();
    cluster.primary_of(cluster.slot_of(&tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_costs_l1_only_the_keys_whose_bus_channels_it_served() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let (a, b) = two_instances(&cluster, BusChannels::Sharded).await;
    // A victim that serves neither band 0's channel (it carries `clear`) nor that of the
    // `spread` tag: every entry depends on both.
    let victim = cluster
        .primaries()
        .into_iter()
        .find(|&p| p != channel_node(&cluster, "") && p != channel_node(&cluster, "spread"))
        .expect("three primaries, two channels to keep");
    let key = |id: u64| format!("ops:c1:k:spread:{id}");
    // A key away from the victim (its value and its channel), and one whose channel the
    // victim serves.
    let live = (0..10_000)
        .find(|&id| {
            cluster.primary_of(cluster.slot_of(&key(id))) != victim
                && channel_node(&cluster, &key(id)) != victim
        })
        .unwrap();
    let deaf = (0..10_000)
        .find(|&id| channel_node(&cluster, &key(id)) == victim)
        .unwrap();
    for id in [live, deaf] {
        ROWS.lock().unwrap().insert(1_000_000 + id, 1);
        assert_eq!(on(&b, spread(id)).await, 1);
        assert_eq!(on(&b, spread::with_source(id)).await, (1, Source::L1));
    }

    // And 200 more, to count what the outage costs.
    let many: Vec<u64> = (20_000..20_200).collect();
    for &id in &many {
        on(&b, spread(id)).await;
    }
    let victim_bands = (0..16u16)
        .filter(|band| {
            let tag = (0u32..)
                .map(|n| n.to_string())
                .find(|n| cluster.slot_of(n) / 1024 == *band)
                .unwrap();
            cluster.primary_of(cluster.slot_of(&tag)) == victim
        })
        .count();

    let port = cluster.node(victim).port();
    cluster.nodes()[victim].kill();
    assert!(
        eventually(Duration::from_secs(5), || !b.bus_connected()).await,
        "B lost the dead primary's channels"
    );
    // What the loss dropped is gone from L1; what is left is what L1 still answers.
    let kept = many
        .iter()
        .filter(|id| b.contains_local(&format!("spread:{id}")))
        .count();
    eprintln!(
        "one primary of three dead, serving the channels of {victim_bands} bands of 16: {kept} of {} keys kept in L1",
        many.len()
    );
    assert!(kept > 0, "L1 keeps serving the keys of the live channels");
    assert!(
        kept < many.len(),
        "the keys of the lost channels are dropped"
    );
    // The key whose channel B lost is read from Redis (a replica may not serve it yet:
    // any source but L1); the other is still served from L1.
    let (_, source) = on(&b, spread::with_source(deaf)).await;
    assert_ne!(
        source,
        Source::L1,
        "not served from L1 while its channel is down"
    );
    assert_eq!(
        on(&b, spread::with_source(live)).await,
        (1, Source::L1),
        "a key of a live channel is still served from L1"
    );
    // ... and B still hears its invalidations.
    ROWS.lock().unwrap().insert(1_000_000 + live, 2);
    on(&a, spread::remove_cached(live))
        .await
        .expect("a key of a live primary, whose channel is live, is removed");
    assert!(
        eventually(BOUND, || !b.contains_local(&format!("spread:{live}"))).await,
        "B hears the removal on the live channel"
    );
    assert_eq!(on(&b, spread(live)).await, 2);
    assert_eq!(on(&b, spread::with_source(live)).await, (2, Source::L1));
    assert!(!b.bus_connected(), "all this ran while the victim was down");

    cluster.wait_failover(port);
    assert!(eventually(Duration::from_secs(10), || b.bus_connected()).await);
    let _ = on(&b, spread(deaf)).await;
    assert_eq!(
        on(&b, spread::with_source(deaf)).await.1,
        Source::L1,
        "once the channel is back, its keys are served from L1 again"
    );
}

/// The nodes where an instance of namespace `ops` listens to the classic bus.
fn classic_listeners(cluster: &RedisCluster) -> Vec<usize> {
    (0..cluster.urls().len())
        .filter(|&i| {
            let Some(mut conn) = cluster.node(i).try_connection() else {
                return false;
            };
            let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("ops:c1:bus")
                .query(&mut conn)
                .unwrap_or_default();
            counts.iter().any(|(_, n)| *n > 0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_classic_bus_the_death_of_the_node_an_instance_listens_on_costs_no_l1_entry() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let b = instance(&cluster, BusChannels::Classic).await;
    assert!(eventually(Duration::from_secs(20), || b.bus_connected()).await);
    let listeners = classic_listeners(&cluster);
    assert_eq!(listeners.len(), 2, "B listens on two nodes: {listeners:?}");
    let primaries = cluster.primaries();
    let victim = listeners
        .iter()
        .copied()
        .find(|n| primaries.contains(n))
        .unwrap_or(listeners[0]);
    // Keys away from the victim, in B's L1.
    let ids: Vec<u64> = (0..)
        .filter(|id| {
            cluster.primary_of(cluster.slot_of(&format!("ops:c1:k:spread:{id}"))) != victim
        })
        .take(50)
        .collect();
    for &id in &ids {
        ROWS.lock().unwrap().insert(1_000_000 + id, 1);
        on(&b, spread(id)).await;
    }
    let disconnects = b.stats().bus_disconnects;

    let port = cluster.node(victim).port();
    cluster.nodes()[victim].kill();
    // The other subscription carries the bus: nothing is dropped, and B still hears.
    let a = instance(&cluster, BusChannels::Classic).await;
    ROWS.lock().unwrap().insert(1_000_000 + ids[0], 2);
    on(&a, spread::remove_cached(ids[0]))
        .await
        .expect("a key away from the dead node is removed");
    assert!(
        eventually(BOUND, || !b.contains_local(&format!("spread:{}", ids[0]))).await,
        "B hears the removal through its other subscription"
    );
    let kept = ids[1..]
        .iter()
        .filter(|id| b.contains_local(&format!("spread:{id}")))
        .count();
    assert_eq!(kept, ids.len() - 1, "B dropped none of its other entries");
    assert_eq!(
        b.stats().bus_disconnects,
        disconnects,
        "B's bus never dropped"
    );
    assert!(b.bus_connected());
    // The lost subscription is made again on another node.
    assert!(
        eventually(Duration::from_secs(10), || classic_listeners(&cluster)
            .iter()
            .filter(|n| !listeners.contains(n))
            .count()
            >= 1)
        .await,
        "B subscribes again on a third node"
    );
    cluster.wait_failover(port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_while_a_dead_primary_is_not_replaced_yet_fails_instead_of_skipping_its_keys() {
    let mut cluster = RedisCluster::start(3);
    // The other primaries keep serving their slots meanwhile, as a cluster configured for
    // availability does (and as every cluster does between a primary's death and its
    // replica's promotion).
    for i in 0..3 {
        cluster
            .node(i)
            .config_set("cluster-require-full-coverage", "no");
    }
    let a = instance(&cluster, BusChannels::Classic).await;
    let victim = cluster.primaries()[2];
    let id = (0..10_000)
        .find(|id| cluster.primary_of(cluster.slot_of(&format!("ops:c1:k:spread:{id}"))) == victim)
        .unwrap();
    ROWS.lock().unwrap().insert(1_000_000 + id, 1);
    assert_eq!(on(&a, spread(id)).await, 1);

    let address = format!("127.0.0.1:{}@", cluster.node(victim).port());
    cluster.nodes()[victim].kill();
    let survivor = cluster.primaries()[0];
    let flagged = eventually(Duration::from_secs(20), || {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut cluster.node(survivor).connection())
            .unwrap_or_default();
        nodes.lines().any(|line| {
            line.contains(&address)
                && line
                    .split_whitespace()
                    .nth(2)
                    .is_some_and(|flags| flags.split(',').any(|f| f == "fail"))
        })
    })
    .await;
    assert!(flagged, "the cluster flags the dead primary `fail`");
    assert!(
        a.purge().await.is_err(),
        "a purge that cannot reach the dead primary's keys says so (its value would come back)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_read_racing_a_tag_invalidation_is_not_taken_for_a_lost_tag_set() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster, BusChannels::Classic).await;
    let (unlisted, invalidations) =
        race_reads_with_tag_invalidations(&a, &b, "spread", spread, 50).await;
    eprintln!("{invalidations} invalidations, {unlisted} reads found a value unlisted");
    assert!(invalidations >= 20, "the race ran");
    // A key that an invalidation still has to tombstone counts as listed: 0.2.0 took about
    // ten reads per invalidation here for values whose tag set was lost. What a cluster
    // keeps is the window between a read's registration and its read (one key and its tag's
    // sets live in different slots, so not one script): a value another instance filled in
    // between is taken for unlisted, rarely (0 or 1 in these runs).
    assert!(
        unlisted < invalidations,
        "{unlisted} false alarms in {invalidations} invalidations"
    );
}

/// Writes `count` keys into the slot of `g1` on node `index`, so that moving the slot takes
/// a while.
fn crowd_the_g1_slot(cluster: &RedisCluster, index: usize, count: usize) {
    let mut conn = cluster.node(index).connection();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("{{g1}}:filler:{i}"))
                .arg(i)
                .ignore();
        }
        let _: () = pipe.query(&mut conn).expect("filler keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reshard_under_load_costs_no_invalidation_and_no_stale_read() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster, BusChannels::Sharded).await;
    let from = cluster.primary_of(cluster.slot_of("g1"));
    let to = cluster
        .primaries()
        .into_iter()
        .find(|&i| i != from)
        .unwrap();
    crowd_the_g1_slot(&cluster, from, 30_000);
    let slots = cluster.slot_count(from);
    let cluster = Arc::new(cluster);
    let moving = Arc::clone(&cluster);
    let started = Instant::now();
    let report = under_load(&a, &b, move || moving.reshard(from, to, slots)).await;
    report.print(&format!(
        "reshard of {slots} slots (the g1 slot with 30k keys), sharded bus, {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(cluster.slot_count(from), 0, "every slot moved");
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_primary_and_rebalancing_under_load_costs_no_invalidation_and_no_stale_read() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster, BusChannels::Classic).await;
    let cluster = Arc::new(Mutex::new(cluster));
    let growing = Arc::clone(&cluster);
    let report = under_load(&a, &b, move || {
        let mut cluster = growing.lock().unwrap();
        let new = cluster.add_primary();
        cluster.rebalance();
        assert!(
            cluster.slot_count(new) > 3000,
            "the new primary took its share"
        );
    })
    .await;
    report.print("a primary added and rebalanced, classic bus");
    report.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_sharded_bus_is_deaf_a_group_version_is_read_from_redis() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let build = |cluster: &RedisCluster| {
        cluster_builder(cluster, "ops", BusChannels::Sharded)
            .version_refresh(Duration::from_secs(30))
            .compat_0_1(false)
            .build()
    };
    let a = build(&cluster).await.unwrap();
    let b = build(&cluster).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || a.bus_connected()
            && b.bus_connected())
        .await
    );
    let victim = cluster.primaries()[0];
    let group = (0..)
        .map(|i| format!("catalog{i}"))
        .find(|g| cluster.primary_of(cluster.slot_of(&format!("ops:c1:v:{g}"))) != victim)
        .unwrap();
    let before = b.version(&group).await.unwrap();

    cluster.nodes()[victim].kill();
    assert!(eventually(Duration::from_secs(5), || !b.bus_connected()).await);
    // B reads the version again while deaf (the drop made it doubt what it knew).
    assert_eq!(b.version(&group).await.unwrap(), before);
    // The bump's message may go to a dead channel (an error, the counter moved all the
    // same): bump until one returns Ok.
    let bumped = loop {
        if let Ok(version) = a.bump_version(&group).await {
            break version;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(bumped > before);
    assert!(
        b.version(&group).await.unwrap() >= bumped,
        "B, deaf to the bus, does not keep the version it knew"
    );
    assert!(!b.bus_connected(), "the check ran while B's bus was down");
}

/// A removal made while the replica of the key's primary is cut off, then a failover to
/// that replica: with Redis's defaults, or with `min-replicas-to-write 1` and
/// `min-replicas-max-lag 1` on the primaries. Returns whether the removal returned Ok, and
/// what a read after the failover returned (1: the removed value, 2: the new one).
async fn removal_before_a_failover_to_a_lagging_replica(refuse_unreplicated: bool) -> (bool, u64) {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let (a, b) = two_instances(&cluster, BusChannels::Classic).await;
    let id = 4242;
    ROWS.lock().unwrap().insert(1_000_000 + id, 1);
    assert_eq!(on(&a, spread(id)).await, 1);
    let primary = cluster.primary_of(cluster.slot_of(&format!("ops:c1:k:spread:{id}")));
    let port = cluster.node(primary).port();
    let replica = (0..cluster.urls().len())
        .find(|&i| cluster.node(i).info_field("master_port").as_deref() == Some(&port.to_string()))
        .expect("the primary's replica");
    // The value is on the replica before it stops.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if refuse_unreplicated {
        cluster
            .node(primary)
            .config_set("min-replicas-to-write", "1");
        cluster
            .node(primary)
            .config_set("min-replicas-max-lag", "1");
    }
    // The replica stops, and the primary drops its link to it (what a network partition
    // between the two does): what the primary takes from now on does not reach it.
    cluster.node(replica).pause();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut cluster.node(primary).connection())
        .expect("CLIENT KILL TYPE replica");
    ROWS.lock().unwrap().insert(1_000_000 + id, 2);
    let removed = on(&a, spread::remove_cached(id)).await.is_ok();
    cluster.nodes()[primary].kill();
    cluster.node(replica).resume();
    cluster.wait_failover(port);
    if !removed {
        // The caller was told; it retries, as the error says.
        let deadline = Instant::now() + Duration::from_secs(10);
        while on(&a, spread::remove_cached(id)).await.is_err() {
            assert!(Instant::now() < deadline, "the retried removal succeeds");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let read = on(&b, spread(id)).await;
    (removed, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_replica_loses_an_ok_removal_unless_the_primary_refuses_unreplicated_writes(
) {
    let (removed, read) = removal_before_a_failover_to_a_lagging_replica(false).await;
    eprintln!("Redis's defaults: the removal returned Ok: {removed}; after the failover, read version {read}");
    assert!(
        removed && read == 1,
        "as the README states: asynchronous replication loses the tombstone, the removed value is read again"
    );
    let (removed, read) = removal_before_a_failover_to_a_lagging_replica(true).await;
    eprintln!("min-replicas-to-write 1: the removal returned Ok: {removed}; after the failover and a retry, read version {read}");
    assert!(
        !removed,
        "the primary refused the unreplicated tombstone: the caller got an error"
    );
    assert_eq!(read, 2, "the retried removal holds after the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_costs_the_reads_of_its_slots_one_timeout_not_one_each() {
    let cluster = RedisCluster::start_with_replicas(3, 1);
    let timeout = Duration::from_millis(200);
    let cache = cluster_builder(&cluster, "ops", BusChannels::Classic)
        .redis_timeout(timeout)
        .build()
        .await
        .unwrap();
    let victim = cluster.primaries()[0];
    let node_of = |key: &str| cluster.primary_of(cluster.slot_of(&format!("ops:c1:k:{key}")));
    let on_victim: Vec<String> = (0..)
        .map(|i| format!("h:{i}"))
        .filter(|key| node_of(key) == victim)
        .take(400)
        .collect();
    let elsewhere: Vec<String> = (0..)
        .map(|i| format!("h:{i}"))
        .filter(|key| node_of(key) != victim)
        .take(400)
        .collect();
    for key in on_victim.iter().chain(&elsewhere) {
        cache.set(key, 1u64, None).await.unwrap();
        cache.remove_local(key);
    }

    // Below the node timeout (2 s): the cluster does not fail it over.
    cluster.node(victim).pause();
    let started = Instant::now();
    let (mut slow, mut reads, mut slow_elsewhere) = (0, 0, 0);
    for (key, other) in on_victim.iter().zip(&elsewhere) {
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
        let began = Instant::now();
        let _ = cache.get::<u64>(key).await;
        if began.elapsed() >= timeout / 2 {
            slow += 1;
        }
        let began = Instant::now();
        assert_eq!(
            cache.get::<u64>(other).await.unwrap(),
            Some(1),
            "served by Redis"
        );
        if began.elapsed() >= timeout / 2 {
            slow_elsewhere += 1;
        }
        reads += 1;
    }
    cluster.node(victim).resume();
    eprintln!(
        "a primary hung 1.5 s: {slow} of {reads} reads of its slots waited for the timeout, \
         {slow_elsewhere} of {reads} reads of the other slots"
    );
    assert!(reads > 20, "the reads went on while the node hung");
    assert!(slow <= 1, "{slow} reads waited for the timeout");
    assert_eq!(slow_elsewhere, 0, "the other slots were served as usual");
    assert!(cache.redis_available());
    // Once it answers again, its slots are read from Redis again.
    let key = on_victim.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.get::<u64>(key).await.ok().flatten() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the node's slots are in use again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
