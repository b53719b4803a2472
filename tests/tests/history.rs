//! The multi-process history check: several OS processes (the `history` binary, each with
//! its own `Cache`) read and write a few hot keys at random against one redis-server while
//! faults are injected into it (kill -9 and restart empty, SIGSTOP, `CLIENT KILL TYPE
//! pubsub`, `CLIENT KILL TYPE normal`, `DEBUG SLEEP`, the tags' sets evicted while the
//! values stay). The source of truth is another redis-server that is never faulted.
//!
//! Afterwards every read is checked against every invalidation that returned Ok before the
//! read began: the read must return the row as of that write or newer. In the process that
//! invalidated, always; in the others, once the bus has had [`BUS_BOUND`] to deliver the
//! message, unless their bus was disconnected in that window (an outage: they clear their
//! memory when the bus is back, and reads after that must be fresh again).
//!
//! `HISTORY_SECONDS` sets the length of the run (default 20); `HISTORY_WORKERS` the number
//! of processes (default 3).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use cachemacro_tests::history::{
    check, check_with, collect, inject_cluster_faults, inject_faults, parse, print_around, Findings,
};
use cachemacro_tests::{RedisCluster, RedisServer};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run at a time in this binary: each starts its servers and three workers, which on
/// two cores is all the machine has (a worker that cannot start in time fails the run).
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a run of the workers saw, with the faults injected meanwhile.
struct Run {
    histories: Vec<cachemacro_tests::history::History>,
    texts: Vec<String>,
    faults: Vec<(u64, &'static str)>,
}

/// Runs `workers` history workers against the cache at `cache_url` (see the `history`
/// binary) and the database `db` for `seconds`, while `faults` runs.
async fn run<F>(workers: usize, seconds: u64, cache_url: String, db: &RedisServer, faults: F) -> Run
where
    F: std::future::Future<Output = Vec<(u64, &'static str)>>,
{
    let dir = std::env::temp_dir().join(format!("cachemacro-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let children: Vec<_> = (0..workers)
        .map(|id| {
            let out = dir.join(format!("worker-{id}.log"));
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_history"))
                .args([
                    cache_url.clone(),
                    db.url(),
                    id.to_string(),
                    seconds.to_string(),
                    out.display().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("the history worker starts");
            (child, out)
        })
        .collect();
    let faults = faults.await;
    let ended = children
        .into_iter()
        .map(|(mut child, out)| (async move { child.wait().await }, out))
        .collect();
    let (histories, texts) = collect(ended, Duration::from_secs(seconds + 60)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        histories,
        texts,
        faults,
    }
}

/// Checks `run`, prints what it saw, and returns the stale reads; `paths` sums the stats
/// of each worker (stale values served, refreshes ahead, fleet waits, loads dropped as
/// stale), `front_hits` and `restarts` too.
fn report(name: &str, run: &Run, excuse_outages: bool) -> (usize, Vec<u64>, u64, u64) {
    let Run {
        histories,
        texts,
        faults,
    } = run;
    let Findings {
        stale,
        excused,
        slowest_propagation_us,
    } = check_with(histories, excuse_outages);
    let reads: usize = histories.iter().map(|h| h.reads.len()).sum();
    let writes: usize = histories.iter().map(|h| h.writes.len()).sum();
    let failed: usize = histories.iter().map(|h| h.failed_writes).sum();
    let outages: usize = histories.iter().map(|h| h.outages.len()).sum();
    let paths: Vec<u64> = (0..4)
        .map(|i| histories.iter().map(|h| h.paths[i]).sum())
        .collect();
    let unusable: u64 = histories.iter().map(|h| h.unusable).sum();
    let front_hits: u64 = histories.iter().map(|h| h.front_hits).sum();
    let restarts: u64 = histories.iter().map(|h| h.fleet_restarts).sum();
    let mut by_fault: HashMap<&str, usize> = HashMap::new();
    for (_, fault) in faults {
        *by_fault.entry(fault).or_default() += 1;
    }
    eprintln!(
        "{name}: {} processes, {reads} reads, {writes} Ok invalidations, \
         {failed} failed ones, {outages} bus outages, faults {by_fault:?}; \
         {} stale values served, {} refreshes ahead, {} fleet waits ({restarts} started afresh), \
         {} loads dropped as stale, \
         {unusable} values in Redis not used (unlisted under a tag, say), \
         {front_hits} reads answered by the typed fronts; \
         {excused} reads excused (bus in flight or down), the slowest propagation seen \
         {:.1} ms, {} stale",
        histories.len(),
        paths[0],
        paths[1],
        paths[2],
        paths[3],
        slowest_propagation_us as f64 / 1000.0,
        stale.len()
    );
    for s in stale.iter().take(10) {
        eprintln!("stale: {s:?}");
    }
    if let Some(first) = stale.first() {
        print_around(first, texts, faults);
    }
    assert!(reads > 1000 && writes > 100, "too little happened to check");
    (stale.len(), paths, front_hits, restarts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_returns_a_value_older_than_an_invalidation_that_returned_before_it() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let seconds = env_number("HISTORY_SECONDS", 20);
    let workers = env_number("HISTORY_WORKERS", 3) as usize;
    let mut server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let db = RedisServer::start();
    let run = run(
        workers,
        seconds,
        server.url(),
        &db,
        inject_faults(&mut server, seconds, true),
    )
    .await;
    let (stale, paths, front_hits, restarts) = report("history", &run, true);
    assert!(
        paths.iter().all(|&count| count > 0),
        "every path was taken: {paths:?}"
    );
    assert!(front_hits > 0, "the typed fronts answered reads");
    assert!(
        restarts > 0,
        "fleet loads started afresh after going stale while they waited"
    );
    assert_eq!(stale, 0, "{stale} stale reads");
}

/// The same check on a Redis Cluster (3 primaries, a replica each) with the sharded bus
/// (`HISTORY_BUS`: `classic`, `sharded` or `both`), while slots migrate (a window held
/// open with keys on both sides, the slot of a hot key and the slot of a tag's sets), a
/// primary is killed and replaced by its replica (and comes back as a replica), a primary
/// pauses, and the bus's connections are cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_no_read_returns_a_value_older_than_an_invalidation_that_returned_before_it() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let seconds = env_number("HISTORY_SECONDS", 20);
    let workers = env_number("HISTORY_WORKERS", 3) as usize;
    let bus = std::env::var("HISTORY_BUS").unwrap_or_else(|_| "sharded".into());
    let cluster = RedisCluster::start_with_replicas(3, 1);
    let db = RedisServer::start();
    let url = format!("cluster:{bus}:{}", cluster.urls().join(","));
    let faults = async move {
        tokio::task::spawn_blocking(move || inject_cluster_faults(cluster, seconds))
            .await
            .expect("the faults ran")
    };
    let run = run(workers, seconds, url, &db, faults).await;
    // No outage excuses a stale read here: a cluster never goes away whole in this mix, and
    // an instance that cannot hear the bus reads from Redis.
    let (stale, paths, _, _) = report(&format!("history on a cluster, {bus} bus"), &run, false);
    assert!(
        paths.iter().all(|&count| count > 0),
        "every path was taken: {paths:?}"
    );
    assert_eq!(stale, 0, "{stale} stale reads");
}

#[test]
fn the_checker_finds_a_stale_read() {
    let writer = parse("W 1 5 100 200 ok remove\nB up 0");
    let reader = parse("R 1 4 300000 300100\nB up 0");
    let found = check(&[writer, reader]);
    assert_eq!(
        found.stale.len(),
        1,
        "a read 300 ms after the write got an older version"
    );
    let same = parse("W 1 5 100 200 ok remove\nR 1 4 201 300");
    assert_eq!(
        check(&[same]).stale.len(),
        1,
        "in the same process, at once"
    );
    let excused_by_outage = parse("B up 0\nB down 150\nB up 400000\nR 1 4 300000 300100");
    let found = check(&[parse("W 1 5 100 200 ok remove"), excused_by_outage]);
    assert!(
        found.stale.is_empty() && found.excused == 1,
        "the reader's bus was down"
    );
    let in_flight = parse("B up 0\nR 1 4 2200 2300");
    let found = check(&[parse("W 1 5 100 200 ok remove"), in_flight]);
    assert!(found.stale.is_empty() && found.slowest_propagation_us == 2000);
}
