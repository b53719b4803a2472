//! Scopes: named groups of keys, apart from each other and from unscoped keys.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, Cache};
use once_cell::sync::Lazy;

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);
static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "<id>", scope = "users", cache = &*CACHE)]
async fn user(id: u64) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("user {id}")
}

#[tokio::test]
async fn same_key_in_different_scopes_holds_different_values() {
    let cache = Cache::in_memory();
    // Names that would collide if keys were joined naively: ("a:b", "c") and ("a", "b:c").
    let cases = [
        (None, "1", "unscoped"),
        (Some("users"), "1", "user"),
        (Some("orders"), "1", "order"),
        (Some("a:b"), "c", "a:b / c"),
        (Some("a"), "b:c", "a / b:c"),
    ];
    for (scope, key, value) in cases {
        match scope {
            Some(s) => cache
                .scope(s)
                .set(key, value.to_string(), None)
                .await
                .unwrap(),
            None => cache.set(key, value.to_string(), None).await.unwrap(),
        }
    }
    for (scope, key, value) in cases {
        let got = match scope {
            Some(s) => cache.scope(s).get::<String>(key).await.unwrap(),
            None => cache.get::<String>(key).await.unwrap(),
        };
        assert_eq!(got.as_deref(), Some(value), "{scope:?} / {key}");
    }
}

#[tokio::test]
async fn scope_clear_drops_only_that_scope() {
    let cache = Cache::in_memory();
    let users = cache.scope("users");
    let orders = cache.scope("orders");
    users.set("1", 1u8, None).await.unwrap();
    users.set("2", 2u8, None).await.unwrap();
    orders.set("1", 3u8, None).await.unwrap();
    cache.set("users:1", 4u8, None).await.unwrap();

    users.clear().await.unwrap();
    assert_eq!(users.get::<u8>("1").await.unwrap(), None);
    assert_eq!(users.get::<u8>("2").await.unwrap(), None);
    assert_eq!(orders.get::<u8>("1").await.unwrap(), Some(3));
    assert_eq!(cache.get::<u8>("users:1").await.unwrap(), Some(4));

    orders.clear_memory();
    assert_eq!(orders.get::<u8>("1").await.unwrap(), None);
    cache.clear_memory();
    assert_eq!(cache.get::<u8>("users:1").await.unwrap(), None);
}

#[tokio::test]
async fn a_scoped_function_is_invalidated_through_its_scope() {
    assert_eq!(user(1).await, "user 1");
    assert_eq!(user(1).await, "user 1");
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    assert!(CACHE.scope("users").contains_local("1"));
    assert!(!CACHE.contains_local("1"), "not stored unscoped");

    CACHE.scope("users").remove("1").await.unwrap();
    user(1).await;
    assert_eq!(LOADS.load(Ordering::SeqCst), 2);

    user::remove_cached(1).await.unwrap();
    assert!(!CACHE.scope("users").contains_local("1"));

    user(2).await;
    CACHE.scope("users").remove_local("2");
    assert!(!CACHE.scope("users").contains_local("2"));
}
