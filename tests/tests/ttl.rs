//! `ttl = <expression>`: a `Duration` from a constant or from configuration, evaluated at
//! each miss; a zero one turns caching off for that call.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cachemacro::{cached, Cache};
use once_cell::sync::Lazy;

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);

/// A TTL read from "configuration" at each miss, in milliseconds.
static CONFIGURED_TTL_MS: AtomicU64 = AtomicU64::new(300);

fn configured_ttl() -> Duration {
    Duration::from_millis(CONFIGURED_TTL_MS.load(Ordering::SeqCst))
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "configured:<id>", ttl = configured_ttl(), cache = &*CACHE)]
async fn configured(id: u64) -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

const SHORT: Duration = Duration::from_millis(200);
static CONST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "constant:<id>", ttl = SHORT, cache = &*CACHE)]
async fn constant(id: u64) -> u64 {
    CONST_LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_constant_ttl_expires_the_entry() {
    constant(1).await;
    constant(1).await;
    assert_eq!(
        CONST_LOADS.load(Ordering::SeqCst),
        1,
        "a hit within the TTL"
    );
    // Generous margin: the TTL is 200 ms.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    constant(1).await;
    assert_eq!(
        CONST_LOADS.load(Ordering::SeqCst),
        2,
        "expired after the TTL"
    );
}

#[tokio::test]
async fn a_configured_ttl_is_read_at_each_miss_and_zero_turns_caching_off() {
    configured(1).await;
    configured(1).await;
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    configured(1).await;
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        2,
        "expired after the configured TTL"
    );

    CONFIGURED_TTL_MS.store(0, Ordering::SeqCst);
    configured(2).await;
    configured(2).await;
    assert_eq!(LOADS.load(Ordering::SeqCst), 4, "a zero TTL caches nothing");
    assert!(!CACHE.contains_local(&configured::key(2)));
}
