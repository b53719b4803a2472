//! The global cache used by `#[cached]` functions that name no `cache = ...`, and the
//! task-local overrides tests use: [`with_cache`] and [`without_cache`].

use std::future::Future;
use std::ops::Deref;

use once_cell::sync::OnceCell;

use crate::{Cache, Error};

static GLOBAL: OnceCell<Cache> = OnceCell::new();

tokio::task_local! {
    /// What [`with_cache`] and [`without_cache`] set for the future they run.
    static OVERRIDE: Override;
}

/// The overrides of one task, inherited by nested [`with_cache`] / [`without_cache`] calls.
#[derive(Clone, Default)]
struct Override {
    /// The cache that replaces the global one.
    cache: Option<Cache>,
    /// Every `#[cached]` call runs its body, without any cache.
    bypass: bool,
}

fn current_override() -> Option<Override> {
    OVERRIDE.try_with(Override::clone).ok()
}

/// Makes `cache` the cache of every `#[cached]` function without a `cache = ...` argument.
///
/// Call it once, at start-up, before the first cached call. It fails with
/// [`Error::GlobalAlreadySet`] when a global cache was already set, *or* when a cached
/// function already ran on the in-memory default: a late call never silently leaves some
/// functions on the old cache. (This is the `log::set_logger` contract.)
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// let cache = cachemacro::Cache::builder().namespace("shop").build().await?;
/// cachemacro::set_global(cache)?;
/// assert!(cachemacro::set_global(cachemacro::Cache::in_memory()).is_err());
/// # Ok(()) }
/// ```
pub fn set_global(cache: Cache) -> Result<(), Error> {
    GLOBAL.set(cache).map_err(|_| Error::GlobalAlreadySet)
}

fn process_global() -> &'static Cache {
    GLOBAL.get_or_init(Cache::in_memory)
}

/// The global cache: the one given to [`set_global`], or, when none was, an in-memory cache
/// with the default settings (which then stays the global cache). Inside
/// [`with_cache`]`(cache, ...)`, that `cache`.
///
/// It returns a handle (a `Cache` is a reference-counted handle; cloning it is cheap):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// cachemacro::global().invalidate_tag("user:42").await?;
/// # Ok(()) }
/// ```
pub fn global() -> Cache {
    match current_override() {
        Some(Override {
            cache: Some(cache), ..
        }) => cache,
        _ => process_global().clone(),
    }
}

/// Runs `future` with `cache` as the global cache: every `#[cached]` function without a
/// `cache = ...` argument, and [`global`], use `cache` while `future` runs, and only there.
///
/// The override belongs to the task that awaits `future` (it is task-local), so tests that
/// run in parallel, each with its own cache, never see each other's entries. A task
/// spawned inside `future` does not inherit it: wrap what it runs in `with_cache` too.
/// Functions with `cache = ...` keep the cache they name.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use cachemacro::{cached, with_cache, Cache};
///
/// static LOADS: AtomicUsize = AtomicUsize::new(0);
///
/// #[cached(key = "user:<id>")]
/// async fn user(id: u64) -> String {
///     LOADS.fetch_add(1, Ordering::SeqCst);
///     format!("user {id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Each test builds its own cache: nothing it caches leaks into another test.
/// with_cache(Cache::in_memory(), async {
///     user(1).await;
///     user(1).await;
/// })
/// .await;
/// with_cache(Cache::in_memory(), async {
///     user(1).await; // a fresh cache: loads again
/// })
/// .await;
/// assert_eq!(LOADS.load(Ordering::SeqCst), 2);
/// # }
/// ```
pub async fn with_cache<F: Future>(cache: Cache, future: F) -> F::Output {
    let over = Override {
        cache: Some(cache),
        bypass: false,
    };
    OVERRIDE.scope(over, future).await
}

/// Runs `future` with caching bypassed: every `#[cached]` function called while `future`
/// runs (in this task) runs its body, reads no cache and stores nothing, whatever cache it
/// names. The companions' `remove_cached` and `remove_local` still work.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use cachemacro::{cached, without_cache};
///
/// static LOADS: AtomicUsize = AtomicUsize::new(0);
///
/// #[cached(key = "price:<sku>")]
/// async fn price(sku: u32) -> u32 {
///     LOADS.fetch_add(1, Ordering::SeqCst);
///     sku * 100
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// without_cache(async {
///     price(7).await;
///     price(7).await;
/// })
/// .await;
/// assert_eq!(LOADS.load(Ordering::SeqCst), 2, "every call ran the body");
/// # }
/// ```
pub async fn without_cache<F: Future>(future: F) -> F::Output {
    let over = Override {
        bypass: true,
        ..current_override().unwrap_or_default()
    };
    OVERRIDE.scope(over, future).await
}

/// The global cache, as the generated code holds it for one call.
#[doc(hidden)]
pub enum GlobalCache {
    /// The process's global cache.
    Process(&'static Cache),
    /// A task's, from [`with_cache`].
    Task(Cache),
}

impl Deref for GlobalCache {
    type Target = Cache;

    #[inline]
    fn deref(&self) -> &Cache {
        match self {
            GlobalCache::Process(cache) => cache,
            GlobalCache::Task(cache) => cache,
        }
    }
}

/// The global cache for a cached call, or `None` when caching is bypassed.
#[doc(hidden)]
#[inline]
pub fn global_unless_bypassed() -> Option<GlobalCache> {
    let cache = match current_override() {
        None => Some(GlobalCache::Process(process_global())),
        Some(Override { bypass: true, .. }) => None,
        Some(Override {
            cache: Some(cache), ..
        }) => Some(GlobalCache::Task(cache)),
        Some(Override { cache: None, .. }) => Some(GlobalCache::Process(process_global())),
    };
    cache.filter(|cache| !cache.is_shut_down())
}

/// The global cache for a companion function (`remove_cached`...), bypassed or not.
#[doc(hidden)]
#[inline]
pub fn global_for_companion() -> GlobalCache {
    match current_override() {
        Some(Override {
            cache: Some(cache), ..
        }) => GlobalCache::Task(cache),
        _ => GlobalCache::Process(process_global()),
    }
}

/// Whether caching is bypassed in this task ([`without_cache`]).
#[doc(hidden)]
#[inline]
pub fn bypassed() -> bool {
    OVERRIDE.try_with(|o| o.bypass).unwrap_or(false)
}
