//! # cachemacro
//!
//! One attribute makes an async function read through a two-level cache; one generated call
//! invalidates it.
//!
//! ```
//! use cachemacro::cached;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct User { name: String }
//! # #[derive(Debug)] pub struct DbError;
//! # async fn load_user(id: u64) -> Result<User, DbError> { Ok(User { name: format!("user {id}") }) }
//! # async fn save_user(id: u64, name: &str) -> Result<(), DbError> { Ok(()) }
//!
//! #[cached(key = "user:<user_id>", ttl = "5m")]
//! async fn get_user(user_id: u64) -> Result<User, DbError> {
//!     load_user(user_id).await
//! }
//!
//! async fn rename_user(user_id: u64, name: &str) -> Result<(), Box<dyn std::error::Error>> {
//!     save_user(user_id, name).await.map_err(|_| "db")?;
//!     get_user::remove_cached(user_id).await?; // the next read loads the new row
//!     Ok(())
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # get_user(1).await.unwrap();
//! # rename_user(1, "Ada").await.unwrap();
//! # assert_eq!(get_user::key(1), "user:1");
//! # }
//! ```
//!
//! ## The attribute
//!
//! `#[cached(...)]` goes on an `async fn` whose return type is one of:
//!
//! | returns | cached | not cached |
//! |---|---|---|
//! | `T` | every value | |
//! | `Result<T, E>` (any path ending in `Result`) | `Ok` | `Err`: never cached |
//! | `Option<T>` | `Some` | `None`, unless `cache_none = true` |
//!
//! `T` must be `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`
//! ([`CacheValue`]).
//!
//! | argument | meaning |
//! |---|---|
//! | `key = "user:<user_id>"` | the key template (below); without it, the key is the function's path and every argument |
//! | `ttl = "5m"` | how long an entry lives: `"30s"`, `"5m"`, `"1h 30m"`, or a number of seconds; checked at compile time; default: the cache's [`default_ttl`](CacheBuilder::default_ttl) |
//! | `scope = "users"` | store the entry in that [`Scope`] |
//! | `cache = <expr>` | use this cache (a `Cache`, `&Cache` or `Arc<Cache>`) instead of the [global] one |
//! | `cache_none = true` | cache `None` results too |
//!
//! ### Key templates
//!
//! Literal text plus placeholders, `<name>` or `{name}`, each naming a parameter, and
//! optionally a field of it: `<user.id>`, `<req.tenant>`, `<pair.0>`. `<<`, `>>`, `{{` and
//! `}}` write a literal bracket. The template is checked at compile time: a placeholder
//! that names no parameter, an empty or unterminated placeholder, two placeholders with no
//! separator between them, and a parameter whose type is not a [`KeyPart`] are compile
//! errors pointing at the mistake.
//!
//! Values are encoded injectively (`user:<a>:<b>` never gives the same key for
//! `("x:y", "z")` and `("x", "y:z")`); see [`key`] for the encoding.
//!
//! ### The companion module
//!
//! Beside `fn get_user`, the attribute generates `mod get_user` with the function's
//! visibility, whose functions take exactly the parameters the template names:
//!
//! - `get_user::key(user_id) -> String`: the key, as [`Cache::remove`] takes it.
//! - `get_user::remove_cached(user_id).await -> Result<(), Error>`: removes the entry here,
//!   in Redis and on every peer.
//! - `get_user::remove_local(user_id)`: removes this process's copy only.
//!
//! `cache.remove("user:123")` removes exactly what `get_user(123)` stored: there is no
//! hidden per-function prefix.
//!
//! Don't call `remove_cached` inside the cached function itself: the function's result is
//! stored after it returns.
//!
//! ## The cache
//!
//! [`Cache::builder`] configures one; [`set_global`] makes it the cache of every
//! `#[cached]` function without `cache = ...`. Until then an in-memory cache is used, so
//! everything works without Redis.
//!
//! The [`Cache`] API follows the invalidation vocabulary of hybrid caches:
//! [`get`](Cache::get), [`set`](Cache::set), [`get_or_set`](Cache::get_or_set),
//! [`remove`](Cache::remove), [`remove_local`](Cache::remove_local),
//! [`clear`](Cache::clear), [`clear_memory`](Cache::clear_memory), and
//! [`scope`](Cache::scope) for the same on a named group of keys.
//!
//! ## Guarantees
//!
//! - **Single flight**: concurrent callers of one cold key run the function body once; the
//!   others wait for its value.
//! - **No stale re-fill**: a `remove` (or `set`, `clear`) that happens while a load of that
//!   key is in flight is not undone when the load finishes: the loaded value goes to the
//!   callers that were waiting for it, not into the cache.
//! - **Cancellation and failure**: a caller dropped mid-load, a body that panics, or one
//!   that returns `Err` leaves the key loadable; waiting callers take over.
//! - **Every entry expires**: a missed invalidation heals itself after the TTL.

pub use cachemacro_derive::cached;
pub use cachemacro_runtime::{
    global, key, set_global, write_text, Cache, CacheBuilder, CacheValue, Error, KeyPart, Mode,
    Scope, DEFAULT_L1_CAPACITY, DEFAULT_NAMESPACE, DEFAULT_TTL,
};

#[doc(hidden)]
pub use cachemacro_runtime::__private;
