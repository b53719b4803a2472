//! Test support for cachemacro: a real `redis-server` per test, on a free port.
//!
//! [`RedisServer::start`] spawns `redis-server` (no persistence) on a free loopback port and
//! waits until it answers; dropping the handle kills it. A test can [`kill`](RedisServer::kill),
//! [`restart`](RedisServer::restart), [`pause`](RedisServer::pause) and
//! [`resume`](RedisServer::resume) it to exercise outages.
//!
//! [`RedisCluster`] runs a Redis Cluster (with replicas if asked, and helpers to move a slot
//! and to wait for a failover); [`RedisSentinel`] a primary, a replica and three sentinels.

pub mod history;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
    /// A configuration file given first (a sentinel needs one, and rewrites it).
    config: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// Panics (failing the test) when `redis-server` is not installed or does not start.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, such as
    /// `["--maxmemory", "2mb"]`.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_from(None, args)
    }

    /// Starts a server on a free port from the configuration file `config` (which it may
    /// rewrite), with extra arguments.
    fn start_from(config: Option<&Path>, args: &[&str]) -> Self {
        let mut server = Self {
            port: 0,
            child: None,
            extra: args.iter().map(|a| a.to_string()).collect(),
            config: config.map(Path::to_path_buf),
        };
        // Another test may take the free port between our look and redis-server's bind:
        // then ours exits, and we try another port.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server could not start on a free port 5 times in a row");
    }

    /// Starts a server on `port` (say, one a fake server held until now), with extra
    /// arguments; panics when it cannot take the port.
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        let mut server = Self {
            port,
            child: None,
            extra: args.iter().map(|a| a.to_string()).collect(),
            config: None,
        };
        assert!(server.spawn(), "redis-server could not take port {port}");
        server
    }

    /// Starts the server again on the same port after [`kill`](Self::kill), empty.
    pub fn start_again(&mut self) {
        assert!(
            self.spawn(),
            "redis-server could not take port {} again",
            self.port
        );
    }

    /// `CONFIG SET parameter value`.
    pub fn config_set(&self, parameter: &str, value: &str) {
        let mut conn = self.client().get_connection().expect("connect");
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(parameter)
            .arg(value)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("CONFIG SET {parameter} {value}: {e}"));
    }

    /// A field of `INFO` as a number (`total_net_output_bytes`...).
    pub fn info_number(&self, field: &str) -> u64 {
        let mut conn = self.client().get_connection().expect("connect");
        let info: String = redis::cmd("INFO").query(&mut conn).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no numeric `{field}` in INFO"))
    }

    /// Starts redis-server on `self.port`; `false` when it could not take the port.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(&self.config)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed and on PATH (apt-get install redis-server)");
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until *our* server answers on the port (not another test's that took it).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("spawned");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            let pid = child.id();
            if self.ping() {
                if self.answering_pid() == Some(pid) {
                    return true;
                }
                // Someone else's server is on this port; ours will exit.
                self.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer within 10s",
            self.port
        );
    }

    /// The process id of the server answering on the port.
    fn answering_pid(&self) -> Option<u32> {
        let mut conn = self.client().get_connection().ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    /// Whether the server answers `PING` now.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if let Some(password) = self.password() {
            let mut ok = [0u8; 5];
            if stream
                .write_all(format!("AUTH {password}\r\n").as_bytes())
                .is_err()
                || stream.read_exact(&mut ok).is_err()
                || &ok != b"+OK\r\n"
            {
                return false;
            }
        }
        let mut buf = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// The password given with `--requirepass`, if any.
    fn password(&self) -> Option<&str> {
        let at = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(at + 1).map(String::as_str)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL for it.
    pub fn url(&self) -> String {
        match self.password() {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A plain redis-rs client, for planting and inspecting values.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// Whether the process runs (it was not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A one-off connection if the server answers within 2 s: for probes, which take a
    /// server that does not answer (killed, paused, demoted mid-failover) as a "not yet".
    pub fn try_connection(&self) -> Option<redis::Connection> {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()
    }

    /// A one-off connection, for commands of the test itself.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to port {}: {e}", self.port))
    }

    /// The bytes stored under `key` (`None`: no such key), read on a one-off connection.
    pub fn stored_bytes(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
    }

    /// A field of `INFO` as text (`role`, `master_link_status`...), `None` when the server
    /// does not answer or has no such field.
    pub fn info_field(&self, field: &str) -> Option<String> {
        let mut conn = self.try_connection()?;
        let info: String = redis::cmd("INFO").query(&mut conn).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_owned())
    }

    /// Kills the server (SIGKILL): connections drop, data is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill is available");
            assert!(status.success(), "kill {signal} failed");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// A Redis Cluster of `redis-server` processes, stopped on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

/// A directory of its own under the system's temporary directory, for a fixture.
fn scratch_dir(kind: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cachemacro-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

impl RedisCluster {
    /// Starts `n` (at least 3) cluster-enabled servers, joins them into a cluster of
    /// primaries with `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start(n: usize) -> Self {
        Self::start_with_replicas(n, 0)
    }

    /// Starts a cluster of `primaries` (at least 3) primaries with `replicas` replicas each,
    /// so that a killed primary is replaced (after the node timeout, 2 s here). Waits until
    /// every node reports `cluster_state:ok` and every replica is in sync.
    pub fn start_with_replicas(primaries: usize, replicas: usize) -> Self {
        let dir = scratch_dir("cluster");
        let dir_arg = dir.to_string_lossy().into_owned();
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|i| Self::node_process(&dir_arg, i))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, dir };
        cluster.wait_ok();
        if replicas > 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !cluster.nodes.iter().all(|n| {
                n.info_field("role").as_deref() == Some("master")
                    || n.info_field("master_link_status").as_deref() == Some("up")
            }) {
                assert!(
                    Instant::now() < deadline,
                    "the replicas did not sync within 20s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// A cluster-enabled `redis-server`, its files in `dir`.
    fn node_process(dir: &str, i: usize) -> RedisServer {
        let config = format!("nodes-{i}.conf");
        RedisServer::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &config,
            "--cluster-node-timeout",
            "2000",
            "--dir",
            dir,
        ])
    }

    /// Runs `redis-cli --cluster <args>` against a running node; panics if it fails.
    pub fn redis_cli(&self, args: &[&str]) {
        let entry = self
            .running()
            .find(|n| n.try_connection().is_some())
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .expect("a running node");
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg(args[0])
            .arg(&entry)
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(
            output.status.success(),
            "redis-cli --cluster {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts one more server and joins it as an empty primary (`redis-cli --cluster
    /// add-node`); returns its index. [`rebalance`](Self::rebalance) gives it slots.
    pub fn add_primary(&mut self) -> usize {
        let dir = self.dir.to_string_lossy().into_owned();
        let node = Self::node_process(&dir, self.nodes.len());
        let new = format!("127.0.0.1:{}", node.port());
        self.nodes.push(node);
        let entry = self
            .running()
            .find(|n| n.info_field("role").as_deref() == Some("master"))
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .expect("a running primary");
        let status = Command::new("redis-cli")
            .args(["--cluster", "add-node", &new, &entry])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success(), "redis-cli --cluster add-node failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.running().all(|n| {
            n.try_connection().is_some_and(|mut c| {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query::<String>(&mut c)
                    .unwrap_or_default()
                    .lines()
                    .count()
                    == self.nodes.len()
            })
        }) {
            assert!(
                Instant::now() < deadline,
                "the new node was not known within 20s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_ok();
        self.nodes.len() - 1
    }

    /// Spreads the slots evenly over the primaries, empty ones included (`redis-cli
    /// --cluster rebalance --cluster-use-empty-masters`), moving their keys.
    pub fn rebalance(&self) {
        self.redis_cli(&["rebalance", "--cluster-use-empty-masters"]);
        self.wait_ok();
    }

    /// Moves `slots` slots from node `from` to node `to` with their keys (`redis-cli
    /// --cluster reshard`), the way an operator does.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) {
        let (from, to) = (self.node_id(from), self.node_id(to));
        self.redis_cli(&[
            "reshard",
            "--cluster-from",
            &from,
            "--cluster-to",
            &to,
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ]);
        self.wait_ok();
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.running().all(Self::state_ok) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not reach cluster_state:ok within 20s");
    }

    fn state_ok(node: &RedisServer) -> bool {
        let Some(mut conn) = node.try_connection() else {
            return false;
        };
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut conn)
            .unwrap_or_default();
        info.contains("cluster_state:ok")
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Waits (up to 30 s) until the running nodes have replaced the node on `port` (killed):
    /// every one of them flags it `fail`, and the cluster is `ok` again (its slots are
    /// served by a promoted replica).
    pub fn wait_failover(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let gone = format!("127.0.0.1:{port}@");
        loop {
            let replaced = self.running().all(|node| {
                let Some(mut conn) = node.try_connection() else {
                    return false;
                };
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query(&mut conn)
                    .unwrap_or_default();
                nodes.lines().any(|line| {
                    let mut fields = line.split_whitespace();
                    fields.nth(1).is_some_and(|a| a.starts_with(&gone))
                        && fields
                            .next()
                            .is_some_and(|flags| flags.split(',').any(|f| f == "fail"))
                }) && Self::state_ok(node)
            });
            if replaced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not replace the node on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://` URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, to inspect or to stop one.
    pub fn nodes(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Node `index`, to inspect.
    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    /// The indices of the running nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running()
                    && self.nodes[i].info_field("role").as_deref() == Some("master")
            })
            .collect()
    }

    /// A one-off connection to a running node.
    fn any_connection(&self) -> redis::Connection {
        self.running()
            .find_map(RedisServer::try_connection)
            .expect("a running node answers")
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.any_connection())
            .expect("CLUSTER KEYSLOT")
    }

    /// The index (in [`nodes`](Self::nodes)) of the primary that serves `slot`, as a running
    /// node sees it.
    pub fn primary_of(&self, slot: u16) -> usize {
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.any_connection())
            .expect("CLUSTER SLOTS");
        for range in ranges {
            let (start, end, primary): (u16, u16, Vec<redis::Value>) = match range {
                redis::Value::Array(fields) => {
                    let mut fields = fields.into_iter();
                    (
                        redis::from_redis_value(fields.next().expect("start")).expect("start"),
                        redis::from_redis_value(fields.next().expect("end")).expect("end"),
                        redis::from_redis_value(fields.next().expect("primary")).expect("node"),
                    )
                }
                other => panic!("unexpected CLUSTER SLOTS range {other:?}"),
            };
            if (start..=end).contains(&slot) {
                let port: u16 = redis::from_redis_value(primary[1].clone()).expect("port");
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port() == port)
                    .expect("a node of this cluster");
            }
        }
        panic!("no node serves slot {slot}");
    }

    /// How many slots node `index` serves.
    pub fn slot_count(&self, index: usize) -> usize {
        let port = self.nodes[index].port();
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.any_connection())
            .expect("CLUSTER SLOTS");
        ranges
            .into_iter()
            .filter_map(|range| {
                let (start, end, primary): (u16, u16, Vec<redis::Value>) = match range {
                    redis::Value::Array(fields) => {
                        let mut fields = fields.into_iter();
                        (
                            redis::from_redis_value(fields.next()?).ok()?,
                            redis::from_redis_value(fields.next()?).ok()?,
                            redis::from_redis_value(fields.next()?).ok()?,
                        )
                    }
                    _ => return None,
                };
                let at: u16 = redis::from_redis_value(primary.get(1)?.clone()).ok()?;
                (at == port).then_some(usize::from(end - start) + 1)
            })
            .sum()
    }

    /// The node ID of node `index` (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[index].connection())
            .expect("CLUSTER MYID")
    }

    /// The first half of moving `slot` from node `from` to node `to` (both primaries):
    /// `CLUSTER SETSLOT <slot> IMPORTING` on `to`, then `MIGRATING` on `from`. Until
    /// [`finish_migration`](Self::finish_migration), `from` still serves the slot.
    pub fn begin_migration(&self, slot: u16, from: usize, to: usize) {
        let from_id = self.node_id(from);
        let to_id = self.node_id(to);
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query(&mut self.nodes[to].connection())
            .expect("SETSLOT IMPORTING");
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query(&mut self.nodes[from].connection())
            .expect("SETSLOT MIGRATING");
    }

    /// During a migration begun with [`begin_migration`](Self::begin_migration):
    /// `MIGRATE`s up to `count` keys of `slot` from `from` to `to`, so that the slot has
    /// keys on both sides. Returns how many it moved.
    pub fn migrate_keys(&self, slot: u16, from: usize, to: usize, count: usize) -> usize {
        let mut source = self.nodes[from].connection();
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(count)
            .query(&mut source)
            .expect("GETKEYSINSLOT");
        if keys.is_empty() {
            return 0;
        }
        let _: redis::Value = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(self.nodes[to].port())
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query(&mut source)
            .expect("MIGRATE");
        keys.len()
    }

    /// The second half: `MIGRATE`s every key of `slot` from `from` to `to`, then gives the
    /// slot to `to` (`CLUSTER SETSLOT <slot> NODE`, on `to`, `from` and every other
    /// primary).
    pub fn finish_migration(&self, slot: u16, from: usize, to: usize) {
        while self.migrate_keys(slot, from, to, 100) > 0 {}
        let to_id = self.node_id(to);
        let mut order = vec![to, from];
        order.extend((0..self.nodes.len()).filter(|i| {
            *i != to
                && *i != from
                && self.nodes[*i].is_running()
                && self.nodes[*i].info_field("role").as_deref() == Some("master")
        }));
        for i in order {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut self.nodes[i].connection())
                .expect("SETSLOT NODE");
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The master name [`RedisSentinel`]'s sentinels monitor.
pub const SENTINEL_MASTER: &str = "cachemacro-primary";

/// Redis Sentinel: a primary, a replica (`--replicaof`) and three sentinels
/// (`redis-server <config> --sentinel`, quorum 2, `down-after-milliseconds` 1000,
/// `failover-timeout` 3000), all on free ports, all stopped on drop.
pub struct RedisSentinel {
    /// The primary first, then the replica (until a failover swaps their roles).
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisSentinel {
    /// Starts everything and waits (up to 30 s) until the replica is in sync and every
    /// sentinel knows the replica and the two other sentinels, so that a failover can
    /// happen.
    pub fn start() -> Self {
        let dir = scratch_dir("sentinel");
        let dir_arg = dir.to_string_lossy().into_owned();
        let primary = RedisServer::start_with(&["--dir", &dir_arg]);
        let replica_of = primary.port().to_string();
        let replica =
            RedisServer::start_with(&["--dir", &dir_arg, "--replicaof", "127.0.0.1", &replica_of]);
        let sentinels = (0..3)
            .map(|i| {
                let config = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {replica_of} 2\n\
                         sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                         sentinel failover-timeout {SENTINEL_MASTER} 3000\n\
                         sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
                    ),
                )
                .expect("write the sentinel configuration");
                RedisServer::start_from(Some(&config), &["--dir", &dir_arg, "--sentinel"])
            })
            .collect();
        let fixture = Self {
            servers: vec![primary, replica],
            sentinels,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fixture.ready() {
            assert!(
                Instant::now() < deadline,
                "the sentinel setup was not ready within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        fixture
    }

    fn ready(&self) -> bool {
        self.servers[1].info_field("master_link_status").as_deref() == Some("up")
            && self.sentinels.iter().all(|s| {
                let master = Self::master_info(s);
                master.get("num-slaves").map(String::as_str) == Some("1")
                    && master.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
    }

    /// `SENTINEL MASTER` as one sentinel answers it (empty when it does not).
    fn master_info(sentinel: &RedisServer) -> HashMap<String, String> {
        sentinel
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()
            .and_then(|mut conn| {
                redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(SENTINEL_MASTER)
                    .query(&mut conn)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// `redis://` URLs of the three sentinels.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The port of the primary every running sentinel names, once they agree.
    pub fn primary_port(&self) -> Option<u16> {
        let mut named = self.sentinels.iter().filter(|s| s.is_running()).map(|s| {
            let addr: Option<(String, u16)> = s
                .client()
                .get_connection_with_timeout(Duration::from_secs(2))
                .ok()
                .and_then(|mut conn| {
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(SENTINEL_MASTER)
                        .query(&mut conn)
                        .ok()
                });
            addr.map(|(_, port)| port)
        });
        let first = named.next()??;
        named.all(|p| p == Some(first)).then_some(first)
    }

    /// The server on `port` (the primary or the replica).
    pub fn server(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("a server of this setup")
    }

    /// Kills the current primary (SIGKILL); returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self
            .primary_port()
            .expect("the sentinels agree on a primary");
        self.server(port).kill();
        port
    }

    /// Asks a sentinel for a failover (`SENTINEL FAILOVER`): the replica is promoted and
    /// the primary demoted, both keep running.
    pub fn failover(&self) {
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(SENTINEL_MASTER)
            .query(&mut self.sentinels[0].connection())
            .expect("SENTINEL FAILOVER");
    }

    /// Waits (up to 30 s) until every sentinel names a primary other than `old`, and that
    /// server calls itself a primary; returns its port.
    pub fn wait_new_primary(&mut self, old: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(port) = self.primary_port().filter(|p| *p != old) {
                if self.server(port).info_field("role").as_deref() == Some("master") {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover away from port {old} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        // The sentinels first, so they do not reconfigure servers being stopped.
        self.sentinels.clear();
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP server on a loopback port that is not Redis: it accepts connections and then
/// either never answers ([`FakeServer::silent`]) or answers every connection with an HTTP
/// error and closes it ([`FakeServer::http`]). Stopped on drop.
pub struct FakeServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// A server that accepts connections and never sends a byte.
    pub fn silent() -> Self {
        Self::serve(|stream| {
            // Held open, unanswered, until the server stops.
            Some(stream)
        })
    }

    /// A server that answers every connection with an HTTP error page and closes it.
    pub fn http() -> Self {
        Self::serve(|mut stream| {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\n\r\nBad Request");
            None
        })
    }

    fn serve(handle: fn(TcpStream) -> Option<TcpStream>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        held.extend(handle(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL for it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it (closing every connection) and frees the port.
    pub fn stop(mut self) -> u16 {
        self.shutdown();
        self.port
    }

    fn shutdown(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A `tracing` subscriber that keeps every event's level and text, for tests that check
/// what the cache logs. Install it with [`Logs::capture`]; it sees the events of the
/// current thread (a `#[tokio::test]` runtime's, tasks included).
#[derive(Clone, Default)]
pub struct Logs {
    lines: std::sync::Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
}

impl Logs {
    /// Starts capturing on this thread until the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let guard = tracing::subscriber::set_default(Capture(logs.clone()));
        (logs, guard)
    }

    /// The lines logged at `level` or more severe, so far.
    pub fn at_least(&self, level: tracing::Level) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l <= level)
            .map(|(_, text)| text.clone())
            .collect()
    }
}

struct Capture(Logs);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0
            .lines
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A `redis-server` that also speaks TLS, with certificates made for the test by
/// `openssl`: a CA of its own, and a server certificate it signed for `localhost` and
/// `127.0.0.1`. The plain port stays open for the harness (`ping`, `kill`, `pause`).
pub struct RedisTls {
    /// The server; its plain port is [`RedisServer::port`].
    pub server: RedisServer,
    tls_port: u16,
    dir: PathBuf,
}

impl RedisTls {
    /// Makes the certificates and starts the server; panics when `openssl` is missing or
    /// `redis-server` was built without TLS.
    pub fn start() -> Self {
        let dir = scratch_dir("tls");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl must be installed to make the test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=cachemacro test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write the extension file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
        // The TLS port is another free port; retry when a parallel test took it.
        for _ in 0..5 {
            let tls_port = free_port();
            let port = tls_port.to_string();
            let server = RedisServer::start_with(&[
                "--tls-port",
                &port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ]);
            if TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                return Self {
                    server,
                    tls_port,
                    dir,
                };
            }
        }
        panic!("redis-server did not listen for TLS (built without TLS?)");
    }

    /// A `rediss://` URL of the TLS port, by host name (as certificates are usually checked).
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.tls_port)
    }

    /// The test CA's certificate (PEM), which signed the server's.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the CA certificate")
    }
}

impl Drop for RedisTls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port held by a socket that is bound but not listening: connections to it are
/// refused, as to a Redis that is down, and no other test's server can take the port until
/// [`release`](Self::release) (a killed server's port can be taken meanwhile).
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusingPort {
    /// Binds a free port without listening on it.
    pub fn hold() -> Self {
        loop {
            let port = free_port();
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            // Taken since `free_port` looked: try another.
            if socket.bind(([127, 0, 0, 1], port).into()).is_ok() {
                return Self { socket, port };
            }
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Frees the port, to start a server on it ([`RedisServer::start_on`]).
    pub fn release(self) -> u16 {
        drop(self.socket);
        self.port
    }
}

/// A loopback port that was free a moment ago, and that this process has not handed out
/// before: a test that kills its server and starts it again on the same port later must not
/// find another test's server there meanwhile (the tests of one binary run in parallel).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

tokio::task_local! {
    /// The cache instance `#[cached(cache = cachemacro_tests::current())]` functions use in
    /// the current task: lets one test process play several service instances.
    pub static INSTANCE: cachemacro::Cache;
}

/// The cache of the instance the current task plays (see [`INSTANCE`]).
pub fn current() -> cachemacro::Cache {
    INSTANCE.get()
}

/// Runs `f` as instance `cache`.
pub async fn on<F: std::future::Future>(cache: &cachemacro::Cache, f: F) -> F::Output {
    INSTANCE.scope(cache.clone(), f).await
}

/// A cache builder for namespace `ns` on `cluster` with `channels` for its bus, with the
/// timings the tests use (a 500 ms Redis timeout, a 200 ms bus heartbeat).
pub fn cluster_builder(
    cluster: &RedisCluster,
    ns: &str,
    channels: cachemacro::BusChannels,
) -> cachemacro::CacheBuilder {
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    cachemacro::Cache::builder()
        .namespace(ns)
        .redis_cluster(&nodes)
        .bus_channels(channels)
        .redis_timeout(Duration::from_millis(500))
        .bus_heartbeat(Duration::from_millis(200))
}

/// Reads keys `0..keys` through `read` (a cached function) on `reader`, on a task of its
/// own, while `writer` invalidates `tag` back to back and reads every key again after each
/// invalidation, for two seconds: the ordinary race of a read registering while its tag is
/// invalidated. Returns how many values `reader` took for unlisted under a tag (its
/// `unusable_values`), and how many invalidations ran.
pub async fn race_reads_with_tag_invalidations<R, F>(
    writer: &cachemacro::Cache,
    reader: &cachemacro::Cache,
    tag: &str,
    read: R,
    keys: u64,
) -> (u64, u64)
where
    R: Fn(u64) -> F + Copy + Send + 'static,
    F: std::future::Future + Send,
{
    for id in 0..keys {
        on(reader, read(id)).await;
    }
    let before = reader.stats().unusable_values;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let (reader, stop) = (reader.clone(), std::sync::Arc::clone(&stop));
        tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                on(&reader, read(id % keys)).await;
                id += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    // At least 2 s and 20 invalidations, however busy the machine (within a minute).
    let mut invalidations = 0;
    let started = Instant::now();
    while (started.elapsed() < Duration::from_secs(2) || invalidations < 20)
        && started.elapsed() < Duration::from_secs(60)
    {
        writer
            .invalidate_tag(tag)
            .await
            .expect("the tag is invalidated");
        invalidations += 1;
        for id in 0..keys {
            on(writer, read(id)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    reads.await.expect("the reader ran");
    (reader.stats().unusable_values - before, invalidations)
}

/// A cache instance on `server` in namespace `ns`, with short timeouts for outage tests.
pub async fn instance(server: &RedisServer, ns: &str) -> cachemacro::Cache {
    cachemacro::Cache::builder()
        .namespace(ns)
        .redis(server.url())
        .redis_timeout(Duration::from_millis(500))
        .bus_heartbeat(Duration::from_millis(200))
        .build()
        .await
        .expect("cache builds")
}
