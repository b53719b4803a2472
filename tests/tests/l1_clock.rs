//! L1 expiry holds in a process held off the CPU: the `throttled` binary
//! (tests/src/bin/throttled.rs) reads 10 ms entries inside a cgroup whose CPU quota its own
//! spinning thread uses up, so that every thread of the process waits out most of each
//! period, as a busy service in a container does.
//!
//! The cgroup needs root and a cgroup file system with the cpu controller (v1's
//! `cpu.cfs_quota_us`, or v2's `cpu.max`); where none can be made the test says so and
//! passes without running.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The quota: 20 ms of CPU per 100 ms period.
const QUOTA_US: u64 = 20_000;
const PERIOD_US: u64 = 100_000;

/// Rounds of the reader: two checked reads each, about 3 s in all.
const ROUNDS: u64 = 150;

/// A cgroup with a CPU quota, removed when dropped (after its processes have exited).
struct Throttled {
    dir: PathBuf,
    /// The file that holds the count of periods the group was held off the CPU.
    stat: PathBuf,
}

impl Throttled {
    /// Makes the cgroup, or says why it cannot.
    fn make() -> Result<Self, String> {
        let name = format!("cachemacro-l1-clock-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let group = Self {
                stat: dir.join("cpu.stat"),
                dir,
            };
            group.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            group.write("cpu.cfs_quota_us", &QUOTA_US.to_string())?;
            return Ok(group);
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .map_err(|e| format!("no cgroup v1 cpu controller, and no cgroup v2: {e}"))?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return Err("no cgroup v1 cpu controller, and cgroup v2 has no cpu controller".into());
        }
        // The controller must be enabled for the root's children; this fails when the
        // root still holds processes under a container manager that forbids it.
        std::fs::write(v2.join("cgroup.subtree_control"), "+cpu")
            .map_err(|e| format!("enabling the cgroup v2 cpu controller: {e}"))?;
        let dir = v2.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let group = Self {
            stat: dir.join("cpu.stat"),
            dir,
        };
        group.write("cpu.max", &format!("{QUOTA_US} {PERIOD_US}"))?;
        Ok(group)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("writing {value} to {}/{file}: {e}", self.dir.display()))
    }

    /// How many periods the group was held off the CPU so far.
    fn throttled_periods(&self) -> u64 {
        let stat = std::fs::read_to_string(&self.stat).unwrap_or_default();
        stat.lines()
            .find_map(|line| line.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Throttled {
    fn drop(&mut self) {
        // The group can be removed once empty; its process has exited (or was killed) by now.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove the cgroup {}", self.dir.display());
    }
}

/// Kills the child if the test fails before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reader's counts, by name.
fn field(line: &str, name: &str) -> u64 {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == name {
            return words
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} has no number in {line:?}"));
        }
    }
    panic!("no {name} in {line:?}")
}

#[test]
fn a_throttled_process_never_serves_an_expired_l1_entry() {
    let group = match Throttled::make() {
        Ok(group) => group,
        Err(why) => {
            println!("skipped: no cgroup with a CPU quota can be made here ({why})");
            return;
        }
    };
    let child = Command::new(env!("CARGO_BIN_EXE_throttled"))
        .arg(ROUNDS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the throttled binary starts");
    let mut child = Reaped(child);
    // Into the cgroup before it starts its threads and its cache.
    group
        .write("cgroup.procs", &child.0.id().to_string())
        .expect("the reader joins the cgroup");
    let mut stdin = child.0.stdin.take().expect("piped stdin");
    writeln!(stdin, "go").expect("the reader reads its go");
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the reader answers");
    let status = child.0.wait().expect("the reader exits");
    assert!(status.success(), "the reader failed: {status}");
    let throttled = group.throttled_periods();
    println!("{} throttled periods; {}", throttled, line.trim());

    let reads = field(&line, "reads");
    let early = field(&line, "early");
    let early_hits = field(&line, "early_hits");
    let expired = field(&line, "expired");
    let served_expired = field(&line, "served_expired");
    let oldest = field(&line, "oldest_served_ms");
    // The conditions the check needs, with wide margins: the process was held off the CPU
    // again and again, reads came both early and late in an entry's life, and early
    // reads did hit (so a late read that misses is the clock's doing, not a broken read).
    assert!(
        throttled >= 5,
        "the quota held the reader back {throttled} times only"
    );
    assert!(reads >= ROUNDS, "{reads} checked reads");
    assert!(
        early >= 20 && expired >= 50,
        "{early} early, {expired} late reads"
    );
    assert!(
        early_hits * 2 >= early,
        "only {early_hits} of {early} reads within half the TTL hit"
    );
    assert_eq!(
        served_expired, 0,
        "{served_expired} of {expired} reads started at or after the TTL returned the value, \
         the oldest {oldest} ms after it was written"
    );
}
