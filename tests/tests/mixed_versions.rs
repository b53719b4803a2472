//! Rolling deploys, checked: instances of the previous release (`.ci/previous-release`) and
//! of this one share one namespace on one redis-server, as they do for the minutes a rolling
//! deploy takes, while faults are injected; every read is checked against every
//! invalidation that returned before it, as in `tests/history.rs`.
//!
//! The workers are `tests/mixed` built twice, by `.ci/mixed-versions`, which passes their
//! paths in `CACHEMACRO_MIXED_OLD` and `CACHEMACRO_MIXED_NEW` and runs these tests (they are
//! ignored by a plain `cargo test`, which has no build of the previous release).
//! `MIXED_SECONDS` sets the length of each run (default 30); `MIXED_OLD_NO_PURGE=1` keeps the
//! old instances from purging (0.1's deploy procedure); `MIXED_OLD_OWN_RACES=1` leaves out
//! the stale reads of old instances after old instances' invalidations (0.1's own races).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cachemacro_tests::history::{check, collect, inject_faults, print_around, Findings, History};
use cachemacro_tests::RedisServer;

/// A worker to run: which build, from when, for how long.
struct Spec {
    binary: PathBuf,
    old: bool,
    start_after: Duration,
    seconds: u64,
}

fn build(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).unwrap_or_else(|| {
        panic!("{variable} is not set: run `.ci/mixed-versions`, which builds both workers")
    });
    let path = PathBuf::from(path);
    assert!(path.exists(), "{variable}: no worker at {}", path.display());
    path
}

fn seconds() -> u64 {
    std::env::var("MIXED_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// Runs the workers against one faulted redis-server and checks their histories.
async fn run(name: &str, specs: Vec<Spec>, seconds: u64) {
    let mut server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let db = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("cachemacro-mixed-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let olds: Vec<bool> = specs.iter().map(|s| s.old).collect();
    let children: Vec<_> = specs
        .into_iter()
        .enumerate()
        .map(|(id, spec)| {
            let out = dir.join(format!("worker-{id}.log"));
            let mut args = vec![
                server.url(),
                db.url(),
                id.to_string(),
                spec.seconds.to_string(),
                out.display().to_string(),
            ];
            // 0.1's deploy procedure: purges only from newer instances (0.1's purge deletes
            // the tombstones and tag sets that keep loads from storing stale values);
            // `.ci/mixed-versions` sets `MIXED_OLD_NO_PURGE` for such a release.
            if spec.old && std::env::var_os("MIXED_OLD_NO_PURGE").is_some() {
                args.push("no-purge".to_owned());
            }
            let child = tokio::spawn(async move {
                tokio::time::sleep(spec.start_after).await;
                tokio::process::Command::new(&spec.binary)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("the worker starts")
                    .wait()
                    .await
            });
            (child, out)
        })
        .collect();
    // The tag sets are not evicted here: the previous release cannot tell an evicted set
    // from an empty one (this release can, see `tests/history.rs`).
    let faults = inject_faults(&mut server, seconds, false).await;
    let workers = children
        .into_iter()
        .map(|(task, out)| (async move { task.await.expect("the worker's task") }, out))
        .collect();
    let (histories, texts) = collect(workers, Duration::from_secs(seconds + 60)).await;
    let _ = std::fs::remove_dir_all(&dir);
    let Findings {
        stale,
        excused,
        slowest_propagation_us,
    } = check(&histories);
    let count = |old: bool, f: &dyn Fn(&History) -> usize| -> usize {
        histories
            .iter()
            .zip(&olds)
            .filter(|(_, &o)| o == old)
            .map(|(h, _)| f(h))
            .sum()
    };
    let reads = |h: &History| h.reads.len();
    let writes = |h: &History| h.writes.len();
    let mut hows = std::collections::BTreeMap::<&str, usize>::new();
    for history in &histories {
        for write in &history.writes {
            *hows.entry(write.how.as_str()).or_default() += 1;
        }
    }
    eprintln!(
        "mixed versions, {name}: {} reads ({} by old instances, {} by new), {} Ok invalidations \
         ({} by old, {} by new: {hows:?}), faults {}; {excused} reads excused (bus in flight or \
         down), slowest propagation {:.1} ms, {} stale",
        count(true, &reads) + count(false, &reads),
        count(true, &reads),
        count(false, &reads),
        count(true, &writes) + count(false, &writes),
        count(true, &writes),
        count(false, &writes),
        faults.len(),
        slowest_propagation_us as f64 / 1000.0,
        stale.len()
    );
    let side = |worker: usize| if olds[worker] { "old" } else { "new" };
    let mut by_pair = std::collections::BTreeMap::<(&str, &str, &str), usize>::new();
    for s in &stale {
        *by_pair
            .entry((side(s.reader), side(s.writer), s.how.as_str()))
            .or_default() += 1;
    }
    eprintln!("stale reads by (reader, writer, invalidation): {by_pair:?}");
    // This release answers for every read and write it takes part in. A previous release
    // with races of its own (`MIXED_OLD_OWN_RACES`: 0.1) answers for its reads of its own
    // invalidations, whoever runs beside it; any other answers for every read.
    let own_races = std::env::var_os("MIXED_OLD_OWN_RACES").is_some();
    let ours: Vec<_> = stale
        .iter()
        .filter(|s| !own_races || !olds[s.reader] || !olds[s.writer])
        .collect();
    for s in ours.iter().take(10) {
        eprintln!(
            "stale: read by {} worker {}, written by {} worker {}: {s:?}",
            side(s.reader),
            s.reader,
            side(s.writer),
            s.writer
        );
    }
    if let Some(first) = ours.first() {
        print_around(first, &texts, &faults);
    }
    assert!(
        count(true, &reads) > 500 && count(false, &reads) > 500,
        "too little happened to check"
    );
    assert!(
        ours.is_empty(),
        "{} stale reads (with an instance of this release as reader or writer, for a previous release with races of its own)",
        ours.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's worker: run .ci/mixed-versions"]
async fn two_old_and_two_new_instances_keep_every_invalidation() {
    let (old, new) = (build("CACHEMACRO_MIXED_OLD"), build("CACHEMACRO_MIXED_NEW"));
    let seconds = seconds();
    let specs = [(&old, true), (&new, false), (&old, true), (&new, false)]
        .into_iter()
        .map(|(binary, old)| Spec {
            binary: binary.clone(),
            old,
            start_after: Duration::ZERO,
            seconds,
        })
        .collect();
    run("2 old + 2 new", specs, seconds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's worker: run .ci/mixed-versions"]
async fn a_fleet_replaced_one_instance_at_a_time_keeps_every_invalidation() {
    let (old, new) = (build("CACHEMACRO_MIXED_OLD"), build("CACHEMACRO_MIXED_NEW"));
    let seconds = seconds();
    // Four old instances; the i-th is replaced at (i + 1) fifths of the run, its successor
    // starting a second before it stops (a surge).
    let mut specs = Vec::new();
    for i in 0..4u64 {
        let replaced_at = (i + 1) * seconds / 5;
        specs.push(Spec {
            binary: old.clone(),
            old: true,
            start_after: Duration::ZERO,
            seconds: replaced_at,
        });
        specs.push(Spec {
            binary: new.clone(),
            old: false,
            start_after: Duration::from_secs(replaced_at.saturating_sub(1)),
            seconds: seconds - replaced_at.saturating_sub(1),
        });
    }
    run("4 old replaced one at a time", specs, seconds).await;
}
