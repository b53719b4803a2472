//! Batch loading: `#[cached(key = "user:<id>", batch(id in ids))]` caches each element
//! under its own key, looks up the misses in Redis in one round trip, runs the body once
//! with only the elements still missing, and shares entries with the single-item function.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, eventually, instance, on, RedisServer};
use once_cell::sync::Lazy;

/// The pretend database: user names by id; ids above 1,000 do not exist.
static NAMES: Lazy<Mutex<HashMap<u64, String>>> = Lazy::new(Default::default);

fn name(id: u64) -> Option<String> {
    (id <= 1000).then(|| {
        NAMES
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user{id}"))
    })
}

/// What each batch body was asked for, in order.
static ASKED: Lazy<Mutex<Vec<Vec<u64>>>> = Lazy::new(Default::default);
static FAIL: AtomicBool = AtomicBool::new(false);

#[cached(key = "user:<id>", batch(id in ids), cache = current())]
async fn users(ids: Vec<u64>) -> Result<HashMap<u64, String>, String> {
    ASKED.lock().unwrap().push(ids.clone());
    if FAIL.load(Ordering::SeqCst) && ids.iter().all(|id| (700..710).contains(id)) {
        return Err("database down".into());
    }
    let rows = ids.iter().filter_map(|&id| Some((id, name(id)?))).collect();
    // A slow database: the rows were read before the wait.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(rows)
}

/// The ids the single-item function loaded.
static SINGLE_LOADS: Lazy<Mutex<Vec<u64>>> = Lazy::new(Default::default);

fn single_loads(id: u64) -> usize {
    SINGLE_LOADS
        .lock()
        .unwrap()
        .iter()
        .filter(|&&i| i == id)
        .count()
}

/// The single-item function on the same template and value type.
#[cached(key = "user:<id>", cache = current())]
async fn user(id: u64) -> Result<String, String> {
    SINGLE_LOADS.lock().unwrap().push(id);
    name(id).ok_or_else(|| "no such user".to_owned())
}

/// What the batch bodies were asked for, among `ids` (each test has ids of its own), and
/// forgets it.
fn asked(ids: std::ops::Range<u64>) -> Vec<Vec<u64>> {
    asked_any(&[ids])
}

/// [`asked`] over several ranges of ids.
fn asked_any(ranges: &[std::ops::Range<u64>]) -> Vec<Vec<u64>> {
    let mut all = ASKED.lock().unwrap();
    let mut mine = Vec::new();
    all.retain(|call| {
        let in_range: Vec<u64> = call
            .iter()
            .copied()
            .filter(|id| ranges.iter().any(|r| r.contains(id)))
            .collect();
        if in_range.is_empty() {
            return true;
        }
        mine.push(in_range);
        false
    });
    mine
}

/// Every test uses ids of its own; the scenarios run on each cache in turn.
async fn caches(server: &RedisServer) -> (Cache, Cache, Cache) {
    (
        Cache::in_memory(),
        instance(server, "app").await,
        instance(server, "app").await,
    )
}

#[tokio::test]
async fn the_body_sees_only_the_misses_and_every_element_is_returned() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (base, cache) in [(100, &memory), (200, &a)] {
        asked(base..base + 100);
        // Two elements cached through the single-item function.
        assert_eq!(
            on(cache, user(base + 1)).await.unwrap(),
            format!("user{}", base + 1)
        );
        assert_eq!(
            on(cache, user(base + 2)).await.unwrap(),
            format!("user{}", base + 2)
        );
        let ids = vec![
            base + 1,
            base + 2,
            base + 3,
            base + 3,
            base + 4,
            5000 + base,
        ];
        let found = on(cache, users(ids)).await.unwrap();
        let mut asked_here = asked_any(&[base..base + 100, 5000 + base..5001 + base]);
        asked_here.iter_mut().for_each(|call| call.sort_unstable());
        assert_eq!(
            asked_here,
            vec![vec![base + 3, base + 4, 5000 + base]],
            "the body got the misses, each once, duplicates loaded once"
        );
        assert_eq!(
            found.len(),
            4,
            "every element found; the absent one left out"
        );
        assert_eq!(found[&(base + 4)], format!("user{}", base + 4));
        assert!(!found.contains_key(&(5000 + base)));
        // The batch's elements serve the single-item function, and the other way round.
        assert_eq!(
            on(cache, user(base + 3)).await.unwrap(),
            format!("user{}", base + 3)
        );
        assert_eq!(single_loads(base + 3), 0, "shared entry");
        // The absent element is not cached: asked again next time.
        on(cache, users(vec![base + 1, 5000 + base])).await.unwrap();
        assert_eq!(
            asked_any(&[base..base + 100, 5000 + base..5001 + base]),
            vec![vec![5000 + base]],
            "the absent element is asked for again, the cached one is not"
        );
    }
    // Another instance finds the elements in Redis: the body is not called.
    let found = on(&b, users(vec![201, 202, 203, 204])).await.unwrap();
    assert_eq!(found.len(), 4);
    assert!(asked(200..300).is_empty(), "all four came from Redis");
    assert_eq!(b.stats().l2_hits, 4);
}

/// Calls of `commands` so far (`INFO commandstats`; the commands a script runs count too).
fn calls(server: &RedisServer, commands: &[&str]) -> u64 {
    let mut conn = server.client().get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter(|l| {
            commands
                .iter()
                .any(|c| l.starts_with(&format!("cmdstat_{c}:")))
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn the_lookups_of_a_batch_take_one_redis_command() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    // Warm the script cache, and the elements in Redis.
    on(&a, users(vec![300])).await.unwrap();
    on(&a, users((301..400).collect())).await.unwrap();
    asked(300..400);
    let sent = ["get", "mget", "evalsha", "eval"];
    let (before, ranges) = (calls(&server, &sent), calls(&server, &["getrange"]));
    let found = on(&b, users((300..400).collect())).await.unwrap();
    assert_eq!(found.len(), 100);
    assert!(asked(300..400).is_empty());
    assert_eq!(
        calls(&server, &sent) - before,
        1,
        "the 100 lookups are one command from the client"
    );
    assert_eq!(
        calls(&server, &["getrange"]) - ranges,
        100,
        "run inside that script"
    );
}

#[tokio::test]
async fn an_invalidation_during_a_batch_load_wins() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (id, cache) in [(400, &memory), (401, &a)] {
        let load = tokio::spawn({
            let cache = cache.clone();
            async move { on(&cache, users(vec![id])).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The row changes while the batch loads it; the write path invalidates.
        NAMES.lock().unwrap().insert(id, "renamed".into());
        on(cache, users::remove_cached(id)).await.unwrap();
        let loaded = load.await.unwrap().unwrap();
        assert_eq!(
            loaded[&id],
            format!("user{id}"),
            "the caller gets what it loaded"
        );
        assert_eq!(
            on(cache, user(id)).await.unwrap(),
            "renamed",
            "the value it loaded was not cached"
        );
    }
    assert_eq!(on(&b, user(401)).await.unwrap(), "renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_load_each_element_once() {
    let server = RedisServer::start();
    let (memory, a, _b) = caches(&server).await;
    for (base, cache) in [(500, &memory), (600, &a)] {
        asked(base..base + 100);
        let first = tokio::spawn({
            let cache = cache.clone();
            async move { on(&cache, users((base..base + 10).collect())).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = tokio::spawn({
            let cache = cache.clone();
            async move { on(&cache, users((base + 5..base + 15).collect())).await }
        });
        // A single-item call of an element the first batch is loading awaits it.
        assert_eq!(
            on(cache, user(base + 2)).await.unwrap(),
            format!("user{}", base + 2)
        );
        assert_eq!(single_loads(base + 2), 0, "awaited the batch's load");
        let (first, second) = (
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        );
        assert_eq!((first.len(), second.len()), (10, 10));
        let mut loaded: Vec<u64> = asked(base..base + 100).concat();
        loaded.sort_unstable();
        assert_eq!(
            loaded,
            (base..base + 15).collect::<Vec<_>>(),
            "the elements in flight were awaited, not loaded twice"
        );
    }
}

#[tokio::test]
async fn an_error_is_returned_and_nothing_is_cached() {
    let server = RedisServer::start();
    let (memory, a, _b) = caches(&server).await;
    for (id, cache) in [(700, &memory), (701, &a)] {
        FAIL.store(true, Ordering::SeqCst);
        let failed = on(cache, users(vec![id])).await;
        FAIL.store(false, Ordering::SeqCst);
        assert_eq!(failed, Err("database down".into()));
        asked(id..id + 1);
        on(cache, users(vec![id])).await.unwrap();
        assert_eq!(asked(id..id + 1), vec![vec![id]], "nothing was cached");
    }
}

#[tokio::test]
async fn remove_cached_many_removes_every_element_everywhere() {
    let server = RedisServer::start();
    let (_memory, a, b) = caches(&server).await;
    on(&a, users(vec![800, 801, 802])).await.unwrap();
    on(&b, users(vec![800, 801, 802])).await.unwrap();
    assert!(b.contains_local(&users::key(801)));
    on(&a, users::remove_cached_many(&[800, 801]))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || !b
            .contains_local(&users::key(801)))
        .await
    );
    assert!(b.contains_local(&users::key(802)));
    asked(800..900);
    on(&b, users(vec![800, 801, 802])).await.unwrap();
    assert_eq!(asked(800..900), vec![vec![800, 801]]);
}

// ---- the caller's collection and map types ----

static SET_ASKED: Lazy<Mutex<Vec<HashSet<u64>>>> = Lazy::new(Default::default);

#[cached(key = "user:<id>", batch(id in ids), cache = current())]
async fn users_by_set(ids: &HashSet<u64>) -> BTreeMap<u64, String> {
    SET_ASKED.lock().unwrap().push(ids.clone());
    ids.iter().filter_map(|&id| Some((id, name(id)?))).collect()
}

static SLICE_ASKED: Lazy<Mutex<Vec<Vec<u64>>>> = Lazy::new(Default::default);

#[cached(key = "<tenant>:user:<id>", batch(id in ids), cache = current())]
async fn tenant_users(tenant: &str, ids: &[u64]) -> HashMap<u64, String> {
    SLICE_ASKED.lock().unwrap().push(ids.to_vec());
    ids.iter()
        .map(|&id| (id, format!("{tenant} {id}")))
        .collect()
}

#[tokio::test]
async fn the_body_gets_the_callers_collection_type() {
    let cache = Cache::in_memory();
    on(&cache, user(901)).await.unwrap();
    let found = on(&cache, users_by_set(&HashSet::from([900, 901, 902]))).await;
    assert_eq!(found.len(), 3);
    assert_eq!(
        *SET_ASKED.lock().unwrap(),
        vec![HashSet::from([900, 902])],
        "a HashSet of the misses"
    );
    let acme = on(&cache, tenant_users("acme", &[1, 2])).await;
    let globex = on(&cache, tenant_users("globex", &[1, 2])).await;
    assert_eq!(acme[&1], "acme 1");
    assert_eq!(
        globex[&1], "globex 1",
        "other parameters are part of each key"
    );
    on(&cache, tenant_users("acme", &[1, 2, 3])).await;
    assert_eq!(
        *SLICE_ASKED.lock().unwrap(),
        vec![vec![1, 2], vec![1, 2], vec![3]],
        "a slice of the misses"
    );
}

// ---- absent elements cached with `cache_none` ----

static NONE_ASKED: Lazy<Mutex<Vec<Vec<u64>>>> = Lazy::new(Default::default);

#[cached(key = "known:<id>", batch(id in ids), cache_none, cache = current())]
async fn known(ids: Vec<u64>) -> HashMap<u64, String> {
    NONE_ASKED.lock().unwrap().push(ids.clone());
    ids.iter().filter_map(|&id| Some((id, name(id)?))).collect()
}

/// The single-item function sharing `known`'s entries: `Option<String>` with `cache_none`.
#[cached(key = "known:<id>", cache_none, cache = current())]
async fn known_one(id: u64) -> Option<String> {
    NONE_ASKED.lock().unwrap().push(vec![id]);
    name(id)
}

#[tokio::test]
async fn cache_none_caches_the_absent_elements_as_absent() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (base, cache) in [(10, &memory), (20, &a)] {
        let found = on(cache, known(vec![base, 5000 + base])).await;
        assert_eq!(found.len(), 1);
        let found = on(cache, known(vec![base, 5000 + base, base + 1])).await;
        assert_eq!(found.len(), 2, "the absent element stays absent");
        assert!(!found.contains_key(&(5000 + base)));
        // The single-item function sees the absence, and the batch sees its values.
        assert_eq!(on(cache, known_one(5000 + base)).await, None);
        assert_eq!(
            on(cache, known_one(base + 1)).await,
            Some(format!("user{}", base + 1))
        );
        on(cache, known_one(base + 2)).await;
        on(cache, known(vec![base + 2])).await;
    }
    // Another instance finds the absence in Redis too.
    assert!(on(&b, known(vec![5020])).await.is_empty());
    let mut asked = std::mem::take(&mut *NONE_ASKED.lock().unwrap());
    asked.iter_mut().for_each(|call| call.sort_unstable());
    assert_eq!(
        asked,
        vec![
            vec![10, 5010],
            vec![11],
            vec![12],
            vec![20, 5020],
            vec![21],
            vec![22]
        ],
        "each element asked for once, absent ones included"
    );
}

// ---- stale elements when the body fails ----

static PRICES_FAIL: AtomicBool = AtomicBool::new(false);

#[cached(key = "price:<id>", batch(id in ids), ttl = "200ms", stale_for = "1h", cache = current())]
async fn prices(ids: Vec<u64>) -> Result<HashMap<u64, u64>, String> {
    if PRICES_FAIL.load(Ordering::SeqCst) {
        return Err("pricing down".into());
    }
    Ok(ids.iter().map(|&id| (id, id * 10)).collect())
}

#[tokio::test]
async fn stale_elements_are_served_when_the_body_fails() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (base, cache, reader) in [(1, &memory, &memory), (11, &a, &b)] {
        on(cache, prices(vec![base, base + 1, base + 2]))
            .await
            .unwrap();
        on(reader, prices(vec![base, base + 1, base + 2]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        on(cache, prices::remove_cached(base + 2)).await.unwrap();
        PRICES_FAIL.store(true, Ordering::SeqCst);
        let served = on(reader, prices(vec![base, base + 1])).await;
        let removed = on(reader, prices(vec![base, base + 2])).await;
        PRICES_FAIL.store(false, Ordering::SeqCst);
        assert_eq!(
            served,
            Ok(HashMap::from([
                (base, base * 10),
                (base + 1, (base + 1) * 10)
            ])),
            "expired elements are served stale while the body fails"
        );
        assert_eq!(
            removed,
            Err("pricing down".into()),
            "a removed element has no stale value: the failure is returned"
        );
    }
    // An instance that never held them finds the stale values in Redis.
    let c = instance(&server, "app").await;
    PRICES_FAIL.store(true, Ordering::SeqCst);
    let served = on(&c, prices(vec![11, 12])).await;
    PRICES_FAIL.store(false, Ordering::SeqCst);
    assert_eq!(served, Ok(HashMap::from([(11, 110), (12, 120)])));
}

// ---- an element's fields in the key ----

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Account {
    id: u64,
    /// Not part of the key: the body's rows are matched by `id`.
    label: &'static str,
}

static ACCOUNTS_ASKED: Lazy<Mutex<Vec<Vec<u64>>>> = Lazy::new(Default::default);

#[cached(key = "balance:<account.id>", batch(account in accounts), cache = current())]
async fn balances(accounts: Vec<Account>) -> HashMap<Account, u64> {
    ACCOUNTS_ASKED
        .lock()
        .unwrap()
        .push(accounts.iter().map(|a| a.id).collect());
    accounts
        .into_iter()
        .map(|a| (a.clone(), a.id * 100))
        .collect()
}

#[tokio::test]
async fn an_element_field_in_the_key_identifies_the_element() {
    let cache = Cache::in_memory();
    let a = |id, label| Account { id, label };
    let first = on(&cache, balances(vec![a(1, "one"), a(2, "two")])).await;
    assert_eq!(first[&a(1, "one")], 100);
    // Same ids under other labels: the same keys, served from the cache, under the
    // caller's elements.
    let second = on(&cache, balances(vec![a(1, "uno"), a(3, "tres")])).await;
    assert_eq!(second.len(), 2);
    assert_eq!(second[&a(1, "uno")], 100);
    assert_eq!(second[&a(3, "tres")], 300);
    assert_eq!(*ACCOUNTS_ASKED.lock().unwrap(), vec![vec![1, 2], vec![3]]);
}

// ---- tags ----

/// Each team's data version (1 unless set).
static MEMBER_VERSION: Lazy<Mutex<HashMap<u64, usize>>> = Lazy::new(Default::default);

fn set_version(team: u64, version: usize) {
    MEMBER_VERSION.lock().unwrap().insert(team, version);
}

#[cached(
    key = "team:<team>:member:<id>",
    batch(id in ids),
    tags = ["team:<team>", "member:<id>"],
    cache = current()
)]
async fn members(team: u64, ids: Vec<u64>) -> HashMap<u64, String> {
    let version = *MEMBER_VERSION.lock().unwrap().get(&team).unwrap_or(&1);
    let rows = ids
        .iter()
        .map(|&id| (id, format!("{team}/{id} v{version}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    rows
}

#[tokio::test]
async fn tags_name_the_elements_and_the_other_parameters() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (team, cache, peer) in [(1, &memory, &memory), (2, &a, &b)] {
        let ids = vec![team * 10, team * 10 + 1, team * 10 + 2];
        on(cache, members(team, ids.clone())).await;
        on(peer, members(team, ids.clone())).await;
        assert_eq!(
            members::key(team, team * 10),
            format!("team:{team}:member:{}", team * 10)
        );
        assert!(peer.contains_local(&members::key(team, team * 10)));
        set_version(team, 2);
        // One element's tag: only that element is reloaded.
        cache
            .invalidate_tag(&format!("member:{}", team * 10))
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(3), || !peer
                .contains_local(&members::key(team, team * 10)))
            .await
        );
        let found = on(peer, members(team, ids.clone())).await;
        assert_eq!(found[&(team * 10)], format!("{team}/{} v2", team * 10));
        assert_eq!(
            found[&(team * 10 + 1)],
            format!("{team}/{} v1", team * 10 + 1)
        );
        // The team's tag: every element.
        set_version(team, 3);
        assert_eq!(
            cache.invalidate_tag(&format!("team:{team}")).await.unwrap(),
            3
        );
        assert!(
            eventually(Duration::from_secs(3), || !peer
                .contains_local(&members::key(team, team * 10 + 1)))
            .await
        );
        let found = on(peer, members(team, ids)).await;
        assert!(found.values().all(|v| v.ends_with("v3")), "{found:?}");
        set_version(team, 1);
    }
}

#[tokio::test]
async fn a_tag_invalidation_during_a_batch_load_wins() {
    let server = RedisServer::start();
    let (memory, a, b) = caches(&server).await;
    for (team, cache, peer) in [(3, &memory, &memory), (4, &a, &b)] {
        let ids = vec![team * 10, team * 10 + 1];
        let load = tokio::spawn({
            let (cache, ids) = (cache.clone(), ids.clone());
            async move { on(&cache, members(team, ids)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The team changes while the batch loads it (the body read version 1).
        cache.invalidate_tag(&format!("team:{team}")).await.unwrap();
        load.await.unwrap();
        assert!(
            !peer.contains_local(&members::key(team, team * 10)),
            "the value loaded before the invalidation was not cached"
        );
        set_version(team, 2);
        let found = on(peer, members(team, ids)).await;
        assert!(found.values().all(|v| v.ends_with("v2")), "{found:?}");
    }
}

/// A body that also returns the element after each one it was asked for.
#[cached(key = "generous:<id>", batch(id in ids), cache = current())]
async fn generous(ids: Vec<u64>) -> HashMap<u64, u64> {
    ids.iter()
        .flat_map(|&id| [(id, id), (id + 1, id + 1)])
        .collect()
}

/// The single-item twin of `generous`, on the same entries.
static GENEROUS_ONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cached(key = "generous:<id>", cache = current())]
async fn generous_one(id: u64) -> u64 {
    GENEROUS_ONE.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn elements_the_body_was_not_asked_for_are_neither_returned_nor_cached() {
    let server = RedisServer::start();
    let (memory, a, _) = caches(&server).await;
    for cache in [&memory, &a] {
        let cold = on(cache, generous(vec![10, 20])).await;
        assert_eq!(
            cold,
            HashMap::from([(10, 10), (20, 20)]),
            "only what was asked for, though the body returned 11 and 21 too"
        );
        let warm = on(cache, generous(vec![10, 20])).await;
        assert_eq!(cold, warm, "the same answer, cold or warm");
        let runs = GENEROUS_ONE.load(Ordering::SeqCst);
        assert_eq!(on(cache, generous_one(11)).await, 11);
        assert_eq!(
            GENEROUS_ONE.load(Ordering::SeqCst),
            runs + 1,
            "11 was not cached: its own call loaded it"
        );
        assert!(!cache.contains_local(&generous::key(21)));
    }
}
