//! What a user coming from the `cached` crate reaches for compiles on every shape of
//! function: `with_source` (`with_cached_flag`), `cachemacro::entry()` (`CanExpire`), and
//! `l1_capacity` (`size`) with its companions.

use std::time::Duration;

use cachemacro::{cached, Cache, Source};

// A generic function: `with_source` passes the type arguments on.
#[cached(key = "load:<id>", ttl = "1m")]
async fn load<
    T: Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
>(
    id: u64,
) -> T {
    let _ = id;
    T::default()
}

// `impl Trait`, ignored: no turbofish is possible, the call infers it.
#[cached(key = "search:<q>", ignore = [trace], l1_capacity = 100)]
async fn search(q: String, trace: impl AsRef<str>) -> Result<Vec<String>, String> {
    let _ = trace.as_ref();
    cachemacro::entry()
        .ttl(Duration::from_secs(5))
        .tag(format!("q:{q}"));
    Ok(vec![q])
}

// A scoped function with a share.
#[cached(key = "user:<id>", scope = "tenant-<tenant>", l1_capacity = 10)]
async fn user(tenant: String, id: u64) -> Option<u64> {
    if id == 0 {
        cachemacro::entry().skip();
    }
    let _ = tenant;
    Some(id)
}

struct Repo {
    cache: Cache,
}

impl Repo {
    // A method on a cache of its own.
    #[cached(key = "item:<id>", l1_capacity = 5, cache = &self.cache)]
    async fn item(&self, id: u64) -> u64 {
        id
    }

    // An associated function: its companions take no `self`.
    #[cached(key = "config", l1_capacity = 1)]
    async fn config() -> String {
        String::new()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (value, source): (u32, Source) = load::with_source::<u32>(1).await;
    assert_eq!((value, source), (0, Source::Loaded));
    let (_, source) = search::with_source("a".into(), "t").await;
    assert!(!source.is_cached());
    assert!(search::local_entry_count() <= 100);
    search::clear_local();
    let _ = user::with_source("acme".into(), 1).await;
    assert!(user::local_entry_count() <= 10);
    user::clear_local();
    let repo = Repo {
        cache: Cache::in_memory(),
    };
    let _ = repo.item_with_source(1).await;
    assert_eq!(repo.item_local_entry_count(), 1);
    repo.item_clear_local();
    let _ = Repo::config_with_source().await;
    assert_eq!(Repo::config_local_entry_count(), 1);
    Repo::config_clear_local();
}
