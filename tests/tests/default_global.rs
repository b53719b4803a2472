//! Without `set_global`, `#[cached]` works on an in-memory cache, and a later `set_global`
//! is refused rather than leaving the functions on the old cache.

use cachemacro::{cached, global, set_global, Cache};

#[cached(key = "d:<id>", ttl = 60)]
async fn on_default(id: u32) -> u32 {
    id + 1
}

#[tokio::test]
async fn the_default_is_in_memory_and_set_global_after_use_is_refused() {
    assert_eq!(on_default(1).await, 2);
    assert!(global().contains_local("d:1"));
    assert!(set_global(Cache::in_memory()).is_err());
    on_default::remove_cached(1).await.unwrap();
    assert!(!global().contains_local("d:1"));
}
