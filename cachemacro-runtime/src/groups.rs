//! Invalidating groups of entries at once: group versions, tags, namespace purge.

use std::collections::HashSet;
use std::time::Duration;

use crate::bus::{bands, Message};
use crate::envelope;
use crate::l2::{TagKeys, L2};
use crate::link::Fault;
use crate::throttle::warn_throttled;
use crate::{Cache, Error};

/// How long a purge waits between telling the instances and deleting: the time an
/// invalidation message takes to reach them (see the README's guarantees).
const PURGE_SETTLE: Duration = Duration::from_millis(100);

/// How many keys one round trip of a tag invalidation tombstones.
const TAG_BATCH: usize = 500;

/// How long members taken from an older version's tag set (which has no deadlines) stay
/// pending when their invalidation fails.
const LEGACY_DEADLINE: Duration = Duration::from_secs(24 * 3600);

impl Cache {
    /// Removes every entry of this cache's namespace from Redis (a `SCAN` over
    /// `<namespace>:*`, in batches that do not block the server, that buries each value
    /// under a tombstone for `tombstone_ttl`, as [`remove`](Self::remove) does, and keeps
    /// the removals' tombstones), and clears this process's L1 and every peer's. Returns
    /// how many Redis keys it purged (0 without Redis). Tag registrations and group
    /// versions are kept.
    ///
    /// This is the seeds' *namespace purge*: for starting afresh after a migration (write
    /// the data, then purge), or for tests. Every instance is told first, so that no load
    /// in flight on any of them stores what it read before the purge; the deletion starts a
    /// moment later (100 ms, the bus delivery bound), so it costs at least that.
    ///
    /// When it fails half-way, the keys it deleted are gone and the local and peers' copies
    /// are still cleared; calling it again finishes the job.
    pub async fn purge(&self) -> Result<u64, Error> {
        self.purge_at(self.inner.layout.root()).await
    }

    pub(crate) async fn purge_at(&self, prefix: &str) -> Result<u64, Error> {
        tracing::debug!(target: "cachemacro", %prefix, "invalidation: purge");
        let clear_prefix = if prefix == self.inner.layout.root() {
            ""
        } else {
            prefix
        };
        let Some(l2) = &self.inner.l2 else {
            self.clear_memory_at(clear_prefix);
            return Ok(0);
        };
        // First every instance drops its copies and marks its loads in flight stale, so
        // that none of them stores what it read before the purge; the deletion waits for
        // the message to arrive (the bus bound), or such a load could fill a key the scan
        // has already passed.
        self.clear_at(clear_prefix).await?;
        tokio::time::sleep(PURGE_SETTLE).await;
        // The prefix is escaped (see `key`), so it holds no glob characters of its own.
        // Tag registrations stay, or entries loaded while the purge runs would escape their
        // tags' invalidations; so do group versions, which must never go back.
        let root = self.inner.layout.root();
        let keep = ["tz:", "tp:", "t:", "v:"].map(|kind| format!("{root}{kind}"));
        // Values are buried under a tombstone rather than deleted (see `l2::purge`).
        let tombstone = envelope::tombstone(self.inner.instance);
        let scoped = format!("{root}s:");
        let burial = crate::l2::Burial {
            tombstone: &tombstone,
            ttl: self.inner.tombstone_ttl,
            values: [&self.inner.unscoped_prefix, &scoped],
        };
        let deleted = l2
            .scan_bury(&format!("{prefix}*"), &keep, &burial)
            .await
            .map_err(|f| Error::from_fault("purge", f));
        // Whatever Redis did, drop the copies read while it ran, here and on the peers: a
        // purge that failed half-way deleted some keys already.
        let cleared = self.clear_at(clear_prefix).await;
        let deleted = deleted?;
        cleared?;
        Ok(deleted)
    }

    /// The current version of `group`: 0 until [`bump_version`](Self::bump_version) is first
    /// called. Put it in the keys of everything in the group, and one bump retires them all
    /// at once (the *versioned keys* pattern):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
    /// # let cache = cachemacro::Cache::in_memory();
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
    /// versions are never read again and end with their TTL.
    ///
    /// With Redis the version is shared by every instance, and this process keeps it in
    /// memory: reading it is a lookup, a bump elsewhere reaches it over the bus, and it is
    /// read again from Redis after [`version_refresh`](crate::CacheBuilder::version_refresh)
    /// (and after the bus dropped; and on every call while the bus is down but Redis is
    /// not, when a bump could land unheard). It never goes back, and it fails open: when Redis
    /// cannot be read, the last known version is returned (0 if none), so a Redis fault
    /// does not fail the reads that use it. Only while instances of 0.1 may share the
    /// namespace ([`compat_0_1`](crate::CacheBuilder::compat_0_1), on by default in 0.2)
    /// does it return [`Error::Unavailable`] or [`Error::Redis`] when the version is older
    /// than 50 ms and Redis cannot be read: 0.1 announces no bump, so the last known
    /// version may be stale.
    pub async fn version(&self, group: &str) -> Result<u64, Error> {
        let versions = &self.inner.versions;
        // While this instance cannot hear the bus but Redis takes bumps, what it knows may
        // be behind another instance's bump: Redis is asked every time (as L1 is bypassed).
        if let Some(version) = versions.fresh(group).filter(|_| self.l1_trusted()) {
            return Ok(version);
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(versions.last_known(group));
        };
        let key = self.inner.layout.version_key(group);
        match l2.counter(&key).await {
            Ok(version) if version < versions.last_known(group) => {
                Ok(self.restore_version(l2, group, &key).await)
            }
            Ok(version) => Ok(versions.raise(group, version)),
            // Instances of 0.1 announce no bump: a version that cannot be confirmed may be
            // stale, and 0.1 itself answers an error here.
            Err(fault) if self.inner.compat_0_1 => Err(Error::from_fault("read version", fault)),
            Err(fault) => {
                if !matches!(fault, Fault::Unavailable) {
                    warn_throttled!(group, error = %fault, "cache: could not read a group version from Redis; using the last one known");
                }
                Ok(versions.last_known(group))
            }
        }
    }

    /// The version of `group` after Redis was found holding less than this instance knew:
    /// the counter was lost (a restart without persistence, a failover), or an instance of
    /// 0.1 purged the namespace and counts from 1 again. Neither may bring back a version
    /// that entries are cached under, nor leave this instance and 0.1 on two versions: the
    /// counter is moved past what this instance knew, as a bump would, and the others are
    /// told. Fails open, as [`version`](Self::version).
    async fn restore_version(&self, l2: &crate::l2::L2, group: &str, key: &str) -> u64 {
        let versions = &self.inner.versions;
        let known = versions.last_known(group);
        match l2.restore(key, known, envelope::now_ms()).await {
            Ok((version, moved)) => {
                let version = versions.raise(group, version);
                if moved {
                    tracing::info!(target: "cachemacro", %group, version, "cache: a group version in Redis went back (lost, or purged by an older instance); moved it past the last one known");
                    let _ = self
                        .publish(Message::Version {
                            group: group.to_owned(),
                            version,
                        })
                        .await;
                }
                version
            }
            Err(_) => known,
        }
    }

    /// Moves `group` to a new version, retiring every entry keyed with an older one, here
    /// at once and on every instance when the bus message arrives; returns the new version.
    /// See [`version`](Self::version).
    ///
    /// A version only grows. Without Redis it counts 1, 2, 3...; with Redis a bump gives
    /// one more than the last version or the current time in milliseconds, whichever is
    /// larger, so that a Redis that lost its data (a restart without persistence, a
    /// failover to a replica that lagged) never hands out a version again that entries
    /// are already cached under.
    pub async fn bump_version(&self, group: &str) -> Result<u64, Error> {
        tracing::debug!(target: "cachemacro", %group, "invalidation: version bump");
        let versions = &self.inner.versions;
        let Some(l2) = &self.inner.l2 else {
            return Ok(versions.bump(group));
        };
        let key = self.inner.layout.version_key(group);
        let version = l2
            .bump(&key, envelope::now_ms())
            .await
            .map_err(|f| Error::from_fault("bump version", f))?;
        let version = versions.raise(group, version);
        self.publish(Message::Version {
            group: group.to_owned(),
            version,
        })
        .await?;
        Ok(version)
    }

    /// Removes, everywhere, every entry that depends on `tag`: the seeds' *dependency
    /// tracking*. A function declares its tags as templates, `#[cached(key =
    /// "orders:<user_id>", tags = ["user:<user_id>"])]`; `invalidate_tag("user:42")` then
    /// removes the orders of user 42 together with anything else tagged `user:42`, here and
    /// on every instance. Returns how many entries were removed.
    ///
    /// Tags are registered when a load begins (in the same round trip as the L2 read), so an
    /// invalidation that comes while a load is in flight finds it, and the load's fill then
    /// fails as it does after [`remove`](Self::remove). A tag's registrations in Redis are
    /// kept only while their entries can be alive, so a tag on every entry stays as large
    /// as the entries that still live.
    ///
    /// Each instance also registers the tags of its own loads in memory, so that this call
    /// (and the bus message it sends the others) drops every L1 copy even when Redis lost
    /// or evicted the tag's set; a value Redis still holds that its tag no longer lists is
    /// never served (the next tagged read replaces it). That registry costs about 140
    /// bytes per entry with one tag of its own (`user:<id>`; the memory bench measures it),
    /// less for a tag shared by many entries, and sweeps what L1 no longer holds whenever
    /// it doubles.
    ///
    /// When it returns an error (Redis refused a write, say for lack of memory), the
    /// entries it could not reach stay registered: calling it again finishes the job.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        tracing::debug!(target: "cachemacro", %tag, "invalidation: tag");
        let keys = self.tag_keys(tag);
        // This process's own entries, from its own registry: found even when Redis lost the
        // tag's set (evicted, or lost in a restart or failover).
        let local = self.take_local_tag(tag);
        let Some(l2) = &self.inner.l2 else {
            return Ok(local.len() as u64);
        };
        let fault = |f| Error::from_fault("invalidate tag", f);
        let now_ms = envelope::now_ms();
        let legacy_deadline = now_ms + LEGACY_DEADLINE.as_millis() as u64;
        if let Err(taken) = l2.take_tag(&keys, now_ms, legacy_deadline).await {
            if taken.code() == Some("OOM") {
                // Redis takes no writes: the registrations stay where they are, for the
                // retry; meanwhile the values are deleted and the peers told, which Redis
                // still allows.
                if let Ok(members) = l2.live_members(&keys, now_ms).await {
                    let _ = self.tombstone_keys(l2, &members).await;
                }
            }
            return Err(fault(taken));
        }
        // Each entry counts once, found here, in Redis or both.
        let mut removed = local.len() as u64;
        loop {
            let batch = l2.pending(&keys, TAG_BATCH).await.map_err(fault)?;
            if batch.is_empty() {
                break;
            }
            let members: Vec<String> = batch.iter().map(|(m, _)| m.clone()).collect();
            self.tombstone_keys(l2, &members).await.map_err(fault)?;
            l2.forget(&keys, &batch).await.map_err(fault)?;
            removed += members
                .iter()
                .filter(|m| !local.contains(m.as_str()))
                .count() as u64;
        }
        // The peers drop their own copies, from their own registries: Redis may have lost
        // (or evicted) what it listed.
        self.publish(Message::Tag(tag.to_owned())).await?;
        Ok(removed)
    }

    /// Drops the entries registered under `tag` in this process only; returns how many.
    pub(crate) fn remove_local_tag(&self, tag: &str) -> u64 {
        self.take_local_tag(tag).len() as u64
    }

    /// Drops the entries registered under `tag` in this process; returns the keys of those
    /// that were cached or loading.
    fn take_local_tag(&self, tag: &str) -> HashSet<Box<str>> {
        // Logged first: a load whose body chose the tag after this registry was taken
        // finds it in the log.
        self.inner.tag_log.record(tag);
        let mut removed = self.inner.local_tags.take(tag);
        removed.retain(|key| {
            let live = self.is_live_at(key);
            self.remove_local_at(key);
            live
        });
        removed
    }

    /// Writes a tombstone over each of `keys`, tells the peers, and drops the local copies.
    pub(crate) async fn tombstone_keys(&self, l2: &L2, keys: &[String]) -> Result<(), Fault> {
        let tombstone = envelope::tombstone(self.inner.instance);
        let messages: Vec<String> = match &self.inner.bus {
            Some(bus) => keys
                .iter()
                .map(|k| bus.payload(&Message::Remove(k.clone())))
                .collect(),
            None => Vec::new(),
        };
        let channel = self.inner.bus.as_ref().map(|bus| {
            (
                bus.channel(),
                messages.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        let written = l2
            .write_all(keys, &tombstone, self.inner.tombstone_ttl, channel)
            .await;
        for key in keys {
            self.remove_local_at(key);
        }
        written
    }

    /// The Redis keys of `tag`.
    pub(crate) fn tag_keys(&self, tag: &str) -> TagKeys {
        let root = self.inner.layout.root();
        // `{...}` puts a tag's registrations and its pending set in one cluster slot, so
        // that one script can move the first into the second.
        TagKeys {
            name: tag.to_owned(),
            live: format!("{root}tz:{{{tag}}}"),
            pending: format!("{root}tp:{{{tag}}}"),
            legacy: self.inner.layout.tag_key(tag),
        }
    }

    /// Records in this process that `skey` depends on each of `tags` (when its load
    /// begins, with or without Redis).
    pub(crate) fn register_local_tags(&self, tags: &[TagKeys], skey: &str) {
        if tags.is_empty() {
            return;
        }
        // A key whose load is still in flight is live: its registration must survive until
        // it lands.
        self.inner
            .local_tags
            .register(tags.iter().map(|t| t.name.as_str()), skey, |key| {
                self.is_live_at(key)
            });
        // Registered after a band went unheard (its taint was taken before): the entry
        // waits for the tag's band too. Nothing to do while every band is heard.
        if let Some(hearing) = self.inner.bus.as_ref().map(|bus| bus.hearing()) {
            if !hearing.all() {
                hearing.taint(skey, bands::bits_of(tags.iter().map(|t| t.name.as_str())));
            }
        }
    }

    /// Whether L1 keeps `skey`, fresh or stale (a stale value can still be served), or a
    /// load of it is in flight.
    fn is_live_at(&self, skey: &str) -> bool {
        self.inner.l1.get_kept(skey).is_some() || self.inner.flights.is_in_flight(skey)
    }
}
