//! An axum service that caches its reads and invalidates on writes: the shape cachemacro
//! is built for.
//!
//! ```text
//! cargo run --example axum_service --features axum             # in memory, port 3000
//! cargo run --example axum_service --features axum -- --check  # requests itself, then exits
//! # with L2 and the bus:
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example axum_service --features axum
//!
//! curl localhost:3000/users/1
//! curl -X PUT localhost:3000/users/1 -H 'content-type: application/json' -d '{"name":"Ada"}'
//! curl localhost:3000/health
//! curl localhost:3000/metrics       # Prometheus text: per-function hits, loads, load times
//! ```
//!
//! Run two copies with `REDIS_URL` (and `PORT=3001` for the second): a `PUT` on one is
//! visible on the next `GET` on the other. The feature `axum` of the examples package brings
//! axum and the Prometheus exporter, which the other examples build without.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cachemacro::cached;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A user, as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
}

/// What `PUT /users/{id}` takes.
#[derive(Deserialize)]
pub struct UserPatch {
    name: String,
}

/// The pretend database.
static DB: Mutex<Option<HashMap<u64, String>>> = Mutex::new(None);
static DB_READS: AtomicU64 = AtomicU64::new(0);

/// The read path: cached for 5 minutes; `None` (no such user) is not cached.
#[cached(key = "user:<id>", ttl = "5m", tags = ["user:<id>"])]
pub async fn find_user(id: u64) -> Option<User> {
    DB_READS.fetch_add(1, Ordering::Relaxed);
    let db = DB.lock().unwrap();
    let name = db.as_ref()?.get(&id)?.clone();
    Some(User { id, name })
}

async fn get_user(Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    find_user(id).await.map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// The write path: save, then invalidate here, in Redis and on every replica.
async fn put_user(
    Path(id): Path<u64>,
    Json(patch): Json<UserPatch>,
) -> Result<Json<User>, (StatusCode, String)> {
    DB.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(id, patch.name.clone());
    if let Err(err) = find_user::remove_cached(id).await {
        // The write is saved, but other replicas may serve the old user until the TTL ends.
        tracing::error!(%err, id, "cache invalidation failed");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("saved, but not invalidated everywhere: {err}"),
        ));
    }
    Ok(Json(User {
        id,
        name: patch.name,
    }))
}

/// Readiness: is this replica hearing the others' invalidations, and using Redis?
async fn health() -> (StatusCode, Json<serde_json::Value>) {
    let cache = cachemacro::global();
    let ok = cache.bus_connected() && cache.redis_available();
    let stats = cache.stats();
    let body = serde_json::json!({
        "bus_connected": cache.bus_connected(),
        "redis_available": cache.redis_available(),
        "l1_entries": cache.local_entry_count(),
        "l1_hits": stats.l1_hits,
        "l2_hits": stats.l2_hits,
        "loads": stats.loads,
        "redis_errors": stats.redis_errors,
        "db_reads": DB_READS.load(Ordering::Relaxed),
    });
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

/// The Prometheus recorder behind `/metrics`: the cache's figures reach it through the
/// `metrics` facade (cachemacro's `metrics` feature).
static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// `GET /metrics`, in Prometheus text format.
async fn metrics() -> String {
    // The counters are handed to the recorder once a second; make them exact for this scrape.
    cachemacro::metrics::sync();
    PROMETHEUS.get().map(|h| h.render()).unwrap_or_default()
}

/// The service's routes.
pub fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(get_user).put(put_user))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let check = std::env::args().any(|a| a == "--check");
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let _ = PROMETHEUS.set(prometheus);
    if let Ok(url) = std::env::var("REDIS_URL") {
        let cache = cachemacro::Cache::builder()
            .namespace("axum-example")
            .redis(&url)
            .ttl_jitter(0.1)
            .build()
            .await?;
        if check {
            // The check expects a cold cache: drop what earlier runs left in Redis.
            cache.purge().await?;
        }
        cachemacro::set_global(cache)?;
        tracing::info!(%url, "cache: memory + Redis");
    }
    DB.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(1, "Grace".into());

    let port = if check {
        0
    } else {
        std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000)
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    // Ctrl-C (or the end of the check) stops taking requests and drains those in flight.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = stopped => {}
                }
            })
            .await
    });
    if check {
        self_check(addr).await?;
        let _ = stop.send(());
    }
    server.await??;
    // Then the cache: background refreshes store what they load, the instance leaves the
    // invalidation bus and closes its Redis connection.
    let cache = cachemacro::global();
    cache.shutdown().await;
    if check {
        if !cache.is_shut_down() {
            return Err("the cache did not shut down".into());
        }
        println!("axum_service --check: every request answered as expected; shut down");
    }
    Ok(())
}

/// Requests the running service and checks the answers: a miss, a hit, a write, and the
/// write visible on the next read.
async fn self_check(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let expect = |what: &str, got: &(u16, String), status: u16, body: &str| {
        if got.0 != status || !got.1.contains(body) {
            return Err(format!(
                "{what}: expected {status} with {body:?}, got {} {:?}",
                got.0, got.1
            ));
        }
        println!("{what:<34} {} {}", got.0, got.1);
        Ok(())
    };
    expect(
        "GET /users/1 (miss)",
        &request(addr, "GET", "/users/1", "").await?,
        200,
        "Grace",
    )?;
    expect(
        "GET /users/1 (hit)",
        &request(addr, "GET", "/users/1", "").await?,
        200,
        "Grace",
    )?;
    let reads = DB_READS.load(Ordering::Relaxed);
    if reads != 1 {
        return Err(format!("the hit read the database: {reads} reads").into());
    }
    expect(
        "GET /users/2 (404, not cached)",
        &request(addr, "GET", "/users/2", "").await?,
        404,
        "",
    )?;
    expect(
        "PUT /users/1",
        &request(addr, "PUT", "/users/1", r#"{"name":"Ada"}"#).await?,
        200,
        "Ada",
    )?;
    expect(
        "GET /users/1 (fresh after write)",
        &request(addr, "GET", "/users/1", "").await?,
        200,
        "Ada",
    )?;
    expect(
        "GET /health",
        &request(addr, "GET", "/health", "").await?,
        200,
        "bus_connected",
    )?;
    let (status, text) = request(addr, "GET", "/metrics", "").await?;
    // Two reads of user 1 from the database (before and after the write), one hit between.
    for (metric, value) in [
        ("cachemacro_loads_total", 3.0),
        ("cachemacro_hits_total", 1.0),
        ("cachemacro_invalidations_sent_total", 1.0),
        ("cachemacro_load_duration_seconds_count", 3.0),
    ] {
        let found: f64 = text
            .lines()
            .filter(|l| l.starts_with(metric) && l.contains("find_user"))
            .filter(|l| metric != "cachemacro_hits_total" || l.contains("tier=\"l1\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if status != 200 || found != value {
            return Err(format!(
                "/metrics: {metric} for find_user is {found}, expected {value}:\n{text}"
            )
            .into());
        }
    }
    println!(
        "{:<34} {status} {} lines of Prometheus text",
        "GET /metrics",
        text.lines().count()
    );
    Ok(())
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((status, body))
}
