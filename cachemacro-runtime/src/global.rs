//! The global cache used by `#[cached]` functions that name no `cache = ...`.

use once_cell::sync::OnceCell;

use crate::{Cache, Error};

static GLOBAL: OnceCell<Cache> = OnceCell::new();

/// Makes `cache` the cache of every `#[cached]` function without a `cache = ...` argument.
///
/// Call it once, at start-up, before the first cached call. It fails with
/// [`Error::GlobalAlreadySet`] when a global cache was already set, *or* when a cached
/// function already ran on the in-memory default: a late call never silently leaves some
/// functions on the old cache. (This is the `log::set_logger` contract.)
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
/// let cache = cachemacro_runtime::Cache::builder().namespace("shop").build().await?;
/// cachemacro_runtime::set_global(cache)?;
/// assert!(cachemacro_runtime::set_global(cachemacro_runtime::Cache::in_memory()).is_err());
/// # Ok(()) }
/// ```
pub fn set_global(cache: Cache) -> Result<(), Error> {
    GLOBAL.set(cache).map_err(|_| Error::GlobalAlreadySet)
}

/// The global cache: the one given to [`set_global`], or, when none was, an in-memory cache
/// with the default settings (which then stays the global cache).
#[inline]
pub fn global() -> &'static Cache {
    GLOBAL.get_or_init(Cache::in_memory)
}
