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

use cachemacro_tests::RedisServer;

/// How long an invalidation message may take to reach another instance, as stated in the
/// README ("What is guaranteed").
const BUS_BOUND_US: u64 = 100_000;

#[derive(Debug)]
struct Read {
    key: u64,
    value: u64,
    start: u64,
    end: u64,
}

#[derive(Debug)]
struct Write {
    key: u64,
    version: u64,
    end: u64,
    how: String,
}

/// What one process saw.
#[derive(Debug, Default)]
struct History {
    reads: Vec<Read>,
    /// Invalidations that returned Ok.
    writes: Vec<Write>,
    failed_writes: usize,
    /// Intervals during which its bus was seen disconnected (end: when seen up again).
    outages: Vec<(u64, u64)>,
    /// Its cache's counts of the paths taken: stale values served, refreshes ahead, fleet
    /// waits, loads dropped as stale.
    paths: [u64; 4],
    /// Values in Redis it did not use (among them those an evicted tag set no longer
    /// listed).
    unusable: u64,
    /// Reads its functions' typed fronts of L1 answered.
    front_hits: u64,
    /// Fleet loads that started afresh after their flight went stale while they waited.
    fleet_restarts: u64,
}

fn parse(text: &str) -> History {
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
struct Stale {
    reader: usize,
    writer: usize,
    key: u64,
    got: u64,
    expected: u64,
    /// How the write invalidated.
    how: String,
    /// How long after the invalidation returned the read began, and how long it took.
    after_us: u64,
    took_us: u64,
    /// When the read began (µs since the epoch), to show what happened around it.
    read_start: u64,
}

/// What the check found.
struct Findings {
    stale: Vec<Stale>,
    /// Reads of other processes that returned an older value while the message was on its
    /// way (within the bus bound) or their bus was down.
    excused: usize,
    /// The latest, after an Ok invalidation, that another process's read began and still
    /// returned the older value while its bus was up: the measured propagation delay.
    slowest_propagation_us: u64,
}

/// Every stale read; and the reads of other processes excused by the bus bound or an outage.
fn check(histories: &[History]) -> Findings {
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
                        if missed.is_some_and(|(_, up)| read.start <= *up) {
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
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Injects one fault after another into `server` until `stop` is set; returns each with
/// when it began (µs since the epoch).
async fn inject_faults(server: &mut RedisServer, seconds: u64) -> Vec<(u64, &'static str)> {
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
            4 => {
                evict_tag_sets(server).await;
                "evict the tag sets"
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

/// Deletes every tag's set of registrations and keeps the values they list, as
/// `maxmemory-policy volatile-lru` may (the sets have a TTL).
async fn evict_tag_sets(server: &RedisServer) {
    let Ok(mut conn) = server.client().get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor = 0u64;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("*:tz:*")
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
            return;
        }
        cursor = next;
    }
}

async fn admin(server: &RedisServer, command: &[&str]) {
    let Ok(mut conn) = server.client().get_multiplexed_async_connection().await else {
        return;
    };
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    let _ = cmd.query_async::<redis::Value>(&mut conn).await;
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_returns_a_value_older_than_an_invalidation_that_returned_before_it() {
    let seconds = env_number("HISTORY_SECONDS", 20);
    let workers = env_number("HISTORY_WORKERS", 3) as usize;
    let mut server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let db = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("cachemacro-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let children: Vec<_> = (0..workers)
        .map(|id| {
            let out = dir.join(format!("worker-{id}.log"));
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_history"))
                .args([
                    server.url(),
                    db.url(),
                    id.to_string(),
                    seconds.to_string(),
                    out.display().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("the history worker starts");
            (child, out)
        })
        .collect();
    let faults = inject_faults(&mut server, seconds).await;
    let mut histories = Vec::new();
    let mut texts = Vec::new();
    for (mut child, out) in children {
        let status = tokio::time::timeout(Duration::from_secs(seconds + 30), child.wait())
            .await
            .expect("the worker ends")
            .expect("wait for the worker");
        assert!(status.success(), "a worker exited with {status}");
        let text = std::fs::read_to_string(&out).expect("the worker's events");
        histories.push(parse(&text));
        texts.push(text);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let Findings {
        stale,
        excused,
        slowest_propagation_us,
    } = check(&histories);
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
    for (_, fault) in &faults {
        *by_fault.entry(fault).or_default() += 1;
    }
    eprintln!(
        "history: {workers} processes, {seconds} s, {reads} reads, {writes} Ok invalidations, \
         {failed} failed ones, {outages} bus outages, faults {by_fault:?}; \
         {} stale values served, {} refreshes ahead, {} fleet waits ({restarts} started afresh), \
         {} loads dropped as stale, \
         {unusable} values in Redis not used (unlisted under a tag, say), \
         {front_hits} reads answered by the typed fronts; \
         {excused} reads excused (bus in flight or down), the slowest propagation seen \
         {:.1} ms, {} stale",
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
        print_around(first, &texts, &faults);
    }
    assert!(reads > 1000 && writes > 100, "too little happened to check");
    assert!(
        paths.iter().all(|&count| count > 0),
        "every path was taken: {paths:?}"
    );
    assert!(front_hits > 0, "the typed fronts answered reads");
    assert!(
        restarts > 0,
        "fleet loads started afresh after going stale while they waited"
    );
    assert!(stale.is_empty(), "{} stale reads", stale.len());
}

/// What happened around a stale read, for whoever reads a failed run: the faults, and each
/// worker's events on the key and its bus, from half a second before the invalidation the
/// read missed to a tenth of a second after the read.
fn print_around(stale: &Stale, texts: &[String], faults: &[(u64, &str)]) {
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
