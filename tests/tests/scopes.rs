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

static PRODUCT_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "<id>", scope = "products", cache = &*CACHE)]
async fn product(id: u64) -> String {
    PRODUCT_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("product {id}")
}

#[tokio::test]
async fn the_companion_key_of_a_scoped_function_removes_through_its_scope() {
    product(3).await;
    assert!(CACHE.scope("products").contains_local("3"));
    // `key()` names the scope too: `cache.remove(&product::key(3))`, which reached the
    // unscoped key "3" and removed nothing, no longer compiles.
    let key = product::key(3);
    assert_eq!((key.scope(), key.key()), ("products", "3"));
    assert_eq!(product::scope(), "products");
    CACHE.scope(key.scope()).remove(key.key()).await.unwrap();
    assert!(!CACHE.scope("products").contains_local("3"));
    product(3).await;
    assert_eq!(
        PRODUCT_LOADS.load(Ordering::SeqCst),
        2,
        "removed: loaded again"
    );
}

static TENANT_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A dynamic scope: one scope per tenant.
#[cached(key = "user:<id>", scope = "tenant-<tenant>", cache = &*CACHE)]
async fn tenant_user(tenant: &str, id: u64) -> String {
    TENANT_LOADS.fetch_add(1, Ordering::SeqCst);
    format!("{tenant} user {id}")
}

#[tokio::test]
async fn a_dynamic_scope_keeps_tenants_apart_and_clears_one_tenant() {
    assert_eq!(tenant_user("acme", 1).await, "acme user 1");
    assert_eq!(tenant_user("globex", 1).await, "globex user 1");
    assert_eq!(tenant_user("acme", 1).await, "acme user 1");
    assert_eq!(
        TENANT_LOADS.load(Ordering::SeqCst),
        2,
        "one entry per tenant"
    );

    assert_eq!(tenant_user::scope("acme"), "tenant-acme");
    let key = tenant_user::key("acme", 1);
    assert_eq!((key.scope(), key.key()), ("tenant-acme", "user:1"));
    assert!(CACHE.scope("tenant-acme").contains_local("user:1"));

    // Clearing acme's scope leaves globex's entries.
    CACHE
        .scope(&tenant_user::scope("acme"))
        .clear()
        .await
        .unwrap();
    assert!(!CACHE.scope("tenant-acme").contains_local("user:1"));
    assert!(CACHE.scope("tenant-globex").contains_local("user:1"));
    tenant_user("globex", 1).await;
    assert_eq!(
        TENANT_LOADS.load(Ordering::SeqCst),
        2,
        "globex still cached"
    );
    tenant_user("acme", 1).await;
    assert_eq!(TENANT_LOADS.load(Ordering::SeqCst), 3, "acme loaded again");

    // The companions take the scope's parameters too.
    tenant_user::remove_cached("globex", 1).await.unwrap();
    assert!(!CACHE.scope("tenant-globex").contains_local("user:1"));
    assert!(CACHE.scope("tenant-acme").contains_local("user:1"));
    tenant_user::remove_local("acme", 1);
    assert!(!CACHE.scope("tenant-acme").contains_local("user:1"));
}

#[cached(key = "<id>", scope = "<tenant>:<region>", cache = &*CACHE)]
async fn regional(tenant: &str, region: &str, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn a_dynamic_scope_name_is_encoded_like_a_key() {
    // Separators inside values cannot make two tenants share a scope.
    assert_eq!(regional::scope("a:b", "c"), "a%3Ab:c");
    assert_eq!(regional::scope("a", "b:c"), "a:b%3Ac");
    regional("a:b", "c", 2).await;
    assert!(CACHE.scope("a%3Ab:c").contains_local("2"));
    assert!(!CACHE.scope("a:b%3Ac").contains_local("2"));
}
