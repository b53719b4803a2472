//! A write is visible on the next read across separate OS processes: each instance is the
//! `instance` binary (tests/src/bin/instance.rs), driven line by line over stdin/stdout,
//! all on one redis-server started by the test.

use std::process::Stdio;
use std::time::{Duration, Instant};

use cachemacro_tests::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long an invalidation may take to reach another process.
const PROPAGATION: Duration = Duration::from_secs(3);
/// How long one command may take to be answered (a start-up included).
const REPLY: Duration = Duration::from_secs(10);

/// One `instance` process, killed when dropped.
struct Instance {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Instance {
    /// Starts an instance on `server`; its bus is subscribed when this returns.
    async fn start(name: &'static str, server: &RedisServer) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_instance"))
            .arg(server.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the instance binary starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut instance = Self {
            name,
            child,
            stdin,
            stdout,
        };
        // Only a subscribed instance can hear invalidations: make sure before the test
        // relies on it.
        assert!(
            instance.until_answer("bus", "yes").await,
            "{name}: the invalidation bus did not connect"
        );
        instance
    }

    /// Sends one command and returns its one-line answer.
    async fn ask(&mut self, command: &str) -> String {
        let name = self.name;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{name}: cannot send `{command}`: {e}"));
        self.stdin.flush().await.expect("flush stdin");
        match tokio::time::timeout(REPLY, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("{name}: exited instead of answering `{command}`"),
            Ok(Err(e)) => panic!("{name}: cannot read the answer to `{command}`: {e}"),
            Err(_) => panic!("{name}: no answer to `{command}` within {REPLY:?}"),
        }
    }

    /// `get <id>`: the value and how many times this process ran the function body.
    async fn get(&mut self, id: u64) -> (String, usize) {
        let line = self.ask(&format!("get {id}")).await;
        let (value, runs) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{}: bad answer to get: `{line}`", self.name));
        let runs = runs
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad answer to get: `{line}`", self.name));
        (value.to_owned(), runs)
    }

    /// `write <id> <value>`: writes the row and removes the cache entry everywhere.
    async fn write(&mut self, id: u64, value: &str) {
        let answer = self.ask(&format!("write {id} {value}")).await;
        assert_eq!(answer, "ok", "{}: write {id} {value}", self.name);
    }

    /// Whether this process's L1 holds entry `id`.
    async fn local(&mut self, id: u64) -> bool {
        match self.ask(&format!("local {id}")).await.as_str() {
            "yes" => true,
            "no" => false,
            other => panic!("{}: bad answer to local: `{other}`", self.name),
        }
    }

    /// Asks `command` every 5 ms until the answer is `expected` or [`PROPAGATION`]
    /// passes; returns whether it was.
    async fn until_answer(&mut self, command: &str, expected: &str) -> bool {
        let deadline = Instant::now() + PROPAGATION;
        loop {
            if self.ask(command).await == expected {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Asks the process to quit and checks that it exits cleanly.
    async fn quit(mut self) {
        let name = self.name;
        self.stdin.write_all(b"quit\n").await.expect("send quit");
        self.stdin.flush().await.expect("flush stdin");
        let status = tokio::time::timeout(REPLY, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name}: did not exit after quit"))
            .expect("wait for the instance");
        assert!(status.success(), "{name}: exited with {status}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A test that fails half-way must not leave processes behind. (After `quit` the
        // process is gone and this does nothing.)
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn a_write_in_one_process_is_visible_on_the_next_read_in_another() {
    let server = RedisServer::start();
    let mut a = Instance::start("A", &server).await;
    let mut b = Instance::start("B", &server).await;

    assert_eq!(
        a.get(1).await,
        ("v1".to_owned(), 1),
        "A loads from the database"
    );
    let (value, b_runs) = b.get(1).await;
    assert_eq!(value, "v1");
    assert_eq!(
        b.get(1).await,
        ("v1".to_owned(), b_runs),
        "B's second read is cached"
    );
    assert!(b.local(1).await, "B holds the entry in memory");

    a.write(1, "v2").await;
    assert!(
        b.until_answer("local 1", "no").await,
        "A's write did not drop B's copy within {PROPAGATION:?}"
    );
    let (value, runs) = b.get(1).await;
    assert_eq!(value, "v2", "B's next read sees A's write");
    assert_eq!(runs, b_runs + 1, "B's next read went to the database");
    assert_eq!(a.get(1).await.0, "v2", "and so does A's");

    a.quit().await;
    b.quit().await;
}

#[tokio::test]
async fn three_processes_all_see_the_write() {
    let server = RedisServer::start();
    let mut a = Instance::start("A", &server).await;
    let mut b = Instance::start("B", &server).await;
    let mut c = Instance::start("C", &server).await;
    for instance in [&mut a, &mut b, &mut c] {
        assert_eq!(instance.get(7).await.0, "v1");
        assert!(instance.local(7).await, "{} holds the entry", instance.name);
    }

    c.write(7, "v2").await;
    assert!(!c.local(7).await, "the writer dropped its own copy");
    for instance in [&mut a, &mut b] {
        assert!(
            instance.until_answer("local 7", "no").await,
            "C's write did not drop {}'s copy within {PROPAGATION:?}",
            instance.name
        );
    }
    for instance in [&mut a, &mut b, &mut c] {
        assert_eq!(
            instance.get(7).await.0,
            "v2",
            "{}'s next read sees C's write",
            instance.name
        );
    }

    for instance in [a, b, c] {
        instance.quit().await;
    }
}

/// The in-test twin of the instance binary's `cold`: the same key, type and namespace, a
/// fast body.
#[cachemacro::cached(key = "cold:<id>", fleet_single_flight = "20s", cache = cachemacro_tests::current())]
async fn cold(id: u64) -> String {
    format!("cold {id} loaded here")
}

#[tokio::test]
async fn when_the_instance_loading_for_the_fleet_is_killed_another_loads_after_its_lease_expires() {
    let server = RedisServer::start();
    let mut a = Instance::start("A", &server).await;
    // A takes the lease and loads for 30 s; its answer never comes.
    a.stdin.write_all(b"cold 1\n").await.unwrap();
    a.stdin.flush().await.unwrap();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + REPLY;
    loop {
        let held: bool = redis::cmd("EXISTS")
            .arg("procs:c1:f:k:cold:1")
            .query_async(&mut conn)
            .await
            .unwrap();
        if held {
            break;
        }
        assert!(Instant::now() < deadline, "A takes the lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = cachemacro::Cache::builder()
        .namespace("procs")
        .redis(server.url())
        .build()
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move {
            let started = Instant::now();
            let value = cachemacro_tests::on(&b, cold(1)).await;
            (value, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "B waits for A while A holds the lease"
    );
    a.child.start_kill().unwrap();
    let (value, waited) = waiting.await.unwrap();
    eprintln!("B loaded {waited:?} after it asked (A killed 500 ms in)");
    assert_eq!(value, "cold 1 loaded here", "B loaded it itself");
    // The lease lasts at most 2 s past A's last renewal, and B checks it four times per
    // lease period: B takes over within 2.5 s of the kill (README), here 0.5 s in.
    assert!(
        waited < Duration::from_millis(500 + 2_500 + 750),
        "B took the key over within 2.5 s of the kill, with 0.75 s of margin ({waited:?})"
    );
    assert_eq!(b.stats().fleet_waits, 1);
}
