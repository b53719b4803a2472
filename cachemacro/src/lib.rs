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
//! `#[cached(...)]` goes on an `async fn`; [`cached`] is the full reference of its
//! arguments. In short:
//!
//! | argument | meaning |
//! |---|---|
//! | `key = "user:<user_id>"` | the key template; without it, the function's path and every parameter |
//! | `ttl = "5m"` | how long an entry lives: `"30s"`, `"1h 30m"`, seconds (`300`), or any `Duration` expression (`USER_TTL`); default [`DEFAULT_TTL`] (5 minutes) |
//! | `scope = "tenant-<tenant>"` | the [`Scope`] the entries live in; a template, like `key` |
//! | `cache = APP_CACHE` | a `Cache`, `&Cache`, `Arc<Cache>` or `LazyLock<Cache>` instead of the [global] one |
//! | `ignore = [request_id]` | parameters the result does not depend on, left out of the key |
//! | `result = true`, `option = true` | say that the return type is a `Result` / an `Option` |
//! | `cache_none = true` | cache `None` results too |
//! | `version = 2` | the schema version of the cached type (see [Changing a cached type](#changing-a-cached-type)) |
//! | `tags = ["user:<user_id>"]` | what the entry depends on; [`Cache::invalidate_tag`] removes every entry with a tag |
//!
//! What is cached follows the return type, through type aliases: the `Ok` of a `Result`
//! (an `Err` is never cached), the `Some` of an `Option` (`None` only with
//! `cache_none = true`), any other value as it is. The cached value must be
//! [`CacheValue`]: `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`.
//!
//! ### Key templates
//!
//! Literal text plus placeholders, `<name>` or `{name}`, each naming a parameter, and
//! optionally a field of it: `<user.id>`, `<req.tenant>`, `<pair.0>`. `<<`, `>>`, `{{` and
//! `}}` write a literal bracket. Values are encoded injectively (`user:<a>:<b>` never gives
//! the same key for `("x:y", "z")` and `("x", "y:z")`); see [`key`] for the encoding.
//!
//! Compile errors point at the mistake: a placeholder that names no parameter, an empty or
//! unterminated placeholder, two placeholders with no separator between them, a parameter
//! whose type is neither a [`KeyPart`] nor `serde::Serialize`, and **a parameter left out
//! of the key although it could be part of it**:
//!
//! ```compile_fail
//! # use cachemacro::cached;
//! // error: parameter `tenant` is left out of the cache key, though its type `&str` can be
//! // part of it: add `<tenant>` to the key template, or list it in `ignore = [tenant]`
//! #[cached(key = "user:<id>")]
//! async fn get_user(tenant: &str, id: u64) -> String {
//!     format!("{tenant}/{id}")
//! }
//! # fn main() {}
//! ```
//!
//! The same holds for a parameter whose type is `serde::Serialize` (a
//! `#[derive(Serialize)]` struct), an `impl Trait` or a generic parameter: it may be data
//! the result depends on. Only handles, whose type is neither a key part nor `Serialize`
//! (`db: &Db`, `pool: &PgPool`, `client: Arc<Client>`, `state: State<App>`), stay out without
//! a word; `ignore = [request_id]` leaves out data on purpose.
//!
//! ### The companion
//!
//! Beside `fn get_user`, the attribute generates a type `get_user` with the function's
//! visibility (an enum without values), whose associated functions take the parameters the
//! key reads:
//!
//! - `get_user::key(user_id) -> String`: the key, as [`Cache::remove`] takes it;
//! - `get_user::remove_cached(user_id).await -> Result<(), Error>`: removes the entry here,
//!   in Redis and on every peer;
//! - `get_user::remove_local(user_id)`: removes this process's copy only;
//! - `get_user::with_source(user_id).await -> (Result<User, DbError>, Source)`: the call,
//!   and where its value came from ([`Source`]: L1, L2, a concurrent load, the body, a
//!   stale value), the `cached` crate's `with_cached_flag`;
//! - with `scope`, `get_user::scope(..)`: the scope's name; and `key(..)` returns a
//!   [`ScopedKey`] (scope and key), which [`Cache::remove`] does not take:
//!   `cache.scope(k.scope()).remove(k.key())`;
//! - with `l1_capacity = N` (the function's own share of L1, so that it evicts its own
//!   entries, never the other functions'), `get_user::local_entry_count()` and
//!   `get_user::clear_local()`.
//!
//! The body decides its own entry through [`entry()`]: a TTL read from the value
//! (`cachemacro::entry().ttl(token.expires_in)`), tags known from the value, or
//! `.skip()` to answer without caching; an invalidation still wins over each.
//!
//! `cache.remove("user:123")` removes exactly what `get_user(123)` stored: there is no
//! hidden per-function prefix.
//!
//! ### Methods and associated functions
//!
//! On a `&self` method the companion is methods beside it, `<name>_key`,
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
//! On an associated function without `self`, associated functions beside it:
//! `UserRepo::load_key(id)`. Without a template, the key of either starts with its type's
//! name and its own (`app::UserRepo::user:1`); `self` itself is not part of the key unless a
//! placeholder names one of its fields.
//!
//! Don't call `remove_cached` inside the cached function itself: the function's result is
//! stored after it returns.
//!
//! ### Dynamic scopes
//!
//! `scope = "tenant-<tenant>"` puts each tenant's entries in a scope of its own; the
//! companions take the scope's parameters too, and `get_user::scope("acme")` names the
//! scope, so one tenant's entries can be cleared at once:
//!
//! ```
//! # use cachemacro::{cached, Cache};
//! # static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Cache::in_memory);
//! #[cached(key = "user:<id>", scope = "tenant-<tenant>", cache = CACHE)]
//! async fn get_user(tenant: &str, id: u64) -> String {
//!     format!("{tenant} user {id}")
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
//! get_user("acme", 1).await;
//! CACHE.scope(&get_user::scope("acme")).clear().await?; // acme's entries, no one else's
//! # Ok(()) }
//! ```
//!
//! ### Key parts of your own and of other crates
//!
//! `#[derive(KeyPart)]` makes a struct or an enum a key part, injective like the rest:
//!
//! ```
//! use cachemacro::{cached, KeyPart};
//!
//! #[derive(KeyPart)]
//! pub struct UserId(u64); // a one-field struct writes its field: `42`
//!
//! #[derive(KeyPart)]
//! pub enum Filter { All, Owner(u64) } // `All`, `Owner(7)`
//!
//! #[cached(key = "users:<filter>:<after>")]
//! async fn list(filter: Filter, after: UserId) -> Vec<u64> {
//!     # vec![]
//! }
//! # fn main() { assert_eq!(list::key(Filter::Owner(7), UserId(42)), "users:Owner(7):42"); }
//! ```
//!
//! The cargo features `uuid`, `chrono` and `time` make `uuid::Uuid` and the date and time
//! types of those crates key parts (the orphan rule keeps you from doing it yourself):
//!
//! ```toml
//! cachemacro = { version = "0.2", features = ["uuid", "chrono"] }
//! ```
//!
//! Any other `serde::Serialize` type is a placeholder too, written by its serialized data
//! ([`key::write_serialized`]): a query struct, `SmartString`, a newtype around another
//! crate's id. Its key changes when its serialization does (a field or variant renamed or
//! added, a `#[serde]` attribute):
//!
//! ```
//! use cachemacro::cached;
//!
//! #[derive(serde::Serialize)]
//! pub struct Filter { status: Status, page: u32 }
//!
//! #[derive(serde::Serialize)]
//! pub enum Status { Open, Closed }
//!
//! #[cached(key = "issues:<filter>")]
//! async fn issues(filter: Filter) -> Vec<u64> {
//!     # vec![]
//! }
//! # fn main() {
//! assert_eq!(
//!     issues::key(Filter { status: Status::Open, page: 2 }),
//!     "issues:(status=Open,page=2)"
//! );
//! # }
//! ```
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
//! read) take one per slot. [`CacheBuilder::bus_channels`] moves the bus to Redis 7 sharded
//! pub/sub, so that a message reaches one primary instead of every node; read
//! [`BusChannels`] for the two-step rolling deploy it takes.
//!
//! Behind Redis Sentinel, `.redis_sentinel("mymaster", &["redis://10.0.0.1:26379", ...])`:
//! every (re)connection asks the sentinels for the primary, and the bus follows the data
//! connection through a failover. [`CacheBuilder::redis_sentinel`] says what a failover to
//! a lagging replica can cost.
//!
//! [`CacheBuilder::redis`] takes what redis-rs takes (a URL, a `ConnectionInfo`...: see
//! [`RedisTarget`]). Cargo features for production: `tls-rustls` (`rediss://`, and
//! `CacheBuilder::redis_tls` for a CA of your own), `lz4` and `zstd` (compression of large
//! values in Redis: [`CacheBuilder::compression`]), `metrics` (export through the
//! `metrics` facade). [`Cache::shutdown`] ends an instance gracefully: it waits for
//! background refreshes, leaves the bus and closes the connection.
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
//! carries a fingerprint of the value's type and codec; pick another format with
//! [`CacheBuilder::codec`] ([`codec::Json`] ships too). A type bincode cannot read back
//! (`skip_serializing_if`, `flatten`, `untagged`...) is stored as JSON automatically: see
//! [`codec`]. Keys are laid out as described in [`key`]; bus messages as
//! described in the runtime's `bus` module (`cm1 <instance> del <key>`).
//!
//! ## Guarantees
//!
//! - **A write is visible on the next read, here**: once `remove`, `remove_cached`, `set` or
//!   `clear` returns, no read in this process returns the old value.
//! - **No stale re-fill**: a removal that happens while a load of that key is in flight (in
//!   this process or any other) is not undone when the load finishes. In this process every
//!   in-flight load is marked stale under the lock its commit takes, and a stale load
//!   stores nothing, neither in L1 nor in Redis. In Redis, `remove` leaves a unique
//!   *tombstone* for [`tombstone_ttl`](CacheBuilder::tombstone_ttl) (default 60 s), and a
//!   load stores its value only if the key still holds what the loader saw before it ran
//!   (compare-and-set), only on the connection it read on (a new one may be to a Redis that
//!   restarted empty), and only while its bus is connected.
//! - **A write is visible on every other instance** as soon as the bus message arrives
//!   (well under a millisecond on one host; the README has measured figures). Between the
//!   `remove` returning and the message arriving, a peer may still serve its old L1 copy:
//!   that window is the bus latency.
//! - **Lost messages cannot leave stale values behind**: when the bus connection drops, and
//!   again when it is back, the instance clears its L1 and stops storing in Redis until it
//!   is back. A heartbeat PING notices a connection that died without closing.
//!   [`Cache::bus_connected`] reports the state, for readiness probes.
//! - **Redis down**: reads fail open (the function answers; L1 keeps working), and
//!   invalidations return an [`Error`] after dropping the local copy, so the caller knows
//!   other instances may keep the old value until its TTL ends; retried, they complete.
//!   Every Redis call is bounded by [`redis_timeout`](CacheBuilder::redis_timeout) end to
//!   end. A call that fails or times out puts the connection in doubt: reads skip Redis at
//!   once while a background probe checks it and reconnects, so a hung Redis costs the calls
//!   in flight one timeout, not one per request. A cache built while Redis is down (or
//!   refuses the password) serves from memory and connects when it can.
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
//! Beyond one key at a time:
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
//! ## Testing code that uses #[cached]
//!
//! A test that calls cached functions through the global cache would see what other tests
//! cached, and they run in parallel. [`with_cache`] runs a future with a cache of its own,
//! for every `#[cached]` function without `cache = ...` and for [`global()`](global); the
//! override is task-local, so tests in parallel never see each other's entries:
//!
//! ```
//! use cachemacro::{cached, with_cache, without_cache, Cache};
//!
//! #[cached(key = "user:<id>")]
//! async fn user_name(id: u64) -> String {
//!     format!("user {id}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // In a #[tokio::test]:
//! let cache = Cache::in_memory();
//! with_cache(cache.clone(), async {
//!     assert_eq!(user_name(1).await, "user 1");
//!     assert!(cache.contains_local(&user_name::key(1)));
//! })
//! .await;
//!
//! // Or no caching at all: every call runs its body, whatever cache it names.
//! without_cache(async {
//!     assert_eq!(user_name(1).await, "user 1");
//! })
//! .await;
//! # }
//! ```
//!
//! A task spawned inside does not inherit the override: wrap what it runs in `with_cache`
//! too. Functions with `cache = ...` keep the cache they name (give each test its own, for
//! instance through `self`); `without_cache` bypasses them as well.
//!
//! ## Limitations
//!
//! - `#[cached]` goes on functions (of a module, or declared inside another function's
//!   body), and on methods (`&self`) and associated functions of inherent `impl` blocks. On
//!   a method of a trait or of a trait `impl` it is a compile error (the companion cannot
//!   be added there): put the cached function in an inherent `impl` and call it from the
//!   trait's method. Its companion is a type, not a module, so that it sees what the
//!   function sees wherever it is declared: call `get_user::key(..)`, as `use` cannot
//!   import an associated function.
//! - A parameter under `#[cfg]` is a compile error: the companion takes every parameter.
//! - The type parameters of the function are part of the key; those of the `impl` block a
//!   method belongs to are not (name them in the template, as `<self.kind>` or a parameter).
//! - The methods `&mut self` and `self` are not supported: a cached call skips the body.
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
//! # fn main() {}
//! ```
//!
//! Instances of the old deploy and the new one then read each other's values as misses and
//! overwrite them, instead of misreading them. (Without a bump, a layout bincode cannot
//! decode is still a miss, but two fields of one type swapped would decode wrongly.)
//! Changing the key template (`"user:v2:<id>"`) works too (*versioned keys*).

#[doc = include_str!("cached.md")]
#[doc(inline)]
pub use cachemacro_derive::cached;

/// Declares tags once, with typed parameters: each becomes a type with `tag(..)` (its text),
/// `invalidate(..)` (in the global cache) and `invalidate_in(&cache, ..)`. Name one in
/// `#[cached(tags = [...])]` with the function's parameters as its arguments; a misspelt
/// tag does not compile, nor does an argument of another type.
///
/// ```
/// use cachemacro::cached;
///
/// cachemacro::tags! {
///     /// Everything built from one author's profile.
///     pub author(id: u64) = "author:<id>";
///     /// One article, by its slug.
///     pub article(slug: str) = "article:<slug>";
/// }
///
/// #[cached(key = "article:<author_id>:<slug>", tags = [article(slug), author(author_id)])]
/// async fn get_article(slug: String, author_id: u64) -> String {
///     format!("{slug} by {author_id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// get_article("hello".into(), 7).await;
/// assert_eq!(author::tag(&7), "author:7");
/// // The author renamed themselves: every article of theirs reloads, on every instance.
/// assert_eq!(author::invalidate(&7).await?, 1);
/// # Ok(()) }
/// ```
///
/// A parameter's type is what the tag borrows: `slug: str` takes a `&str` (a `String`
/// argument is borrowed as one), `id: u64` a `&u64`. Every parameter must appear in the
/// template.
#[doc(inline)]
pub use cachemacro_derive::tags;

/// Derives [`KeyPart`](trait@KeyPart) for a struct or an enum: an injective key encoding
/// of its fields.
///
/// - a struct with one field writes that field (`UserId(42)` is `42`);
/// - a struct with several writes them as a tuple (`(7,eu)`); one without fields, `()`;
/// - an enum writes the variant's name, then its fields as a tuple when it has any:
///   `Active`, `Owner(42)`, `Range(1,9)`.
///
/// Every field must be a key part itself, and so must every type parameter. Renaming a
/// variant changes the keys of the values that use it.
///
/// ```
/// use cachemacro::KeyPart;
///
/// #[derive(KeyPart)]
/// enum Filter {
///     All,
///     Owner(u64),
///     Range { from: u32, to: u32 },
/// }
///
/// let key = |f: Filter| {
///     let mut out = String::new();
///     f.write_key_part(&mut out);
///     out
/// };
/// assert_eq!(key(Filter::All), "All");
/// assert_eq!(key(Filter::Owner(42)), "Owner(42)");
/// assert_eq!(key(Filter::Range { from: 1, to: 9 }), "Range(1,9)");
/// ```
#[doc(inline)]
pub use cachemacro_derive::KeyPart;
#[cfg(feature = "metrics")]
pub use cachemacro_runtime::metrics;
/// The redis-rs cachemacro is built on, for naming its types (`ConnectionInfo`,
/// `TlsCertificates`) at the version cachemacro uses.
pub use cachemacro_runtime::redis;
pub use cachemacro_runtime::{
    codec, entry, functions, global, key, set_global, with_cache, without_cache, write_text,
    BusChannels, Cache, CacheBuilder, CacheValue, Compression, EntryHandle, Error, FunctionStats,
    KeyPart, LoadTimes, Mode, RedisTarget, Scope, ScopedKey, Source, Stats, LOAD_BUCKETS,
};

// The defaults, each with its value (rustdoc does not show the value of a constant that
// another crate defines).

/// Value: 1 KiB (`1024` bytes).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_COMPRESS_ABOVE;
/// Value: 10 seconds (`Duration::from_secs(10)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_FAIL_SAFE_THROTTLE;
/// Value: 2 seconds (`Duration::from_secs(2)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_HEARTBEAT;
/// Value: `10_000` entries.
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_L1_CAPACITY;
/// Value: 8 MiB (`8 << 20` bytes).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_MAX_VALUE_SIZE;
/// Value: `"cachemacro"`.
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_NAMESPACE;
/// Value: 250 milliseconds (`Duration::from_millis(250)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_REDIS_COOLDOWN;
/// Value: 1 second (`Duration::from_secs(1)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_REDIS_TIMEOUT;
/// Value: 5 seconds (`Duration::from_secs(5)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_SHUTDOWN_TIMEOUT;
/// Value: 60 seconds (`Duration::from_secs(60)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_TOMBSTONE_TTL;
/// Value: 5 minutes (`Duration::from_secs(300)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_TTL;
/// Value: 1 second (`Duration::from_secs(1)`).
#[doc(inline)]
pub use cachemacro_runtime::DEFAULT_VERSION_REFRESH;
/// Value: `64` tags.
#[doc(inline)]
pub use cachemacro_runtime::MAX_ENTRY_TAGS;
/// Value: ten years (`Duration::from_secs(10 * 365 * 86_400)`).
#[doc(inline)]
pub use cachemacro_runtime::MAX_TTL;
/// Value: a day (`Duration::from_secs(86_400)`).
#[doc(inline)]
pub use cachemacro_runtime::MAX_WAIT;

#[doc(hidden)]
pub use cachemacro_runtime::__private;
