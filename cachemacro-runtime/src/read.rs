//! The read path: L1, then one load per key at a time (L2, then the function), and the
//! fills that keep a load from undoing an invalidation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::codec;
use crate::envelope::{self, Stored};
use crate::flight::{Leader, Role};
use crate::key::Place;
use crate::l1::Entry;
use crate::l2::L2;
use crate::output::{CacheValue, Mode};
use crate::{Cache, Error};

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

impl Cache {
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
        // Re-entered (a `KeyPart` impl that runs a lookup itself), or called while the thread
        // shuts down: use a fresh buffer instead.
        let reused = KEY
            .try_with(|cell| {
                let mut key = cell.try_borrow_mut().ok()?;
                key.clear();
                self.inner.layout.write_prefix(place, &mut key);
                (write.take()?)(&mut key);
                Some(self.l1_get::<T>(&key).ok_or_else(|| key.clone()))
            })
            .ok()
            .flatten();
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

    /// Reads `skey` from L2 as a `T`.
    async fn l2_lookup<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        fingerprint: u64,
        tag_keys: &[String],
        ttl: Duration,
    ) -> Lookup<T> {
        if let Some(retry_in) = self.inner.breaker.open_for() {
            return Lookup::Failed(Error::Unavailable { retry_in });
        }
        let read = if tag_keys.is_empty() {
            l2.get(skey).await
        } else {
            // The tag sets outlive the value: it is written up to a load's time after now.
            l2.get_tagged(skey, tag_keys, ttl + self.inner.tombstone_ttl)
                .await
        };
        self.inner.breaker.record(&read);
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
                    crate::stats::bump(&self.inner.counters.l2_hits);
                    return Lookup::Hit(Arc::new(value), remaining);
                }
                Err(err) => format!("undecodable value ({err})"),
            },
            Stored::Value { .. } => "a value of another type or version".to_owned(),
            Stored::Tombstone => return Lookup::Miss(Seen::Bytes(bytes)),
            Stored::Foreign(reason) => reason.to_owned(),
        };
        crate::stats::bump(&self.inner.counters.unusable_values);
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
        let leader = match self.follow_or_lead::<T>(skey).await {
            Ok(value) => return Ok(Some(value)),
            Err(leader) => leader,
        };
        let ttl = self.inner.default_ttl;
        match self
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
        }
    }

    /// Joins the flight for `skey`: `Ok` with the value another caller loaded, or `Err`
    /// with the lead when this caller must load it (no flight was in the air, or the one it
    /// waited for failed, was cancelled, or loaded another type).
    async fn follow_or_lead<T: CacheValue>(&self, skey: &str) -> Result<T, Leader<'_>> {
        loop {
            match self.inner.flights.join(skey) {
                Role::Follower(follower) => {
                    if let Some(value) = follower.wait().await.and_then(|e| e.downcast::<T>()) {
                        return Ok(T::clone(&value));
                    }
                    if let Some(value) = self.l1_get::<T>(skey) {
                        return Ok(value);
                    }
                }
                Role::Leader(leader) => return Err(leader),
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

    #[inline]
    pub(crate) fn l1_get<T: CacheValue>(&self, skey: &str) -> Option<T> {
        let value = self.inner.l1.get(skey)?.downcast::<T>()?;
        self.inner.counters.l1_hit();
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
        match self.follow_or_lead::<M::Value>(&skey).await {
            Ok(value) => M::wrap(value),
            Err(leader) => self.lead::<M, R, F>(leader, &skey, &options, fut).await,
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
        let ttl = self.jittered(self.ttl_or_default(options.ttl));
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
        crate::stats::bump(&self.inner.counters.loads);
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
        if store && leader.is_stale() {
            // Invalidated in this process while loading: the flight keeps it out of L1.
            crate::stats::bump(&self.inner.counters.stale_loads_dropped);
        }
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
        if self.inner.breaker.open_for().is_some() {
            return true;
        }
        let filled = l2.fill(skey, seen, &bytes, ttl).await;
        self.inner.breaker.record(&filled);
        match filled {
            Ok(true) => true,
            Ok(false) => {
                crate::stats::bump(&self.inner.counters.stale_loads_dropped);
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
