//! The history check's records and checker, shared by `tests/history.rs` (one version) and
//! `tests/mixed_versions.rs` (the previous release beside this one): the workers' event
//! lines parsed, every read checked against every invalidation that returned before it, and
//! the faults injected meanwhile.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::{RedisCluster, RedisServer};

/// Waits for each worker to end (at most `bound` each), then reads and parses the history
/// it wrote to its file; returns the histories and their texts, in order.
pub async fn collect<F>(workers: Vec<(F, PathBuf)>, bound: Duration) -> (Vec<History>, Vec<String>)
where
    F: Future<Output = std::io::Result<ExitStatus>>,
{
    let mut histories = Vec::new();
    let mut texts = Vec::new();
    for (ended, out) in workers {
        let status = tokio::time::timeout(bound, ended)
            .await
            .expect("the worker ends")
            .expect("wait for the worker");
        assert!(status.success(), "a worker exited with {status}");
        let text = std::fs::read_to_string(&out).expect("the worker wrote its history");
        histories.push(parse(&text));
        texts.push(text);
    }
    (histories, texts)
}

/// How long an invalidation message may take to reach another instance, as stated in the
/// README ("What is guaranteed").
pub const BUS_BOUND_US: u64 = 100_000;

/// A read: key `key` returned the row's version `value`, between `start` and `end` (µs
/// since the epoch).
#[derive(Debug)]
pub struct Read {
    /// The row.
    pub key: u64,
    /// The version it returned.
    pub value: u64,
    /// When it began.
    pub start: u64,
    /// When it returned.
    pub end: u64,
}

/// A write that made row `key` version `version` and invalidated it, returning Ok at `end`.
#[derive(Debug)]
pub struct Write {
    /// The row.
    pub key: u64,
    /// The version it wrote.
    pub version: u64,
    /// When its invalidation returned.
    pub end: u64,
    /// How it invalidated (remove, tag, bump, purge...).
    pub how: String,
}

/// What one process saw.
#[derive(Debug, Default)]
pub struct History {
    /// Its reads.
    pub reads: Vec<Read>,
    /// Invalidations that returned Ok.
    pub writes: Vec<Write>,
    /// Writes whose invalidation returned an error (nothing to check).
    pub failed_writes: usize,
    /// Intervals during which its bus was seen disconnected (end: when seen up again).
    pub outages: Vec<(u64, u64)>,
    /// Its cache's counts of the paths taken: stale values served, refreshes ahead, fleet
    /// waits, loads dropped as stale.
    pub paths: [u64; 4],
    /// Values in Redis it did not use (among them those an evicted tag set no longer
    /// listed).
    pub unusable: u64,
    /// Reads its functions' typed fronts of L1 answered.
    pub front_hits: u64,
    /// Fleet loads that started afresh after their flight went stale while they waited.
    pub fleet_restarts: u64,
}

/// One worker's event lines (see the `history` binary), parsed.
pub fn parse(text: &str) -> History {
    let mut history = History::default();
    let mut down_since = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| -> u64 { f[i].parse().unwrap_or_else(|_| panic!("bad line `{line}`")) };
        match f.first().copied() {
            Some("R") => history.reads.push(Read {
                key: n(1),
                value: n(2),
                start: n(3),
                end: n(4),
            }),
            Some("W") if f[5] == "ok" => history.writes.push(Write {
                key: n(1),
                version: n(2),
                end: n(4),
                how: f.get(6).unwrap_or(&"?").to_string(),
            }),
            Some("W") => history.failed_writes += 1,
            Some("B") if f[1] == "down" => {
                down_since.get_or_insert(n(2));
            }
            Some("S") => {
                for (i, count) in history.paths.iter_mut().enumerate() {
                    *count = n(i + 1);
                }
                history.unusable = n(5);
                history.front_hits = n(6);
                history.fleet_restarts = n(7);
            }
            Some("B") => {
                if let Some(since) = down_since.take() {
                    history.outages.push((since, n(2)));
                }
            }
            _ => {}
        }
    }
    if let Some(since) = down_since {
        history.outages.push((since, u64::MAX));
    }
    history
}

/// A read that returned a value older than an invalidation it had to see.
#[derive(Debug)]
#[allow(dead_code)] // Read through `Debug` when the check fails.
pub struct Stale {
    /// The worker that read.
    pub reader: usize,
    /// The worker that wrote.
    pub writer: usize,
    /// The row.
    pub key: u64,
    /// The version read.
    pub got: u64,
    /// The version it had to be at least.
    pub expected: u64,
    /// How the write invalidated.
    pub how: String,
    /// How long after the invalidation returned the read began, and how long it took.
    pub after_us: u64,
    /// How long the read took.
    pub took_us: u64,
    /// When the read began (µs since the epoch), to show what happened around it.
    pub read_start: u64,
}

/// What the check found.
pub struct Findings {
    /// The stale reads.
    pub stale: Vec<Stale>,
    /// Reads of other processes that returned an older value while the message was on its
    /// way (within the bus bound) or their bus was down.
    pub excused: usize,
    /// The latest, after an Ok invalidation, that another process's read began and still
    /// returned the older value while its bus was up: the measured propagation delay.
    pub slowest_propagation_us: u64,
}

/// Every stale read; and the reads of other processes excused by the bus bound or an outage.
pub fn check(histories: &[History]) -> Findings {
    check_with(histories, true)
}

/// [`check`], excusing a reader's outages only when `outages` is true. Without that excuse,
/// a process whose bus was down must still not serve what another process's Ok
/// invalidation removed (it reads from Redis rather than from its memory then), unless it
/// could not reach Redis at all; the cluster's fault mix never takes the whole cluster
/// away.
pub fn check_with(histories: &[History], outages: bool) -> Findings {
    let mut stale = Vec::new();
    let mut excused = 0;
    let mut slowest_propagation_us = 0;
    for (reader, history) in histories.iter().enumerate() {
        for read in &history.reads {
            let mut worst: Option<Stale> = None;
            let mut excuse = false;
            for (writer, other) in histories.iter().enumerate() {
                for write in &other.writes {
                    if write.key != read.key
                        || write.end >= read.start
                        || read.value >= write.version
                    {
                        continue;
                    }
                    if writer != reader {
                        // Still on its way; or this reader's bus was down while it was: its
                        // memory is cleared when the bus is back, and reads after that count.
                        let window = (write.end, write.end + BUS_BOUND_US);
                        let missed = history
                            .outages
                            .iter()
                            .find(|(down, up)| *down <= window.1 && *up >= window.0);
                        if outages && missed.is_some_and(|(_, up)| read.start <= *up) {
                            excuse = true;
                            continue;
                        }
                        if read.start <= window.1 {
                            excuse = true;
                            slowest_propagation_us =
                                slowest_propagation_us.max(read.start - write.end);
                            continue;
                        }
                    }
                    if worst.as_ref().is_none_or(|w| write.version > w.expected) {
                        worst = Some(Stale {
                            reader,
                            writer,
                            key: read.key,
                            got: read.value,
                            expected: write.version,
                            how: write.how.clone(),
                            after_us: read.start - write.end,
                            took_us: read.end - read.start,
                            read_start: read.start,
                        });
                    }
                }
            }
            match worst {
                Some(s) => stale.push(s),
                None if excuse => excused += 1,
                None => {}
            }
        }
    }
    Findings {
        stale,
        excused,
        slowest_propagation_us,
    }
}

/// Now, in µs since the epoch (the workers' clock).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Injects one fault after another into `server` for `seconds` (less the last two); returns
/// each with when it began (µs since the epoch). `evict_tags`: whether one of them deletes
/// the tags' sets and keeps their values (else it cuts the pub/sub connections instead).
pub async fn inject_faults(
    server: &mut RedisServer,
    seconds: u64,
    evict_tags: bool,
) -> Vec<(u64, &'static str)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut injected = Vec::new();
    let mut round = 0u64;
    // Let the workers warm up first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while tokio::time::Instant::now() + Duration::from_secs(2) < deadline {
        let began = now_us();
        let fault = match round % 6 {
            0 => {
                server.restart();
                "kill -9 and restart"
            }
            1 => {
                server.pause();
                tokio::time::sleep(Duration::from_millis(300 + 300 * (round % 3))).await;
                server.resume();
                "SIGSTOP"
            }
            2 => {
                admin(server, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
                "CLIENT KILL TYPE pubsub"
            }
            3 => {
                admin(server, &["DEBUG", "SLEEP", "0.5"]).await;
                "DEBUG SLEEP 0.5"
            }
            4 if evict_tags => {
                evict_tag_sets(server).await;
                "evict the tag sets"
            }
            4 => {
                admin(server, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
                "CLIENT KILL TYPE pubsub"
            }
            _ => {
                admin(server, &["CLIENT", "KILL", "TYPE", "normal"]).await;
                "CLIENT KILL TYPE normal"
            }
        };
        injected.push((began, fault));
        round += 1;
        tokio::time::sleep(Duration::from_millis(700 + 400 * (round % 3))).await;
    }
    injected
}

/// The cluster's fault mix, in turn, for `seconds` (blocking: run it on a thread of its
/// own), after a warm-up; returns when each began and what it was. Slot migrations move the
/// slot of a hot key (`row:1`) or of a tag's sets (`{row:2}`) to another primary, hold it
/// open a second with half its keys on each side, and finish it; a killed primary is
/// replaced by its replica and comes back as a replica; a paused primary stays paused below
/// the node timeout (no failover); the bus's connections are cut on every node.
pub fn inject_cluster_faults(mut cluster: RedisCluster, seconds: u64) -> Vec<(u64, &'static str)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut injected = Vec::new();
    let mut round = 0u64;
    std::thread::sleep(Duration::from_millis(1500));
    while std::time::Instant::now() + Duration::from_secs(4) < deadline {
        let began = now_us();
        let fault = match round % 5 {
            0 | 3 => {
                let hot_key = round.is_multiple_of(5);
                let key = if hot_key {
                    "history:c1:k:row:1"
                } else {
                    "row:2"
                };
                let slot = cluster.slot_of(key);
                let from = cluster.primary_of(slot);
                let to = cluster
                    .primaries()
                    .into_iter()
                    .find(|&i| i != from)
                    .expect("another primary");
                cluster.begin_migration(slot, from, to);
                cluster.migrate_keys(slot, from, to, 2);
                std::thread::sleep(Duration::from_secs(1));
                cluster.finish_migration(slot, from, to);
                if hot_key {
                    "migrate the slot of a hot key"
                } else {
                    "migrate the slot of a tag's sets"
                }
            }
            1 => {
                let victim = cluster.primaries()[round as usize % 3];
                let port = cluster.node(victim).port();
                cluster.nodes()[victim].kill();
                cluster.wait_failover(port);
                cluster.nodes()[victim].start_again();
                cluster.wait_ok();
                "kill -9 a primary (its replica takes over)"
            }
            2 => {
                let victim = cluster.primaries()[round as usize % 3];
                cluster.node(victim).pause();
                std::thread::sleep(Duration::from_millis(500));
                cluster.node(victim).resume();
                "SIGSTOP a primary for 0.5 s"
            }
            _ => {
                for i in 0..cluster.urls().len() {
                    if let Some(mut conn) = cluster.node(i).try_connection() {
                        let _: redis::RedisResult<redis::Value> = redis::cmd("CLIENT")
                            .arg("KILL")
                            .arg("TYPE")
                            .arg("pubsub")
                            .query(&mut conn);
                    }
                }
                "CLIENT KILL TYPE pubsub on every node"
            }
        };
        injected.push((began, fault));
        round += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    injected
}

/// Deletes every tag's sets of registrations (the sorted sets, and the sets kept for
/// instances of 0.1) and keeps the values they list, as `maxmemory-policy volatile-lru`
/// may (the sets have a TTL).
pub async fn evict_tag_sets(server: &RedisServer) {
    let Ok(mut conn) = server.client().get_multiplexed_async_connection().await else {
        return;
    };
    for pattern in ["*:c1:tz:*", "*:c1:t:*"] {
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<redis::Value>(&mut conn)
                    .await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Runs `command` on `server`, ignoring its answer (and any error: the server may be down).
pub async fn admin(server: &RedisServer, command: &[&str]) {
    let Ok(mut conn) = server.client().get_multiplexed_async_connection().await else {
        return;
    };
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    let _ = cmd.query_async::<redis::Value>(&mut conn).await;
}

/// What happened around a stale read, for whoever reads a failed run: the faults, and each
/// worker's events on the key and its bus, from half a second before the invalidation the
/// read missed to a tenth of a second after the read.
pub fn print_around(stale: &Stale, texts: &[String], faults: &[(u64, &str)]) {
    let from = stale.read_start.saturating_sub(stale.after_us + 500_000);
    let to = stale.read_start + 100_000;
    let key = stale.key.to_string();
    for (at, fault) in faults {
        if (from..=to).contains(at) {
            eprintln!("around: fault {at} {fault}");
        }
    }
    for (worker, text) in texts.iter().enumerate() {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (on_key, at) = match f.first().copied() {
                Some("R" | "W") => (f.get(1) == Some(&key.as_str()), f.get(3)),
                Some("B") => (true, f.get(2)),
                _ => (false, None),
            };
            let at: u64 = at.and_then(|t| t.parse().ok()).unwrap_or(0);
            if on_key && (from..=to).contains(&at) {
                eprintln!("around: worker {worker}: {line}");
            }
        }
    }
}
