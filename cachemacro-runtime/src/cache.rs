//! `Cache`: orchestrates L1, single flight and (when configured) L2 and the invalidation bus.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::bus::{Bus, Message};
use crate::codec::{self, Codec, CodecError};
use crate::envelope::{self, Stored};
use crate::flight::{Flights, Leader, Role};
use crate::key::{Layout, Place};
use crate::l1::{Entry, L1};
use crate::l2::L2;
use crate::output::{Always, CacheValue, Mode, OkOnly};
use crate::scope::Scope;
use crate::Error;

/// A two-level cache: a bounded in-process L1 and, when configured, a shared Redis L2 with
/// an invalidation bus.
///
/// `Cache` is a handle: cloning it is cheap and every clone uses the same storage.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
/// use std::time::Duration;
/// use cachemacro_runtime::Cache;
///
/// let cache = Cache::builder().namespace("shop").build().await?;
/// cache.set("user:1", "Ada".to_string(), Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("user:1").await?, Some("Ada".to_string()));
///
/// cache.remove("user:1").await?;
/// assert_eq!(cache.get::<String>("user:1").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    /// The storage prefix of unscoped keys, computed once.
    pub(crate) unscoped_prefix: String,
    pub(crate) default_ttl: Duration,
    pub(crate) l1: L1,
    pub(crate) flights: Flights,
    /// The shared tier, when Redis is configured.
    pub(crate) l2: Option<L2>,
    /// The invalidation bus, when Redis is configured.
    pub(crate) bus: Option<Bus>,
    pub(crate) codec: Arc<dyn Codec>,
    pub(crate) max_value_size: usize,
    /// How long a removal's tombstone keeps loads that began before it from storing.
    pub(crate) tombstone_ttl: Duration,
    /// This instance's id on the bus and in tombstones.
    pub(crate) instance: u64,
    /// Group versions, when there is no Redis to hold them.
    pub(crate) local_versions: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Tag -> storage keys, when there is no Redis to hold them.
    pub(crate) local_tags:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<String>>>,
}

/// How a miss loads and stores a value.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The TTL; `None`: the cache's default.
    pub ttl: Option<Duration>,
    /// The schema version of the value's type (`#[cached(version = N)]`).
    pub version: u32,
    /// The tags the entry depends on (`#[cached(tags = [...])]`), see
    /// [`Cache::invalidate_tag`].
    pub tags: Vec<String>,
}

/// What L2 held when a load began; the fill stores only if it still holds the same.
enum Seen {
    /// L2 is not configured, or could not be read: fill L1 only.
    Unknown,
    Absent,
    /// A tombstone, or a value this reader cannot use (corrupt, another type, an old layout).
    Bytes(Vec<u8>),
}

/// The outcome of an L2 read.
enum Lookup<T> {
    /// A value, and how long L1 may keep it.
    Hit(Arc<T>, Option<Duration>),
    Miss(Seen),
    Failed(Error),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.layout.root())
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub(crate) fn from_arc(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }

    /// An in-process cache with the default settings and no Redis: what `#[cached]`
    /// functions use until [`set_global`](crate::set_global) is called.
    pub fn in_memory() -> Cache {
        CacheBuilder::new().build_local()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The TTL used when none is given.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// A view of this cache whose keys live apart from unscoped keys and from every other
    /// scope, whatever the names. `scope.clear()` reaches only the scope's entries.
    pub fn scope(&self, name: &str) -> Scope {
        Scope::new(self.clone(), name)
    }

    /// Reads `key`: L1, then L2. `None` when absent, expired, or held as another type.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get_at(&self.storage_key(Place::Unscoped, key)).await
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL), replacing any value
    /// and any load in flight for that key.
    pub async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: T,
        ttl: impl Into<Option<Duration>>,
    ) -> Result<(), Error> {
        let skey = self.storage_key(Place::Unscoped, key);
        self.set_at(skey, value, ttl.into()).await
    }

    /// Returns the value under `key`, or runs `loader`, caches its value for `ttl` and returns
    /// it. Concurrent callers of one cold key run `loader` once.
    pub async fn get_or_set<T, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Option<Duration>>,
        loader: F,
    ) -> T
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let skey = self.storage_key(Place::Unscoped, key);
        self.read_through::<Always, T, _>(skey, ttl.into(), async move { loader().await })
            .await
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible loader: an `Err` is returned and
    /// not cached.
    pub async fn try_get_or_set<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Option<Duration>>,
        loader: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skey = self.storage_key(Place::Unscoped, key);
        self.read_through::<OkOnly, Result<T, E>, _>(
            skey,
            ttl.into(),
            async move { loader().await },
        )
        .await
    }

    /// Removes `key` everywhere: this process's L1, L2, and every peer's L1.
    ///
    /// Returns an error when L2 or the bus could not be reached: the local copy is gone, but
    /// other instances may still serve the old value until its TTL ends.
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        self.remove_at(&self.storage_key(Place::Unscoped, key))
            .await
    }

    /// Removes this process's L1 copy of `key` only: L2 and peers are untouched.
    pub fn remove_local(&self, key: &str) {
        self.remove_local_at(&self.storage_key(Place::Unscoped, key));
    }

    /// Clears this process's L1 and tells every peer to clear its own. It does not delete
    /// L2 entries: they end with their TTL, or are overwritten by the next write.
    pub async fn clear(&self) -> Result<(), Error> {
        self.clear_at("").await
    }

    /// Deletes every entry of this cache's namespace from Redis (a `SCAN` + `UNLINK` over
    /// `<namespace>:*`, in batches that do not block the server), then clears this process's
    /// L1 and every peer's. Returns how many Redis keys were deleted (0 without Redis).
    ///
    /// This is the seeds' *namespace purge*: for starting afresh after a migration, or for
    /// tests. It is not how a write invalidates (use [`remove`](Self::remove), a group
    /// [`version`](Self::version) or tags): a load in flight while it runs may store what it
    /// loaded.
    pub async fn purge(&self) -> Result<u64, Error> {
        self.purge_at(self.inner.layout.root()).await
    }

    pub(crate) async fn purge_at(&self, prefix: &str) -> Result<u64, Error> {
        let deleted = match &self.inner.l2 {
            // The prefix is escaped (see `key`), so it holds no glob characters of its own.
            Some(l2) => l2
                .scan_unlink(&format!("{prefix}*"))
                .await
                .map_err(|e| Error::redis("purge", e))?,
            None => 0,
        };
        let prefix = if prefix == self.inner.layout.root() {
            ""
        } else {
            prefix
        };
        self.clear_at(prefix).await?;
        Ok(deleted)
    }

    /// The current version of `group`: 0 until [`bump_version`](Self::bump_version) is first
    /// called. Put it in the keys of everything in the group, and one bump retires them all
    /// at once (the *versioned keys* pattern):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
    /// # let cache = cachemacro_runtime::Cache::in_memory();
    /// let v = cache.version("catalog").await?;
    /// cache.set(&format!("catalog:v{v}:item:1"), "chair".to_string(), None).await?;
    ///
    /// cache.bump_version("catalog").await?; // the catalog changed
    /// let v = cache.version("catalog").await?;
    /// assert_eq!(cache.get::<String>(&format!("catalog:v{v}:item:1")).await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// With `#[cached]`, take the version as an argument: `#[cached(key =
    /// "catalog:v<version>:<id>")] async fn item(version: u64, id: u64)`. Entries of older
    /// versions are never read again and end with their TTL. With Redis the counter is
    /// shared by every instance; reading it costs one `GET`.
    pub async fn version(&self, group: &str) -> Result<u64, Error> {
        let key = self.inner.layout.version_key(group);
        match &self.inner.l2 {
            Some(l2) => l2
                .counter(&key)
                .await
                .map_err(|e| Error::redis("read version", e)),
            None => Ok(self.local_versions().get(&key).copied().unwrap_or(0)),
        }
    }

    /// Moves `group` to its next version, retiring every entry keyed with an older one; returns
    /// the new version. See [`version`](Self::version).
    pub async fn bump_version(&self, group: &str) -> Result<u64, Error> {
        let key = self.inner.layout.version_key(group);
        match &self.inner.l2 {
            Some(l2) => l2
                .increment(&key)
                .await
                .map_err(|e| Error::redis("bump version", e)),
            None => {
                let mut versions = self.local_versions();
                let version = versions.entry(key).or_insert(0);
                *version += 1;
                Ok(*version)
            }
        }
    }

    fn local_versions(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.inner
            .local_versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes, everywhere, every entry that depends on `tag`: the seeds' *dependency
    /// tracking*. A function declares its tags as templates, `#[cached(key =
    /// "orders:<user_id>", tags = ["user:<user_id>"])]`; `invalidate_tag("user:42")` then
    /// removes the orders of user 42 together with anything else tagged `user:42`, here and
    /// on every instance. Returns how many entries were removed.
    ///
    /// Tags are registered when a load begins (in the same round trip as the L2 read), so an
    /// invalidation that comes while a load is in flight finds it, and the load's fill then
    /// fails as it does after [`remove`](Self::remove).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        let tag_key = self.inner.layout.tag_key(tag);
        let Some(l2) = &self.inner.l2 else {
            let keys = self.local_tags().remove(&tag_key).unwrap_or_default();
            for key in &keys {
                self.remove_local_at(key);
            }
            return Ok(keys.len() as u64);
        };
        let keys = l2
            .take_members(&tag_key)
            .await
            .map_err(|e| Error::redis("invalidate tag", e))?;
        let tombstone = envelope::tombstone(self.inner.instance);
        let messages: Vec<String> = match &self.inner.bus {
            Some(bus) => keys
                .iter()
                .map(|k| bus.payload(&Message::Remove(k.clone())))
                .collect(),
            None => Vec::new(),
        };
        let mut result = Ok(());
        for (keys, messages) in keys.chunks(500).zip(
            messages
                .chunks(500)
                .map(Some)
                .chain(std::iter::repeat(None)),
        ) {
            let channel = self.inner.bus.as_ref().map(Bus::channel);
            let written = l2
                .tombstone_all(
                    keys,
                    &tombstone,
                    self.inner.tombstone_ttl,
                    channel,
                    messages.unwrap_or(&[]),
                )
                .await;
            if let Err(err) = written {
                result = Err(Error::redis("invalidate tag", err));
            }
        }
        for key in &keys {
            self.remove_local_at(key);
        }
        result.map(|()| keys.len() as u64)
    }

    /// Records, without Redis, that `skey` depends on each of `tag_keys`.
    fn register_local_tags(&self, tag_keys: &[String], skey: &str) {
        if tag_keys.is_empty() {
            return;
        }
        let mut tags = self.local_tags();
        for tag in tag_keys {
            let keys = tags.entry(tag.clone()).or_default();
            keys.insert(skey.to_owned());
            // Keys whose entries expired or were evicted stay listed until the tag is
            // invalidated; prune them when a tag grows large.
            if keys.len() > 4096 {
                keys.retain(|k| self.contains_local_at(k));
            }
        }
    }

    fn local_tags(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, std::collections::HashSet<String>>,
    > {
        self.inner
            .local_tags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Clears this process's L1 only.
    pub fn clear_memory(&self) {
        self.clear_memory_at("");
    }

    /// Whether this instance is subscribed to the invalidation bus right now: always `true`
    /// without Redis. While it is `false`, this instance cannot hear other instances'
    /// invalidations; it clears its L1 when the bus drops and again when it is back. Use it
    /// in a readiness probe.
    pub fn bus_connected(&self) -> bool {
        self.inner.bus.as_ref().is_none_or(Bus::is_connected)
    }

    /// How many entries this process's L1 holds, for metrics. It first applies pending
    /// evictions and invalidations, so call it from a metrics task, not on a hot path.
    pub fn local_entry_count(&self) -> u64 {
        self.inner.l1.entry_count()
    }

    /// Whether this process's L1 holds `key` (for diagnostics and tests).
    pub fn contains_local(&self, key: &str) -> bool {
        self.contains_local_at(&self.storage_key(Place::Unscoped, key))
    }

    // ---- the storage-key level, shared with `Scope` and the generated code ----

    /// The storage key of `key` in `place` (see [`crate::key`] for the layout).
    pub(crate) fn storage_key(&self, place: Place<'_>, key: &str) -> String {
        let mut out = self.key_buffer(place, key.len());
        out.push_str(key);
        out
    }

    /// An empty storage key for `place`, with room for `extra` more bytes of key.
    pub(crate) fn key_buffer(&self, place: Place<'_>, extra: usize) -> String {
        match place {
            Place::Unscoped => {
                let mut out = String::with_capacity(self.inner.unscoped_prefix.len() + extra);
                out.push_str(&self.inner.unscoped_prefix);
                out
            }
            Place::Scope(_) => {
                let mut out = String::with_capacity(self.inner.unscoped_prefix.len() + 16 + extra);
                self.inner.layout.write_prefix(place, &mut out);
                out
            }
        }
    }

    pub(crate) fn prefix(&self, place: Place<'_>) -> String {
        self.inner.layout.prefix(place)
    }

    /// The hit path of generated code: writes the key for `place` with `write` into a
    /// reused per-thread buffer and looks it up in L1, so a hit allocates nothing but the
    /// clone of the value. A miss returns the key, owned, for the load.
    #[inline]
    pub(crate) fn lookup<T: CacheValue>(
        &self,
        place: Place<'_>,
        write: impl FnOnce(&mut String),
    ) -> Result<T, String> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(128));
        }
        let mut write = Some(write);
        let reused = KEY.with(|cell| {
            // Re-entered (a `KeyPart` impl that runs a lookup itself): use a fresh buffer.
            let mut key = cell.try_borrow_mut().ok()?;
            key.clear();
            self.inner.layout.write_prefix(place, &mut key);
            (write.take()?)(&mut key);
            Some(self.l1_get::<T>(&key).ok_or_else(|| key.clone()))
        });
        match (reused, write) {
            (Some(result), _) => result,
            (None, Some(write)) => {
                let mut key = self.key_buffer(place, 64);
                write(&mut key);
                self.l1_get::<T>(&key).ok_or(key)
            }
            (None, None) => unreachable!("the key writer runs at most once"),
        }
    }

    fn ttl_or_default(&self, ttl: Option<Duration>) -> Duration {
        ttl.unwrap_or(self.inner.default_ttl)
    }

    /// The fingerprint stored values of `T` carry.
    fn fingerprint<T>(&self, version: u32) -> u64 {
        envelope::fingerprint(std::any::type_name::<T>(), version, self.inner.codec.name())
    }

    /// `value` in its envelope, ready for L2.
    fn encode<T: CacheValue>(
        &self,
        skey: &str,
        value: &T,
        fingerprint: u64,
        ttl: Duration,
    ) -> Result<Vec<u8>, Error> {
        let mut bytes = envelope::value_header(fingerprint, ttl, 64);
        let limit = self.inner.max_value_size;
        let too_large = |size| Error::TooLarge {
            key: skey.to_owned(),
            size,
            limit,
        };
        match codec::encode(&*self.inner.codec, value, &mut bytes) {
            Ok(()) if bytes.len() > limit => Err(too_large(bytes.len())),
            Ok(()) => Ok(bytes),
            Err(CodecError::TooLarge { .. }) => Err(too_large(limit + 1)),
            Err(CodecError::Other(reason)) => Err(Error::Encode {
                key: skey.to_owned(),
                reason,
            }),
        }
    }

    /// Reads `skey` from L2 as a `T`.
    async fn l2_lookup<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        fingerprint: u64,
        tag_keys: &[String],
        ttl: Duration,
    ) -> Lookup<T> {
        let read = if tag_keys.is_empty() {
            l2.get(skey).await
        } else {
            // The tag sets outlive the value: it is written up to a load's time after now.
            l2.get_tagged(skey, tag_keys, ttl + self.inner.tombstone_ttl)
                .await
        };
        let bytes = match read {
            Ok(Some(found)) => found,
            Ok(None) => return Lookup::Miss(Seen::Absent),
            Err(err) => return Lookup::Failed(Error::redis("read", err)),
        };
        let reason = match envelope::parse(&bytes) {
            Stored::Value {
                fingerprint: fp,
                expires_at_ms,
                payload,
            } if fp == fingerprint => match codec::decode::<T>(&*self.inner.codec, payload) {
                Ok(value) => {
                    let remaining = expires_at_ms
                        .checked_sub(envelope::now_ms())
                        .filter(|&ms| ms > 0)
                        .map(Duration::from_millis);
                    return Lookup::Hit(Arc::new(value), remaining);
                }
                Err(err) => format!("undecodable value ({err})"),
            },
            Stored::Value { .. } => "a value of another type or version".to_owned(),
            Stored::Tombstone => return Lookup::Miss(Seen::Bytes(bytes)),
            Stored::Foreign(reason) => reason.to_owned(),
        };
        tracing::warn!(
            key = %skey,
            reason = %reason,
            expected = std::any::type_name::<T>(),
            "cache: unusable value in Redis, treating it as a miss; the next load overwrites it"
        );
        Lookup::Miss(Seen::Bytes(bytes))
    }

    pub(crate) async fn get_at<T: CacheValue>(&self, skey: &str) -> Result<Option<T>, Error> {
        if let Some(value) = self.l1_get::<T>(skey) {
            return Ok(Some(value));
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        loop {
            match self.inner.flights.join(skey) {
                Role::Follower(follower) => {
                    if let Some(value) = follower.wait().await.and_then(|e| e.downcast::<T>()) {
                        return Ok(Some(T::clone(&value)));
                    }
                    if let Some(value) = self.l1_get::<T>(skey) {
                        return Ok(Some(value));
                    }
                }
                Role::Leader(leader) => {
                    let ttl = self.inner.default_ttl;
                    return match self
                        .l2_lookup::<T>(l2, skey, self.fingerprint::<T>(0), &[], ttl)
                        .await
                    {
                        Lookup::Hit(value, remaining) => {
                            let out = T::clone(&value);
                            self.land_l2_hit(leader, value, remaining, ttl);
                            Ok(Some(out))
                        }
                        Lookup::Miss(_) => {
                            leader.land(&self.inner.l1, None, false);
                            Ok(None)
                        }
                        Lookup::Failed(err) => Err(err),
                    };
                }
            }
        }
    }

    /// Fills L1 from an L2 hit: for what is left of the L2 TTL, never longer.
    fn land_l2_hit<T: CacheValue>(
        &self,
        leader: Leader<'_>,
        value: Arc<T>,
        remaining: Option<Duration>,
        ttl: Duration,
    ) {
        match remaining {
            Some(remaining) => leader.land(
                &self.inner.l1,
                Some(Entry::new(value, remaining.min(ttl))),
                true,
            ),
            // The value is at the end of its life (or the clocks disagree): hand it to the
            // waiting callers but keep it out of L1.
            None => leader.land(&self.inner.l1, Some(Entry::new(value, ttl)), false),
        }
    }

    pub(crate) async fn set_at<T: CacheValue>(
        &self,
        skey: String,
        value: T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let ttl = self.ttl_or_default(ttl);
        let inner = &self.inner;
        let Some(l2) = &inner.l2 else {
            inner
                .flights
                .insert(&inner.l1, skey, Entry::new(Arc::new(value), ttl));
            return Ok(());
        };
        let stored = match self.encode(&skey, &value, self.fingerprint::<T>(0), ttl) {
            Ok(bytes) => self.write_l2(l2, &skey, &bytes, ttl, "write").await,
            Err(err) => Err(err),
        };
        match stored {
            Ok(()) => {
                inner
                    .flights
                    .insert(&inner.l1, skey, Entry::new(Arc::new(value), ttl));
                Ok(())
            }
            Err(err) => {
                // Keep no local copy that the other instances do not share.
                self.remove_local_at(&skey);
                Err(err)
            }
        }
    }

    /// Writes `bytes` under `skey` in L2 and tells the peers to drop their copy, in one
    /// round trip when the bus is on.
    async fn write_l2(
        &self,
        l2: &L2,
        skey: &str,
        bytes: &[u8],
        ttl: Duration,
        operation: &'static str,
    ) -> Result<(), Error> {
        let result = match &self.inner.bus {
            Some(bus) => {
                let message = bus.payload(&Message::Remove(skey.to_owned()));
                l2.set_and_publish(skey, bytes, ttl, bus.channel(), &message)
                    .await
            }
            None => l2.set(skey, bytes, ttl).await,
        };
        result.map_err(|e| Error::redis(operation, e))
    }

    pub(crate) async fn remove_at(&self, skey: &str) -> Result<(), Error> {
        let Some(l2) = &self.inner.l2 else {
            self.remove_local_at(skey);
            return Ok(());
        };
        // L2 first: once the local copy is gone, a local load must not find the old value
        // in L2. The tombstone also fails the fill of any load that began before it (here
        // or on another instance), and the peers drop their copies when the message lands.
        let tombstone = envelope::tombstone(self.inner.instance);
        let result = self
            .write_l2(l2, skey, &tombstone, self.inner.tombstone_ttl, "remove")
            .await;
        self.remove_local_at(skey);
        result
    }

    pub(crate) async fn clear_at(&self, prefix: &str) -> Result<(), Error> {
        self.clear_memory_at(prefix);
        let message = if prefix.is_empty() {
            Message::Clear
        } else {
            Message::ClearPrefix(prefix.to_owned())
        };
        self.publish(message).await
    }

    async fn publish(&self, message: Message) -> Result<(), Error> {
        match &self.inner.bus {
            Some(bus) => bus
                .publish(&message)
                .await
                .map_err(|e| Error::redis("publish", e)),
            None => Ok(()),
        }
    }

    pub(crate) fn remove_local_at(&self, skey: &str) {
        // Flights first: a load that lands after this point sees the mark and stays out.
        self.inner.flights.invalidate(skey);
        self.inner.l1.remove(skey);
    }

    pub(crate) fn clear_memory_at(&self, prefix: &str) {
        let prefix = if prefix.is_empty() {
            self.inner.layout.root()
        } else {
            prefix
        };
        self.inner.flights.invalidate_prefix(prefix);
        if prefix == self.inner.layout.root() {
            self.inner.l1.clear();
        } else {
            self.inner.l1.clear_prefix(prefix.to_owned());
        }
    }

    pub(crate) fn contains_local_at(&self, skey: &str) -> bool {
        self.inner.l1.get(skey).is_some()
    }

    #[inline]
    fn l1_get<T: CacheValue>(&self, skey: &str) -> Option<T> {
        let value = self.inner.l1.get(skey)?.downcast::<T>()?;
        Some(T::clone(&value))
    }

    /// The read path of `#[cached]` and `get_or_set`: L1, then one load per key at a time
    /// (L2, then `fut`).
    #[inline]
    pub(crate) async fn read_through<M, R, F>(
        &self,
        skey: String,
        ttl: Option<Duration>,
        fut: F,
    ) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        if let Some(value) = self.l1_get::<M::Value>(&skey) {
            return M::wrap(value);
        }
        let options = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        Box::pin(self.load::<M, R, F>(skey, options, fut)).await
    }

    /// The miss path: join or lead the flight for `skey`.
    pub(crate) async fn load<M, R, F>(&self, skey: String, options: LoadOptions, fut: F) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        loop {
            match self.inner.flights.join(&skey) {
                Role::Follower(follower) => {
                    if let Some(value) = follower
                        .wait()
                        .await
                        .and_then(|entry| entry.downcast::<M::Value>())
                    {
                        return M::wrap(M::Value::clone(&value));
                    }
                    // The leader failed, was cancelled, or loaded another type: look again.
                    if let Some(value) = self.l1_get::<M::Value>(&skey) {
                        return M::wrap(value);
                    }
                }
                Role::Leader(leader) => {
                    return self.lead::<M, R, F>(leader, &skey, &options, fut).await
                }
            }
        }
    }

    /// Loads `skey` for every caller waiting on it: from L2, else by running `fut`.
    async fn lead<M, R, F>(
        &self,
        leader: Leader<'_>,
        skey: &str,
        options: &LoadOptions,
        fut: F,
    ) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        let ttl = self.ttl_or_default(options.ttl);
        let fingerprint = self.fingerprint::<M::Value>(options.version);
        let tag_keys: Vec<String> = options
            .tags
            .iter()
            .map(|t| self.inner.layout.tag_key(t))
            .collect();
        let seen = match &self.inner.l2 {
            None => {
                self.register_local_tags(&tag_keys, skey);
                Seen::Unknown
            }
            Some(l2) => match self
                .l2_lookup::<M::Value>(l2, skey, fingerprint, &tag_keys, ttl)
                .await
            {
                Lookup::Hit(value, remaining) => {
                    let out = M::Value::clone(&value);
                    self.land_l2_hit(leader, value, remaining, ttl);
                    return M::wrap(out);
                }
                Lookup::Miss(seen) => seen,
                Lookup::Failed(err) => {
                    // Fail open: the function still answers while Redis is away.
                    tracing::warn!(key = %skey, error = %err, "cache: Redis unavailable, loading without it");
                    Seen::Unknown
                }
            },
        };
        tracing::debug!(key = %skey, "cache miss: loading");
        let r = fut.await;
        let Some(value) = M::split(&r) else {
            leader.land(&self.inner.l1, None, false);
            return r;
        };
        let value = Arc::new(value);
        let store = match (&self.inner.l2, seen) {
            (Some(l2), Seen::Absent) => self.fill(l2, skey, None, &*value, fingerprint, ttl).await,
            (Some(l2), Seen::Bytes(seen)) => {
                self.fill(l2, skey, Some(&seen), &*value, fingerprint, ttl)
                    .await
            }
            _ => true,
        };
        leader.land(&self.inner.l1, Some(Entry::new(value, ttl)), store);
        r
    }

    /// Stores a loaded value in L2 unless the key changed since the load began. Returns
    /// whether L1 may keep the value too.
    async fn fill<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        seen: Option<&[u8]>,
        value: &T,
        fingerprint: u64,
        ttl: Duration,
    ) -> bool {
        let bytes = match self.encode(skey, value, fingerprint, ttl) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(key = %skey, error = %err, "cache: value kept in this process only");
                return true;
            }
        };
        match l2.fill(skey, seen, &bytes, ttl).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(key = %skey, "cache: the key changed while loading; the loaded value is not cached");
                false
            }
            Err(err) => {
                tracing::warn!(key = %skey, error = %err, "cache: Redis unavailable, value kept in this process only");
                true
            }
        }
    }
}
