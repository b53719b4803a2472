//! One service instance, run as its own OS process by `tests/tests/processes.rs`.
//!
//! Usage: `instance <redis-url>` (or `REDIS_URL` in the environment). The instance uses the
//! global cache, built on that Redis in namespace `procs`, and one cached read,
//! [`product()`], over a pretend database: the plain Redis key `db:product:<id>`, which every
//! process shares and which is `v1` until someone writes it.
//!
//! It reads one command per line on stdin and answers one line on stdout:
//!
//! | command | answer |
//! |---|---|
//! | `get <id>` | `<value> <body runs so far>` |
//! | `write <id> <value>` | `ok` once the row is written and the cache entry removed, else `err <message>` |
//! | `local <id>` | `yes` when this process's L1 holds the entry, else `no` |
//! | `bus` | `yes` when the invalidation bus is subscribed, else `no` |
//! | `cold <id>` | the value of [`cold()`], a fleet-wide single flight whose body takes 30 s |
//! | `quit` | no answer: the process exits (so does end of input) |
//!
//! Anything else is answered with `err <message>`.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::cached;
use once_cell::sync::OnceCell;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The database connection, separate from the cache's own Redis connections.
static DB: OnceCell<MultiplexedConnection> = OnceCell::new();

/// How many times the body of [`product()`] ran in this process.
static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The database key of product `id`.
fn row_key(id: u64) -> String {
    format!("db:product:{id}")
}

/// A handle on the database connection (cheap: the connection is multiplexed).
fn db() -> MultiplexedConnection {
    DB.get().expect("the database is connected in main").clone()
}

/// The cached read: product `id` as the database has it.
#[cached(key = "product:<id>", ttl = "5m")]
async fn product(id: u64) -> String {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    let row: Option<String> = db().get(row_key(id)).await.expect("the database answers");
    row.unwrap_or_else(|| "v1".to_owned())
}

/// A slow load under fleet-wide single flight: the instance that takes the lease holds it
/// for 30 s (long enough to be killed while it loads).
#[cached(key = "cold:<id>", fleet_single_flight = "20s")]
async fn cold(id: u64) -> String {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    format!("cold {id} loaded by {}", std::process::id())
}

/// Writes product `id` in the database, then invalidates its cache entry everywhere.
async fn write(id: u64, value: &str) -> Result<(), Box<dyn std::error::Error>> {
    db().set::<_, _, ()>(row_key(id), value).await?;
    product::remove_cached(id).await?;
    Ok(())
}

/// `yes` or `no`.
fn yes_no(answer: bool) -> String {
    if answer { "yes" } else { "no" }.to_owned()
}

/// Parses a product id.
fn parse_id(word: &str) -> Result<u64, String> {
    word.parse().map_err(|e| format!("bad id `{word}`: {e}"))
}

/// The answer to one command line; `None` for `quit`.
async fn answer(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply = match words.as_slice() {
        ["quit"] => return None,
        ["get", id] => match parse_id(id) {
            Ok(id) => {
                let value = product(id).await;
                Ok(format!("{value} {}", BODY_RUNS.load(Ordering::SeqCst)))
            }
            Err(e) => Err(e),
        },
        ["write", id, value] => match parse_id(id) {
            Ok(id) => write(id, value)
                .await
                .map(|()| "ok".to_owned())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        ["local", id] => {
            parse_id(id).map(|id| yes_no(cachemacro::global().contains_local(&product::key(id))))
        }
        ["bus"] => Ok(yes_no(cachemacro::global().bus_connected())),
        ["cold", id] => match parse_id(id) {
            Ok(id) => Ok(cold(id).await),
            Err(e) => Err(e),
        },
        _ => Err(format!("unknown command `{line}`")),
    };
    // One line per answer, whatever the error says.
    Some(reply.unwrap_or_else(|e| format!("err {}", e.replace('\n', " "))))
}

/// Reads commands until `quit` or end of input.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("REDIS_URL").ok())
        .ok_or("usage: instance <redis-url> (or set REDIS_URL)")?;
    let client = redis::Client::open(url.as_str())?;
    DB.set(client.get_multiplexed_async_connection().await?)
        .map_err(|_| "the database is connected once")?;
    let cache = cachemacro::Cache::builder()
        .namespace("procs")
        .redis(&url)
        .build()
        .await?;
    cachemacro::set_global(cache)?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let Some(reply) = answer(&line).await else {
            break;
        };
        stdout.write_all(format!("{reply}\n").as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}
