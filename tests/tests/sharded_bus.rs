//! The invalidation bus on Redis 7 sharded pub/sub (`BusChannels::Sharded`): messages go by
//! `SPUBLISH` to 16 channels spread over a cluster's primaries, every instance subscribes
//! to each on its primary, and the subscription survives a slot that moves and a primary
//! that dies. `BusChannels::ClassicAndSharded` bridges the rolling deploy.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cachemacro::{cached, BusChannels, Cache};
use cachemacro_tests::{cluster_builder, current, eventually, on, RedisCluster};
use once_cell::sync::Lazy;

static ROWS: Lazy<Mutex<HashMap<u64, String>>> = Lazy::new(Default::default);

#[cached(key = "product:<id>", tags = ["catalog"], cache = current())]
async fn product(id: u64) -> String {
    ROWS.lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("v1 of {id}"))
}

/// Makes every value written unique.
static VERSIONS: AtomicU64 = AtomicU64::new(2);

fn write_row(id: u64, value: &str) {
    ROWS.lock().unwrap().insert(id, value.to_owned());
}

const CLASSIC: &str = "shop:c1:bus";
const PROPAGATION: Duration = Duration::from_secs(3);

async fn instance(cluster: &RedisCluster, channels: BusChannels) -> Cache {
    cluster_builder(cluster, "shop", channels)
        .build()
        .await
        .expect("the cluster cache builds")
}

async fn connected(caches: &[&Cache]) -> bool {
    eventually(Duration::from_secs(20), || {
        caches
            .iter()
            .all(|c| c.bus_connected() && c.redis_available())
    })
    .await
}

/// The sharded channels some client subscribes to, on every running node.
fn shard_channels(cluster: &RedisCluster) -> BTreeSet<String> {
    let mut channels = BTreeSet::new();
    for i in 0..cluster.urls().len() {
        if !cluster.node(i).is_running() {
            continue;
        }
        let names: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .query(&mut cluster.node(i).connection())
            .expect("PUBSUB SHARDCHANNELS");
        channels.extend(names);
    }
    channels
}

/// How many clients subscribe to the sharded `channel` on node `index`.
fn shard_subscribers(cluster: &RedisCluster, index: usize, channel: &str) -> u64 {
    let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query(&mut cluster.node(index).connection())
        .expect("PUBSUB SHARDNUMSUB");
    counts[0].1
}

/// How many clients subscribe to the classic channel, on every running node.
fn classic_subscribers(cluster: &RedisCluster) -> u64 {
    (0..cluster.urls().len())
        .filter(|&i| cluster.node(i).is_running())
        .map(|i| {
            let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(CLASSIC)
                .query(&mut cluster.node(i).connection())
                .expect("PUBSUB NUMSUB");
            counts[0].1
        })
        .sum()
}

/// The sharded channel that carries the removal of `product:<id>`: the one in the same band
/// of 1024 slots as the key.
fn channel_of(cluster: &RedisCluster, channels: &BTreeSet<String>, id: u64) -> String {
    let band = cluster.slot_of(&format!("shop:c1:k:product:{id}")) / 1024;
    channels
        .iter()
        .find(|c| cluster.slot_of(c) / 1024 == band)
        .expect("a channel per band")
        .clone()
}

/// An id whose removal goes to `channel`.
fn id_on(cluster: &RedisCluster, channels: &BTreeSet<String>, channel: &str, from: u64) -> u64 {
    (from..from + 10_000)
        .find(|&id| channel_of(cluster, channels, id) == channel)
        .expect("an id in every band")
}

/// `from` removes `product:<id>` after both loaded it: `to` drops its copy and reads the
/// new value. Returns whether `to` did so without clearing its L1 (the message arrived).
async fn removal_reaches(from: &Cache, to: &Cache, id: u64) -> bool {
    on(from, product(id)).await;
    on(to, product(id)).await;
    assert!(to.contains_local(&format!("product:{id}")));
    let disconnects = to.stats().bus_disconnects;
    let new = format!("v{} of {id}", VERSIONS.fetch_add(1, Ordering::SeqCst));
    write_row(id, &new);
    // The data connection may still be finding a promoted replica: retry the removal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while on(from, product::remove_cached(id)).await.is_err() {
        assert!(Instant::now() < deadline, "the removal succeeds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !eventually(PROPAGATION, || !to.contains_local(&format!("product:{id}"))).await {
        return false;
    }
    assert_eq!(on(to, product(id)).await, new, "the next read is fresh");
    to.stats().bus_disconnects == disconnects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_invalidations_reach_every_instance_on_16_channels_and_none_on_the_classic_one() {
    let cluster = RedisCluster::start(3);
    let a = instance(&cluster, BusChannels::Sharded).await;
    let b = instance(&cluster, BusChannels::Sharded).await;
    assert!(connected(&[&a, &b]).await);

    // 16 channels, spread over the three primaries, each subscribed by both instances on
    // the primary that serves it.
    let channels = shard_channels(&cluster);
    assert_eq!(channels.len(), 16, "{channels:?}");
    let mut owners = BTreeSet::new();
    for channel in &channels {
        assert!(channel.starts_with("shop:c1:bus:s"), "{channel}");
        let owner = cluster.primary_of(cluster.slot_of(channel));
        owners.insert(owner);
        assert_eq!(shard_subscribers(&cluster, owner, channel), 2, "{channel}");
    }
    assert_eq!(
        owners.len(),
        3,
        "the channels are spread over every primary"
    );
    assert_eq!(classic_subscribers(&cluster), 0);

    // A plain client listens on the classic channel, through the node that does not serve
    // its slot (classic messages reach every node).
    let classic_owner = cluster.primary_of(cluster.slot_of(CLASSIC));
    let listener_node = (0..3).find(|&i| i != classic_owner).unwrap();
    let mut listener = cluster.node(listener_node).connection();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut listener = listener.as_pubsub();
    listener.subscribe(CLASSIC).unwrap();

    // Removals (the keys spread over every band), a tag, a version bump, a purge.
    for id in 0..40 {
        assert!(removal_reaches(&a, &b, id).await, "product:{id}");
    }
    assert!(removal_reaches(&b, &a, 41).await);
    on(&a, product(8)).await;
    on(&b, product(8)).await;
    write_row(8, "v9 of 8");
    assert!(a.invalidate_tag("catalog").await.unwrap() >= 1);
    assert!(eventually(PROPAGATION, || !b.contains_local("product:8")).await);
    assert_eq!(on(&b, product(8)).await, "v9 of 8");
    let version = a.bump_version("catalog").await.unwrap();
    let deadline = Instant::now() + PROPAGATION;
    while b.version("catalog").await.unwrap() != version {
        assert!(Instant::now() < deadline, "B learns of the bump");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    on(&b, product(9)).await;
    a.clear().await.unwrap();
    assert!(eventually(PROPAGATION, || !b.contains_local("product:9")).await);
    assert!(b.stats().invalidations_received >= 40);
    assert_eq!(b.stats().bus_disconnects, 0, "every message arrived");

    // Nothing went to the classic channel: a marker published now (through the node that
    // routes the classic channel, as the cache would) is the first message there.
    let _: i64 = redis::cmd("PUBLISH")
        .arg(CLASSIC)
        .arg("marker")
        .query(&mut cluster.node(classic_owner).connection())
        .unwrap();
    let first: String = listener.get_message().unwrap().get_payload().unwrap();
    assert_eq!(first, "marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_channel_whose_slot_moves_mid_run_keeps_delivering() {
    let cluster = RedisCluster::start(3);
    let a = instance(&cluster, BusChannels::Sharded).await;
    let b = instance(&cluster, BusChannels::Sharded).await;
    assert!(connected(&[&a, &b]).await);
    let channels = shard_channels(&cluster);
    let channel = channel_of(&cluster, &channels, 7);
    let slot = cluster.slot_of(&channel);
    let from = cluster.primary_of(slot);
    let to = (0..3).find(|&i| i != from).unwrap();

    // While the slot is migrating, its old node still serves the channel.
    cluster.begin_migration(slot, from, to);
    let id = id_on(&cluster, &channels, &channel, 100);
    assert!(
        removal_reaches(&a, &b, id).await,
        "delivered (not cleared) while the slot migrates"
    );

    // The slot moves: the old node unsubscribes the instances from the channel, they
    // clear their L1 (messages may have been missed) and subscribe on the new node.
    on(&b, product(5000)).await;
    let disconnects = b.stats().bus_disconnects;
    cluster.finish_migration(slot, from, to);
    assert_eq!(cluster.primary_of(slot), to);
    assert!(
        eventually(Duration::from_secs(10), || b.stats().bus_disconnects
            > disconnects
            && a.bus_connected()
            && b.bus_connected()
            && shard_subscribers(&cluster, to, &channel) == 2
            && shard_subscribers(&cluster, from, &channel) == 0)
        .await,
        "both instances resubscribed on the new node"
    );
    assert!(!b.contains_local("product:5000"), "B's L1 was cleared");

    let id = id_on(&cluster, &channels, &channel, id + 1);
    assert!(
        removal_reaches(&a, &b, id).await,
        "delivered on the new node"
    );
    assert!(removal_reaches(&b, &a, id).await, "both ways");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_drops_the_entries_of_its_channels_and_delivery_resumes_after_the_failover(
) {
    let mut cluster = RedisCluster::start_with_replicas(3, 1);
    let a = instance(&cluster, BusChannels::Sharded).await;
    let b = instance(&cluster, BusChannels::Sharded).await;
    assert!(connected(&[&a, &b]).await);
    let channels = shard_channels(&cluster);
    assert_eq!(channels.len(), 16);
    // A victim that serves neither band 0's channel (it carries `clear`) nor that of the
    // `catalog` tag (every product has it), and one of its channels.
    let node_of = |name: &str| cluster.primary_of(cluster.slot_of(name));
    let channel_by_band = |band: u16| {
        channels
            .iter()
            .find(|c| cluster.slot_of(c) / 1024 == band)
            .unwrap()
            .clone()
    };
    let spared = [
        node_of(&channel_by_band(0)),
        node_of(&channel_by_band(cluster.slot_of("catalog") / 1024)),
    ];
    let channel = channels
        .iter()
        .find(|c| !spared.contains(&node_of(c)))
        .expect("three primaries, two to spare")
        .clone();
    let victim = node_of(&channel);
    let id = id_on(&cluster, &channels, &channel, 1);
    assert!(removal_reaches(&a, &b, id).await);

    // In B's L1: a key whose channel the victim serves, and one whose channel and value
    // live on other primaries.
    let on_victim = |name: &str| cluster.primary_of(cluster.slot_of(name)) == victim;
    let band0 = channels.iter().find(|c| cluster.slot_of(c) < 1024).unwrap();
    assert!(
        !on_victim(band0),
        "band 0's channel lies away from band 7's"
    );
    let dropped = id_on(&cluster, &channels, &channel, 2000);
    let kept = (2000..)
        .find(|&id| {
            !on_victim(&channel_of(&cluster, &channels, id))
                && !on_victim(&format!("shop:c1:k:product:{id}"))
        })
        .unwrap();
    for id in [dropped, kept] {
        on(&b, product(id)).await;
        assert!(b.contains_local(&format!("product:{id}")));
    }
    let disconnects = b.stats().bus_disconnects;

    let port = cluster.node(victim).port();
    cluster.nodes()[victim].kill();
    assert!(
        eventually(Duration::from_secs(5), || b.stats().bus_disconnects
            > disconnects)
        .await,
        "B noticed that its subscription lost a node"
    );
    assert!(
        !b.contains_local(&format!("product:{dropped}")),
        "B dropped the entries whose messages the dead primary's channels carry"
    );
    assert!(
        b.contains_local(&format!("product:{kept}")),
        "B kept the entries of the live channels"
    );

    cluster.wait_failover(port);
    assert!(
        connected(&[&a, &b]).await,
        "both resubscribe after the failover"
    );
    let promoted = cluster.primary_of(cluster.slot_of(&channel));
    assert_ne!(promoted, victim);
    assert!(
        eventually(Duration::from_secs(5), || shard_subscribers(
            &cluster, promoted, &channel
        ) == 2)
        .await
    );
    let id = id_on(&cluster, &channels, &channel, id + 1);
    assert!(
        removal_reaches(&a, &b, id).await,
        "delivered on the promoted replica"
    );
    assert!(removal_reaches(&b, &a, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rolling_deploy_classic_and_sharded_instances_hear_the_bridging_ones() {
    let cluster = RedisCluster::start(3);
    // An instance of the old configuration (or an older cachemacro), one bridging, one of
    // the final configuration.
    let classic = instance(&cluster, BusChannels::Classic).await;
    let both = instance(&cluster, BusChannels::ClassicAndSharded).await;
    let sharded = instance(&cluster, BusChannels::Sharded).await;
    assert!(connected(&[&classic, &both, &sharded]).await);
    assert_eq!(
        classic_subscribers(&cluster),
        4,
        "the classic and the bridging one, each on two nodes"
    );
    let channels = shard_channels(&cluster);
    assert_eq!(channels.len(), 16);

    for (n, id) in (3000..3010).enumerate() {
        let (from, to) = [
            (&classic, &both),
            (&both, &classic),
            (&both, &sharded),
            (&sharded, &both),
        ][n % 4];
        assert!(removal_reaches(from, to, id).await, "product:{id}");
    }
}
