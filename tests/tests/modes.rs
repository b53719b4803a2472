//! What is cached of a return value: `Ok` of a `Result` and `Some` of an `Option`, also
//! through a type alias; `result = ...` / `option = ...` to say it explicitly.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, Cache};
use once_cell::sync::Lazy;
use serde::{Deserialize, Serialize};

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ApiError(u16);

/// The alias of the issue: its name does not end in `Result`'s last segment.
type ApiResult<T> = Result<T, ApiError>;

/// Counts the body's runs of each function.
struct Loads(AtomicUsize);

impl Loads {
    const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

static ALIAS: Loads = Loads::new();

/// Fails with 503 on its first two runs.
#[cached(key = "alias:<id>", cache = &*CACHE)]
async fn through_alias(id: u64) -> ApiResult<String> {
    match ALIAS.bump() {
        1 | 2 => Err(ApiError(503)),
        _ => Ok(format!("user {id}")),
    }
}

#[tokio::test]
async fn an_err_through_a_result_alias_is_not_cached() {
    assert_eq!(through_alias(1).await, Err(ApiError(503)));
    assert_eq!(
        through_alias(1).await,
        Err(ApiError(503)),
        "not served from the cache"
    );
    assert_eq!(through_alias(1).await, Ok("user 1".into()));
    assert_eq!(through_alias(1).await, Ok("user 1".into()));
    assert_eq!(ALIAS.get(), 3, "the Ok was cached, the errors were not");
}

static DECLARED: Loads = Loads::new();

#[cached(key = "declared:<id>", result = true, cache = &*CACHE)]
async fn declared_result(id: u64) -> ApiResult<u64> {
    match DECLARED.bump() {
        1 => Err(ApiError(503)),
        _ => Ok(id),
    }
}

#[tokio::test]
async fn result_true_caches_only_ok() {
    assert_eq!(declared_result(7).await, Err(ApiError(503)));
    assert_eq!(declared_result(7).await, Ok(7));
    assert_eq!(declared_result(7).await, Ok(7));
    assert_eq!(DECLARED.get(), 2);
}

static EVERY: Loads = Loads::new();

#[cached(key = "every:<id>", result = false, cache = &*CACHE)]
async fn errors_cached_too(id: u64) -> Result<u64, String> {
    EVERY.bump();
    Err(format!("no row {id}"))
}

#[tokio::test]
async fn result_false_caches_errors_too() {
    assert_eq!(errors_cached_too(1).await, Err("no row 1".into()));
    assert_eq!(errors_cached_too(1).await, Err("no row 1".into()));
    assert_eq!(EVERY.get(), 1, "the Err was cached");
}

type MaybeUser = Option<String>;

static OPTION_ALIAS: Loads = Loads::new();

#[cached(key = "maybe:<id>", cache = &*CACHE)]
async fn maybe_user(id: u64) -> MaybeUser {
    (OPTION_ALIAS.bump() > 1).then(|| format!("user {id}"))
}

#[tokio::test]
async fn none_through_an_option_alias_is_not_cached() {
    assert_eq!(maybe_user(1).await, None);
    assert_eq!(maybe_user(1).await, Some("user 1".into()));
    assert_eq!(maybe_user(1).await, Some("user 1".into()));
    assert_eq!(OPTION_ALIAS.get(), 2);
}

static OPTION_TRUE: Loads = Loads::new();

#[cached(key = "declared-option:<id>", option = true, cache = &*CACHE)]
async fn declared_option(id: u64) -> MaybeUser {
    (OPTION_TRUE.bump() > 1).then(|| format!("user {id}"))
}

#[tokio::test]
async fn option_true_caches_only_some() {
    assert_eq!(declared_option(1).await, None);
    assert_eq!(declared_option(1).await, Some("user 1".into()));
    assert_eq!(declared_option(1).await, Some("user 1".into()));
    assert_eq!(OPTION_TRUE.get(), 2);
}

static NONE_CACHED: Loads = Loads::new();

#[cached(key = "none-cached:<id>", cache_none = true, cache = &*CACHE)]
async fn none_cached(id: u64) -> MaybeUser {
    NONE_CACHED.bump();
    let _ = id;
    None
}

#[tokio::test]
async fn cache_none_through_an_alias_caches_none() {
    assert_eq!(none_cached(1).await, None);
    assert_eq!(none_cached(1).await, None);
    assert_eq!(NONE_CACHED.get(), 1);
}

/// A struct whose name ends in `Result` is a plain value: every value is cached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SearchResult {
    hits: u32,
}

static SEARCH: Loads = Loads::new();

#[cached(key = "search:<q>", cache = &*CACHE)]
async fn search(q: &str) -> SearchResult {
    SEARCH.bump();
    SearchResult {
        hits: q.len() as u32,
    }
}

#[tokio::test]
async fn a_struct_named_like_a_result_is_a_plain_value() {
    assert_eq!(search("abc").await, SearchResult { hits: 3 });
    assert_eq!(search("abc").await, SearchResult { hits: 3 });
    assert_eq!(SEARCH.get(), 1);
}
