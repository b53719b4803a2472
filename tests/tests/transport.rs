//! Transport: compression of large values in Redis (lz4, zstd), what `.redis(..)` takes,
//! and TLS with a CA of the deployment's own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use cachemacro::{cached, Cache, Compression, Error};
use cachemacro_tests::{current, eventually, on, RedisServer, RedisTls};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    email: String,
    tags: Vec<String>,
}

/// About 64 KiB of rows, as a report or a page of a listing would be.
fn rows(seed: u64, n: u64) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            id: seed * 10_000 + i,
            name: format!("customer number {i} of account {seed}"),
            email: format!("customer{i}.account{seed}@example.com"),
            tags: vec!["active".into(), format!("region-{}", i % 7)],
        })
        .collect()
}

/// Loads of each report id (tests run in parallel, each on its own ids).
static REPORT_LOADS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn loads(id: u64) -> usize {
    REPORT_LOADS[id as usize].load(Ordering::SeqCst)
}

#[cached(key = "report:<id>", cache = current())]
async fn report(id: u64) -> Vec<Row> {
    REPORT_LOADS[id as usize].fetch_add(1, Ordering::SeqCst);
    rows(id, 640)
}

async fn instance(server: &RedisServer, compression: Compression) -> Cache {
    Cache::builder()
        .namespace("app")
        .redis(server.url())
        .compression(compression)
        .build()
        .await
        .expect("cache builds")
}

/// The envelope stored under `key`.
fn stored(server: &RedisServer, key: &str) -> Vec<u8> {
    server.stored_bytes(key).expect("a stored value")
}

/// Writes with `compression` on one instance; another, with compression off, reads it.
async fn compressed_round_trip(compression: Compression, algorithm: u8, id: u64) {
    let server = RedisServer::start();
    let writer = instance(&server, compression).await;
    let reader = instance(&server, Compression::None).await;
    let raw = bincode::serialize(&rows(id, 640)).unwrap().len();
    assert!(raw > 48 << 10, "a large value ({raw} bytes)");

    let value = on(&writer, report(id)).await;
    let bytes = stored(&server, &format!("app:c1:k:report:{id}"));
    assert_eq!(bytes[2], 3, "envelope format 3: compressed");
    assert_eq!(bytes[28], algorithm);
    assert!(
        bytes.len() * 3 < raw,
        "{} bytes in Redis for {raw} bytes of value",
        bytes.len()
    );
    // Reading needs no setting: an instance with compression off reads it from Redis.
    assert_eq!(on(&reader, report(id)).await, value);
    assert_eq!(loads(id), 1);
    assert_eq!(reader.stats().l2_hits, 1);
    assert_eq!(reader.stats().unusable_values, 0);
}

#[tokio::test]
async fn zstd_values_are_smaller_in_redis_and_read_by_every_instance() {
    compressed_round_trip(Compression::Zstd { level: 3 }, 2, 1).await;
}

#[tokio::test]
async fn lz4_values_are_smaller_in_redis_and_read_by_every_instance() {
    compressed_round_trip(Compression::Lz4, 1, 2).await;
}

#[cached(key = "blob:<id>:<len>", cache = current())]
async fn blob(id: u64, len: usize) -> Vec<u8> {
    // xorshift noise: nothing to compress.
    let mut x = id | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn small_and_incompressible_values_stay_plain() {
    let server = RedisServer::start();
    let cache = instance(&server, Compression::Zstd { level: 3 }).await;
    on(&cache, blob(1, 200)).await;
    on(&cache, blob(2, 8000)).await;
    for (id, len) in [(1, 200), (2, 8000)] {
        let bytes = stored(&server, &format!("app:c1:k:blob:{id}:{len}"));
        assert_eq!(bytes[2], 1, "blob {id} of {len} bytes: plain format 1");
    }
    // A plain value from an instance without compression reads back on one with it.
    let plain = instance(&server, Compression::None).await;
    let value = on(&plain, report(3)).await;
    assert_eq!(stored(&server, "app:c1:k:report:3")[2], 1);
    let compressing = instance(&server, Compression::Lz4).await;
    assert_eq!(on(&compressing, report(3)).await, value);
    assert_eq!(loads(3), 1);
}

#[tokio::test]
async fn a_corrupt_or_oversized_compressed_value_is_a_miss_not_a_wrong_value() {
    let server = RedisServer::start();
    let writer = instance(&server, Compression::Zstd { level: 3 }).await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Damage in the compressed bytes (SETRANGE keeps the key's TTL).
    let value = on(&writer, report(4)).await;
    let key = "app:c1:k:report:4";
    let _: () = conn.setrange(key, 60, "garbage!").await.unwrap();
    // A length far past max_value_size: refused before any memory is taken.
    on(&writer, report(5)).await;
    let _: () = conn
        .setrange("app:c1:k:report:5", 29, &[0xffu8, 0xff, 0xff, 0x7f][..])
        .await
        .unwrap();

    let reader = instance(&server, Compression::None).await;
    assert_eq!(on(&reader, report(4)).await, value, "reloaded, not garbage");
    assert_eq!(on(&reader, report(5)).await, rows(5, 640));
    assert_eq!((loads(4), loads(5)), (2, 2));
    assert_eq!(reader.stats().unusable_values, 2);
    // The loads overwrote the damaged values: the next instance reads them from Redis.
    let next = instance(&server, Compression::None).await;
    assert_eq!(on(&next, report(4)).await, value);
    assert_eq!(loads(4), 2);
}

#[tokio::test]
async fn a_zstd_level_out_of_range_is_a_configuration_error() {
    let err = Cache::builder()
        .compression(Compression::Zstd { level: 40 })
        .build_in_memory()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("zstd level")),
        "{err}"
    );
}

#[tokio::test]
async fn redis_takes_what_redis_rs_takes() {
    let server = RedisServer::start();
    let url: String = server.url();
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), server.port())
        .into_connection_info()
        .unwrap();
    let caches = [
        Cache::builder().redis(url.as_str()).build().await.unwrap(),
        Cache::builder().redis(&url).build().await.unwrap(),
        Cache::builder().redis(url.clone()).build().await.unwrap(),
        Cache::builder().redis(info).build().await.unwrap(),
        Cache::builder()
            .redis(("127.0.0.1", server.port()))
            .build()
            .await
            .unwrap(),
    ];
    caches[0].set("shared", 7u32, None).await.unwrap();
    for cache in &caches {
        assert!(cache.redis_available());
        assert_eq!(cache.get::<u32>("shared").await.unwrap(), Some(7));
    }
    // A URL that does not parse is a configuration error that does not print the password.
    let err = Cache::builder()
        .redis("htp://user:s3cret@host:6379")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

static TLS_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "secret:<id>", cache = current())]
async fn secret(id: u64) -> String {
    let n = TLS_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("secret {id} #{n}")
}

#[tokio::test]
async fn tls_with_the_deployments_own_ca_shares_values_and_invalidations() {
    let tls = RedisTls::start();
    let over_tls = || {
        Cache::builder()
            .namespace("app")
            .redis(tls.url())
            .redis_tls(TlsCertificates {
                client_tls: None,
                root_cert: Some(tls.ca_pem()),
            })
            .build()
    };
    let a = over_tls().await.unwrap();
    let b = over_tls().await.unwrap();
    assert!(a.redis_available() && b.redis_available());
    assert!(
        eventually(Duration::from_secs(5), || a.bus_connected()
            && b.bus_connected())
        .await
    );

    let first = on(&a, secret(1)).await;
    assert_eq!(on(&b, secret(1)).await, first, "B reads A's value over TLS");
    assert_eq!(TLS_LOADS.load(Ordering::SeqCst), 1);
    assert!(b.contains_local(&secret::key(1)));
    on(&a, secret::remove_cached(1)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !b
            .contains_local(&secret::key(1)))
        .await,
        "the invalidation reached B over the TLS bus"
    );
    assert_ne!(on(&b, secret(1)).await, first);

    // Without the CA the server's certificate is not trusted: no connection (fail-open).
    let untrusted = Cache::builder()
        .namespace("app")
        .redis(tls.url())
        .redis_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert!(!untrusted.redis_available());
    assert!(on(&untrusted, secret(2)).await.starts_with("secret 2"));
}
