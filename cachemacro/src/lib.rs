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
//! | `version = 2` | the schema version of the cached type (see [Changing a cached type](#changing-a-cached-type)) |
//! | `tags = ["user:<user_id>"]` | templates naming what the entry depends on; [`Cache::invalidate_tag`] removes every entry with a tag |
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
//! ### Methods
//!
//! On a `&self` method the companion is three methods beside it, `<name>_key`,
//! `<name>_remove_cached` and `<name>_remove_local`, and both the cache and key parts may
//! come from `self`:
//!
//! ```
//! # use cachemacro::{cached, Cache};
//! struct UserRepo {
//!     cache: Cache,
//!     tenant: String,
//! }
//!
//! impl UserRepo {
//!     #[cached(key = "<self.tenant>:user:<id>", ttl = "5m", cache = &self.cache)]
//!     async fn user(&self, id: u64) -> String {
//!         format!("user {id}")
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let repo = UserRepo { cache: Cache::in_memory(), tenant: "acme".into() };
//! repo.user(1).await;
//! assert_eq!(repo.user_key(1), "acme:user:1");
//! repo.user_remove_cached(1).await.unwrap();
//! # }
//! ```
//!
//! Without a template, a method's key starts with its type's name and its own
//! (`app::UserRepo::user:1`); `self` itself is not part of the key unless a placeholder
//! names one of its fields.
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
//! ## Redis: L2 and the invalidation bus
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = cachemacro::Cache::builder()
//!     .namespace("shop")
//!     .redis("redis://127.0.0.1:6379") // turns on L2 and the invalidation bus
//!     .build()
//!     .await?;
//! cachemacro::set_global(cache)?;
//! # Ok(()) }
//! ```
//!
//! For a Redis Cluster, `.redis_cluster(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])`
//! instead: values spread over the slots, invalidations are published cluster-wide, and
//! the bus listens through any one node (the next one when it fails). The operations that
//! cannot be one round trip there (a write and its message, a tag registration and the
//! read) take one per slot.
//!
//! - **Read**: L1, then Redis (`GET`), then the function. An L2 hit fills L1 for what is left
//!   of the Redis TTL, never longer. Concurrent misses in one instance run one L2 lookup and
//!   at most one function call.
//! - **Write**: the function's value goes to Redis with its TTL (every key has one, which is
//!   also what `maxmemory-policy volatile-lru` needs), then to L1.
//! - **Remove** (`remove`, `remove_cached`, `set`): Redis first, then this process's L1, then
//!   a message on the bus; every other instance drops its L1 copy when it arrives.
//! - **Clear** (`clear`, `scope.clear()`): this process's L1 and every peer's (for one scope
//!   only with `scope.clear()`). Redis entries are kept: they end with their TTL.
//! - `remove_local` and `clear_memory` never leave the process.
//!
//! Values are serde + bincode 1.3 ([`codec::Bincode`]) inside a versioned envelope that
//! carries a fingerprint of the value's type; pick another format with
//! [`CacheBuilder::codec`]. Keys are laid out as described in [`key`]; bus messages as
//! described in the runtime's `bus` module (`cm1 <instance> del <key>`).
//!
//! ## Guarantees
//!
//! - **A write is visible on the next read, here**: once `remove`, `remove_cached`, `set` or
//!   `clear` returns, no read in this process returns the old value.
//! - **No stale re-fill**: a removal that happens while a load of that key is in flight (in
//!   this process or any other) is not undone when the load finishes. In this process every
//!   in-flight load is marked stale under the lock its commit takes. In Redis, `remove`
//!   leaves a unique *tombstone* for [`tombstone_ttl`](CacheBuilder::tombstone_ttl)
//!   (default 60 s), and a load stores its value only if the key still holds what the
//!   loader saw before it ran (compare-and-set). *Bound*: a load that takes longer than the
//!   tombstone TTL may store what it read; set the TTL above your slowest loader.
//! - **A write is visible on every other instance** as soon as the bus message arrives
//!   (well under a millisecond on one host; the README has measured figures). Between the
//!   `remove` returning and the message arriving, a peer may still serve its old L1 copy:
//!   that window is the bus latency.
//! - **Lost messages cannot leave stale values behind**: when the bus connection drops, and
//!   again when it is back, the instance clears its L1. A heartbeat PING notices a
//!   connection that died without closing. [`Cache::bus_connected`] reports the state, for
//!   readiness probes.
//! - **Redis down**: reads fail open (the function answers; L1 keeps working), and
//!   invalidations return [`Error::Redis`] after dropping the local copy, so the caller
//!   knows other instances may keep the old value until its TTL ends. After three Redis
//!   failures in a row, reads skip Redis for [`redis_cooldown`](CacheBuilder::redis_cooldown)
//!   (a circuit breaker), so a hung Redis costs one timeout, not one per request. A cache
//!   built while Redis is down serves from memory and connects when it can.
//! - **Single flight**: concurrent callers of one cold key run the function body once; the
//!   others wait for its value.
//! - **Cancellation and failure**: a caller dropped mid-load, a body that panics, or one
//!   that returns `Err` leaves the key loadable; waiting callers take over.
//! - **Every entry expires**, in L1 and in Redis: a missed invalidation heals itself after
//!   the TTL.
//! - **Bad bytes are misses**: a value in Redis that is corrupt, of another type, written
//!   by another codec or an older envelope, or too large, is a miss that the next load
//!   overwrites; it is logged, never returned, never a panic.
//!
//! ## Invalidating groups of entries
//!
//! The patterns of the seed documents, beyond one key at a time:
//!
//! | pattern | cachemacro |
//! |---|---|
//! | TTL as the safety net | every entry has a TTL, in L1 and in Redis (`ttl`, [`CacheBuilder::default_ttl`]) |
//! | write-path invalidation | `get_user::remove_cached(id)`, [`Cache::remove`] |
//! | cross-instance events | the invalidation bus (every `remove`, `set`, `clear`) |
//! | scopes, `remove_local`, `clear_memory`, clear to peers | [`Cache::scope`], [`Cache::remove_local`], [`Cache::clear_memory`], [`Cache::clear`] |
//! | versioned keys / version tags: one increment retires a group | [`Cache::version`] and [`Cache::bump_version`], with the version in the key template |
//! | dependency tracking (a list that embeds a row) | `#[cached(tags = [...])]` and [`Cache::invalidate_tag`] |
//! | namespace purge | [`Cache::purge`], [`Scope::purge`] |
//! | LRU with `maxmemory` | every Redis key has a TTL, so `volatile-lru` (or `allkeys-lru`) may evict any; an evicted value is a miss |
//! | the read/write race | single-flight stale marks in process, tombstones and compare-and-set fills across instances |
//!
//! ```
//! # use cachemacro::cached;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Order;
//! // The orders list embeds the user's name: it depends on the user.
//! #[cached(key = "orders:<user_id>", tags = ["user:<user_id>"])]
//! async fn orders(user_id: u64) -> Vec<Order> {
//!     # vec![]
//! }
//!
//! async fn rename_user(user_id: u64) -> Result<(), cachemacro::Error> {
//!     // ... write the row, then drop everything that shows it, everywhere:
//!     cachemacro::global().invalidate_tag(&format!("user:{user_id}")).await?;
//!     Ok(())
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() { orders(1).await; rename_user(1).await.unwrap(); }
//! ```
//!
//! A tag is written with the key encoding, so `invalidate_tag(&format!("user:{id}"))`
//! matches `"user:<id>"` for integers; for text values build it with [`key::escape`].
//!
//! ## Limitations, for now
//!
//! - `#[cached]` goes on free functions declared at module level, and on `&self` methods of
//!   inherent `impl` blocks; not on trait impls, not on associated functions without
//!   `self`, and not on functions declared inside another function's body (the companion
//!   needs a module or an inherent impl to live in).
//! - The return type is recognised by the last segment of its path (`Result`, `Option`);
//!   a type alias with another name is cached as a plain value.
//!
//! ## Changing a cached type
//!
//! A value in Redis carries a fingerprint of its type's name, the `version` argument and
//! the codec. When you change a cached type's fields, bump `version`:
//!
//! ```
//! # use cachemacro::cached;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct User { name: String, email: String }
//! #[cached(key = "user:<id>", version = 2)] // was 1 (or absent) before `email` was added
//! async fn get_user(id: u64) -> User {
//!     # User { name: String::new(), email: String::new() }
//! }
//! ```
//!
//! Instances of the old deploy and the new one then read each other's values as misses and
//! overwrite them, instead of misreading them. (Without a bump, a layout bincode cannot
//! decode is still a miss, but two fields of one type swapped would decode wrongly.)
//! Changing the key template (`"user:v2:<id>"`) works too: it is the seeds' *versioned
//! keys* pattern.

pub use cachemacro_derive::cached;
pub use cachemacro_runtime::{
    codec, global, key, set_global, write_text, Cache, CacheBuilder, CacheValue, Error, KeyPart,
    Mode, Scope, Stats, DEFAULT_L1_CAPACITY, DEFAULT_MAX_VALUE_SIZE, DEFAULT_NAMESPACE,
    DEFAULT_REDIS_TIMEOUT, DEFAULT_TOMBSTONE_TTL, DEFAULT_TTL,
};

#[doc(hidden)]
pub use cachemacro_runtime::__private;
