//! The same guarantees on a Redis Cluster: values spread over the slots of three primaries,
//! invalidations heard through any node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, on, RedisCluster};
use once_cell::sync::Lazy;

static ROWS: Lazy<Mutex<HashMap<u64, String>>> = Lazy::new(Default::default);
static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "product:<id>", tags = ["catalog"], cache = current())]
async fn product(id: u64) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    ROWS.lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("v1 of {id}"))
}

async fn instance(cluster: &RedisCluster) -> Cache {
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    Cache::builder()
        .namespace("shop")
        .redis_cluster(&nodes)
        .redis_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("the cluster cache builds")
}

/// Two instances on `cluster`, once both hear the bus.
async fn two_instances(cluster: &RedisCluster) -> (Cache, Cache) {
    let a = instance(cluster).await;
    let b = instance(cluster).await;
    assert!(
        eventually(Duration::from_secs(5), || a.bus_connected()
            && b.bus_connected())
        .await
    );
    (a, b)
}

#[tokio::test]
async fn on_a_cluster_writes_tags_versions_and_purge_reach_every_instance() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster).await;

    // 40 keys land on all three primaries' slots.
    for id in 0..40 {
        on(&a, product(id)).await;
    }
    for id in 0..40 {
        assert_eq!(on(&b, product(id)).await, format!("v1 of {id}"));
    }
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        40,
        "B read every value from the cluster"
    );

    // A write on A is visible on B's next read.
    ROWS.lock().unwrap().insert(7, "v2 of 7".into());
    on(&a, product::remove_cached(7)).await.unwrap();
    assert!(eventually(Duration::from_secs(3), || !b.contains_local("product:7")).await);
    assert_eq!(on(&b, product(7)).await, "v2 of 7");

    // A tag spans keys in every slot.
    ROWS.lock().unwrap().insert(8, "v2 of 8".into());
    assert_eq!(b.invalidate_tag("catalog").await.unwrap(), 40);
    assert!(eventually(Duration::from_secs(3), || !a.contains_local("product:8")).await);
    assert_eq!(on(&a, product(8)).await, "v2 of 8");

    // Group versions and the namespace purge.
    let version = a.bump_version("catalog").await.unwrap();
    assert!(version > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while b.version("catalog").await.unwrap() != version {
        assert!(std::time::Instant::now() < deadline, "B learns of the bump");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Values again on every node (the tag left tombstones, which a purge keeps).
    for id in 0..40 {
        on(&a, product(id)).await;
    }
    let deleted = a.purge().await.unwrap();
    assert!(deleted >= 40, "every node's values were purged: {deleted}");

    assert_eq!(
        b.version("catalog").await.unwrap(),
        version,
        "a version never goes back, even when its counter is purged"
    );
    assert!(eventually(Duration::from_secs(3), || !b.contains_local("product:1")).await);
    let loads = LOADS.load(Ordering::SeqCst);
    for id in 0..40 {
        on(&b, product(id)).await;
    }
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        loads + 40,
        "nothing purged was read again"
    );
}

static BATCH_ASKED: Lazy<Mutex<Vec<Vec<u64>>>> = Lazy::new(Default::default);

/// The batch form of `product`: the same entries, tagged alike.
#[cached(key = "product:<id>", batch(id in ids), tags = ["catalog"], cache = current())]
async fn products(ids: Vec<u64>) -> HashMap<u64, String> {
    BATCH_ASKED.lock().unwrap().push(ids.clone());
    let rows = ROWS.lock().unwrap();
    ids.iter()
        .map(|&id| {
            (
                id,
                rows.get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("v1 of {id}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn on_a_cluster_a_batch_reads_every_slot_and_its_tags_reach_every_element() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster).await;
    // Ids 100..140 spread over the slots of all three primaries.
    let ids: Vec<u64> = (100..140).collect();
    assert_eq!(on(&a, products(ids.clone())).await.len(), 40);
    assert_eq!(on(&b, products(ids.clone())).await.len(), 40);
    assert_eq!(
        std::mem::take(&mut *BATCH_ASKED.lock().unwrap()),
        vec![ids.clone()],
        "B found every element in the cluster"
    );
    // The single-item function shares the entries.
    assert_eq!(on(&b, product(101)).await, "v1 of 101");
    // The batch's elements are registered under the tag on every node.
    ROWS.lock().unwrap().insert(120, "v2 of 120".into());
    assert!(b.invalidate_tag("catalog").await.unwrap() >= 40);
    assert!(eventually(Duration::from_secs(3), || !a.contains_local("product:120")).await);
    assert_eq!(on(&a, products(vec![120])).await[&120], "v2 of 120");
}

static STOCK: Lazy<Mutex<HashMap<u64, u64>>> = Lazy::new(Default::default);

fn stock_of(id: u64) -> u64 {
    STOCK.lock().unwrap().get(&id).copied().unwrap_or(1)
}

#[cached(key = "stock:<id>", tags = ["stock"], cache = current())]
async fn stock(id: u64) -> u64 {
    stock_of(id)
}

#[cached(key = "stock:<id>", batch(id in ids), tags = ["stock"], cache = current())]
async fn stocks(ids: Vec<u64>) -> HashMap<u64, u64> {
    ids.into_iter().map(|id| (id, stock_of(id))).collect()
}

#[tokio::test]
async fn on_a_cluster_a_value_whose_tag_set_was_evicted_is_not_served() {
    let cluster = RedisCluster::start(3);
    let (a, b) = two_instances(&cluster).await;
    // Ids spread over the slots of all three primaries.
    assert_eq!(on(&a, stocks((0..10).collect())).await.len(), 10);
    // Under `volatile-lru` Redis may evict the tag's set and keep the values it listed.
    let set = "shop:c1:tz:{stock}";
    let node = cluster.primary_of(cluster.slot_of(set));
    let deleted: u64 = redis::cmd("DEL")
        .arg(set)
        .query(&mut cluster.node(node).connection())
        .unwrap();
    assert_eq!(deleted, 1, "{set} was the tag's set");
    STOCK.lock().unwrap().extend([(3, 2), (4, 2)]);
    a.invalidate_tag("stock").await.unwrap();
    // The values still in the cluster escaped the invalidation: neither a key alone nor a
    // batch serves them.
    assert_eq!(on(&b, stock(3)).await, 2);
    assert_eq!(on(&b, stocks(vec![4, 5])).await[&4], 2);
    assert_eq!(on(&a, stock(4)).await, 2);
}
