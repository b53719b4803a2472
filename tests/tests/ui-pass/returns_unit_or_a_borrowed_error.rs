// A function that returns `()`, said or not: its body runs once per key and TTL. And a
// borrowed error type: an `Err` is never cached, so it may borrow.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use cachemacro::{cached, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);
static WARMED: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "warm:<id>", cache = CACHE)]
async fn warm(id: u64) {
    let _ = id;
    WARMED.fetch_add(1, Ordering::SeqCst);
}

#[cached(key = "warm_said:<id>", cache = CACHE)]
async fn warm_said(id: u64) -> () {
    let _ = id;
    WARMED.fetch_add(1, Ordering::SeqCst);
}

#[cached(key = "parse:<text>", cache = CACHE)]
async fn parse(text: String) -> Result<u64, &'static str> {
    text.parse().map_err(|_| "not a number")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        warm(1).await;
        warm(1).await;
        warm_said(1).await;
        warm_said(1).await;
        assert_eq!(WARMED.load(Ordering::SeqCst), 2, "once per function and key");
        assert_eq!(parse("7".into()).await, Ok(7));
        assert_eq!(parse("x".into()).await, Err("not a number"));
    });
}
