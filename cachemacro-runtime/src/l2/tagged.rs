//! Reads that register their keys under their tags first (see `READ_MANY`): in one script
//! on a single server; on a cluster, where a key and its tags' sets live in different
//! slots, the registrations one key at a time, then one read per slot.

use redis::Value;

use super::{millis, read_answer, slot, FillIf, Read, Registration, TagKeys, L2};
use crate::link::{Access, Fault};

impl L2 {
    /// Reads every key of `keys` as [`read`](Self::read) does, after registering each
    /// under its tags (`tags[i]` for `keys[i]`; empty when untagged) and checking that
    /// they still list it (see `READ_MANY`): one script, one round trip on a single
    /// server. On a cluster, where tags and keys live in different slots, the registrations
    /// go first, then one read per slot, each step concurrently.
    pub(crate) async fn read_many<T: AsRef<[TagKeys]>>(
        &self,
        keys: &[String],
        tags: &[T],
        registration: &Registration,
        limit: usize,
    ) -> Result<Vec<Read>, Fault> {
        use futures_util::future::try_join_all;
        // Input: the keys and their tags. Output: the distinct tags, each with the indices
        // of the keys registered under it.
        let mut by_tag: Vec<(&TagKeys, Vec<usize>)> = Vec::new();
        for (i, key_tags) in tags.iter().enumerate() {
            for tag in key_tags.as_ref() {
                match by_tag.iter_mut().find(|(t, _)| t.live == tag.live) {
                    Some((_, indices)) => indices.push(i),
                    None => by_tag.push((tag, vec![i])),
                }
            }
        }
        let keep = millis(registration.keep);
        // On a cluster: whether every tag listed each key before this registration.
        let mut listed = vec![true; keys.len()];
        if self.cluster && !by_tag.is_empty() {
            let pairs: Vec<(&TagKeys, usize)> = by_tag
                .iter()
                .flat_map(|(tag, indices)| indices.iter().map(move |&i| (*tag, i)))
                .collect();
            let found = try_join_all(
                pairs
                    .iter()
                    .map(|&(tag, i)| self.register_alone(tag, &keys[i], registration)),
            )
            .await?;
            for (&(_, i), was) in pairs.iter().zip(found) {
                listed[i] &= was;
            }
            by_tag.clear();
        }
        let mut reads: Vec<Option<Read>> = (0..keys.len()).map(|_| None).collect();
        let groups = self.slot_groups(keys);
        // The groups are read concurrently: one round trip of latency on a cluster too.
        let by_tag = &by_tag;
        let answers = try_join_all(groups.iter().map(|group| async move {
            // On a cluster one group is one slot: its first key names it.
            let first = group.first().map_or("", |&i| keys[i].as_str());
            self.skip_doubted(first, Access::Read)?;
            let mut invocation = self.read_many.prepare_invoke();
            for &i in group {
                invocation.key(&keys[i]);
            }
            invocation.arg(limit).arg(group.len());
            if !by_tag.is_empty() {
                // A single server: the whole batch is one group, indices are 1-based.
                invocation
                    .arg(registration.deadline_ms)
                    .arg(registration.now_ms)
                    .arg(keep)
                    .arg(registration.tombstone.as_slice())
                    .arg(millis(registration.tombstone_ttl))
                    .arg(u8::from(self.legacy_tags));
                let mut indices = String::new();
                for (tag, _) in by_tag {
                    invocation.key(&tag.live).key(&tag.legacy).key(&tag.pending);
                }
                for (_, members) in by_tag {
                    indices.clear();
                    for i in members {
                        indices.push_str(&(i + 1).to_string());
                        indices.push(' ');
                    }
                    invocation.arg(indices.as_str());
                }
            }
            self.noted(
                first,
                self.invoke::<Vec<Value>>(Access::Read, &invocation).await,
            )
        }))
        .await?;
        for (group, values) in groups.iter().zip(answers) {
            for (&i, value) in group.iter().zip(values) {
                reads[i] = Some(read_answer(value));
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for (i, read) in reads.into_iter().enumerate() {
            let read = read.unwrap_or(Read::Absent);
            out.push(if listed[i] {
                read
            } else {
                self.bury_unlisted(&keys[i], read, registration, limit)
                    .await?
            });
        }
        Ok(out)
    }

    /// The indices of `keys`, grouped so that one script can touch each group: all of them
    /// on a single server, one group per hash slot on a cluster.
    fn slot_groups(&self, keys: &[String]) -> Vec<Vec<usize>> {
        if !self.cluster {
            return vec![(0..keys.len()).collect()];
        }
        let mut groups: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (i, key) in keys.iter().enumerate() {
            groups.entry(slot(key.as_bytes())).or_default().push(i);
        }
        groups.into_values().collect()
    }

    /// Registers `key` under each of `tags`, then reads it (see [`read`](Self::read)).
    /// Registering before reading is what lets a tag invalidation that comes later find
    /// this key, even while it is still loading.
    pub(crate) async fn read_tagged(
        &self,
        key: &str,
        tags: &[TagKeys],
        registration: &Registration,
        limit: usize,
    ) -> Result<Read, Fault> {
        if tags.is_empty() {
            return self.read(key, limit).await;
        }
        let mut reads = self
            .read_many(&[key.to_owned()], &[tags], registration, limit)
            .await?;
        Ok(reads.pop().unwrap_or(Read::Absent))
    }

    /// Registers `key` under `tag` on its own (a cluster, where the tag's sets and the key
    /// live in different slots): the sorted set, then the older versions' set. Returns
    /// whether the tag listed the key already (in either, or in its pending set).
    async fn register_alone(
        &self,
        tag: &TagKeys,
        key: &str,
        registration: &Registration,
    ) -> Result<bool, Fault> {
        let keep = millis(registration.keep);
        let mut register = self.register.key(&tag.live);
        register
            .arg(key)
            .arg(registration.deadline_ms)
            .arg(registration.now_ms)
            .arg(keep);
        self.skip_doubted(&tag.live, Access::Read)?;
        let live = self.noted(&tag.live, self.invoke::<i64>(Access::Read, &register).await)?;
        let mut legacy = self.register_legacy.key(&tag.legacy);
        legacy.arg(key).arg(keep).arg(u8::from(self.legacy_tags));
        self.skip_doubted(&tag.legacy, Access::Read)?;
        let old = self.noted(&tag.legacy, self.invoke::<i64>(Access::Read, &legacy).await)?;
        if live == 1 || old == 1 {
            return Ok(true);
        }
        // An invalidation of the tag under way took the key and will tombstone it.
        let mut pending = redis::cmd("ZSCORE");
        pending.arg(&tag.pending).arg(key);
        let pending: Option<String> =
            self.noted(&tag.pending, self.link.query(Access::Read, &pending).await)?;
        Ok(pending.is_some())
    }

    /// On a cluster, where a key and its tags' sets cannot be read in one script: replaces
    /// `read`, a value a tag did not list, with the registration's tombstone if the key
    /// still holds it (see `READ_MANY`). Between the registration and this, another
    /// reader can still take the value for listed: the one window a single server does not
    /// have.
    async fn bury_unlisted(
        &self,
        key: &str,
        read: Read,
        registration: &Registration,
        limit: usize,
    ) -> Result<Read, Fault> {
        let Read::Bytes(bytes) = read else {
            return Ok(read);
        };
        if matches!(
            crate::envelope::parse(&bytes),
            crate::envelope::Stored::Tombstone
        ) {
            return Ok(Read::Bytes(bytes));
        }
        let epoch = self.link.epoch();
        self.fill(
            key,
            FillIf::Same(&bytes),
            &registration.tombstone,
            registration.tombstone_ttl,
            limit,
            epoch,
        )
        .await?;
        // Buried, or the key changed meanwhile: either way the value read is not served,
        // and a load's fill against the tombstone fails if the key changed.
        Ok(Read::Lost(registration.tombstone.clone()))
    }
}
