//! `#[cached]` on `&self` methods: the cache and key parts can come from `self`, and the
//! companion is a set of methods beside the cached one.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, Cache};
use serde::{de::DeserializeOwned, Serialize};

/// A repository that owns its cache, as services often hold one in their state.
struct UserRepo {
    cache: Cache,
    tenant: String,
    loads: AtomicUsize,
}

impl UserRepo {
    fn new(tenant: &str) -> Self {
        Self {
            cache: Cache::in_memory(),
            tenant: tenant.into(),
            loads: AtomicUsize::new(0),
        }
    }

    #[cached(key = "<self.tenant>:user:<id>", ttl = "1m", cache = &self.cache)]
    async fn user(&self, id: u64) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("{} user {id}", self.tenant)
    }

    #[cached(cache = &self.cache)]
    pub async fn by_default_key(&self, id: u64, name: &str) -> String {
        format!("{id} {name}")
    }
}

#[tokio::test]
async fn a_method_reads_through_the_cache_its_struct_holds() {
    let repo = UserRepo::new("acme");
    assert_eq!(repo.user(1).await, "acme user 1");
    assert_eq!(repo.user(1).await, "acme user 1");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
    assert_eq!(repo.user_key(1), "acme:user:1");
    assert!(repo.cache.contains_local("acme:user:1"));

    repo.user_remove_cached(1).await.unwrap();
    assert!(!repo.cache.contains_local("acme:user:1"));
    repo.user(1).await;
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
    repo.user_remove_local(1);
    assert!(!repo.cache.contains_local("acme:user:1"));
}

#[tokio::test]
async fn fields_of_self_separate_the_keys_of_two_instances() {
    let (a, b) = (UserRepo::new("a"), UserRepo::new("b"));
    assert_eq!(a.user(1).await, "a user 1");
    assert_eq!(b.user(1).await, "b user 1");
    assert_ne!(a.user_key(1), b.user_key(1));
}

#[tokio::test]
async fn a_method_without_a_template_keys_on_its_type_and_name() {
    let repo = UserRepo::new("acme");
    assert_eq!(repo.by_default_key(7, "x y").await, "7 x y");
    assert_eq!(
        repo.by_default_key_key(7, "x y"),
        "methods::UserRepo::by_default_key:7:x%20y"
    );
}

/// A generic store: the cached method's value type is the impl's parameter.
struct Store<T> {
    cache: Cache,
    make: fn(u64) -> T,
}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Store<T> {
    #[cached(key = "item:<id>", cache = &self.cache)]
    async fn item(&self, id: u64) -> T {
        (self.make)(id)
    }
}

#[tokio::test]
async fn methods_of_generic_impls_work() {
    let store = Store {
        cache: Cache::in_memory(),
        make: |id| vec![id; 2],
    };
    assert_eq!(store.item(3).await, vec![3, 3]);
    assert!(store.cache.contains_local(&store.item_key(3)));
}
