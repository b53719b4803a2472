//! A tag's sets in Redis: the live registrations (a sorted set: storage key -> the
//! deadline until which its entry can be alive), the pending set (what an invalidation of
//! the tag still has to tombstone) and the older versions' plain set.
//!
//! On a single server, moving the live registrations into the pending set is one script
//! over the two keys. On a cluster it is done one key at a time, in an order that loses
//! nothing when it stops half-way: copy into the pending set, then remove from the live set
//! only what did not change meanwhile. A script over several keys of one slot would be
//! refused with `TRYAGAIN` for as long as that slot migrates with some of the keys on each
//! side, and a tag's pending set is usually absent, so a reshard of the tag's slot would
//! make every `invalidate_tag` of it fail for the whole migration.

use once_cell::sync::Lazy;
use redis::Script;

use super::{TagKeys, L2};
use crate::link::{Access, Fault};

/// How many members one step of a cluster's take moves.
const CHUNK: usize = 500;

/// The end of a script that added to the pending set `pending`: drops the members whose
/// deadline is before ARGV[1] (now, ms), keeps the set as long as its last member can live
/// (plus a minute for clock skew), and returns how many it holds.
macro_rules! settle_pending {
    () => {
        r"
redis.call('ZREMRANGEBYSCORE', pending, '-inf', '(' .. ARGV[1])
local last = redis.call('ZRANGE', pending, -1, -1, 'WITHSCORES')
if last[2] then
    redis.call('PEXPIREAT', pending, math.floor(tonumber(last[2])) + 60000)
end
return redis.call('ZCARD', pending)
"
    };
}

/// Moves a tag's live registrations into its pending set (what an invalidation of the tag
/// still has to tombstone), atomically: a load that registers afterwards starts a new set.
/// The pending set lives as long as its last member can (plus a minute for clock skew).
/// KEYS[1]: the tag's sorted set; KEYS[2]: its pending set. ARGV[1]: now (ms).
static TAKE: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        r"
local pending = KEYS[2]
redis.call('ZUNIONSTORE', pending, 2, pending, KEYS[1], 'AGGREGATE', 'MAX')
redis.call('DEL', KEYS[1])
",
        settle_pending!()
    ))
});

/// Moves the members of an older version's set (KEYS[1]) into a pending set (KEYS[2]),
/// with deadline ARGV[1]: one server only (the two keys may be in different slots).
static TAKE_LEGACY: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
for _, member in ipairs(members) do
    redis.call('ZADD', KEYS[2], 'GT', ARGV[1], member)
end
return #members
",
    )
});

/// Removes each member ARGV[2i-1] from the pending set KEYS[1] if its score is still
/// ARGV[2i]: an invalidation that came meanwhile and re-added it keeps it there.
static FORGET: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local removed = 0
for i = 1, #ARGV, 2 do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
        removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
    end
end
return removed
",
    )
});

/// Adds members to the pending set KEYS[1] (ARGV[2i]: a deadline, ARGV[2i + 1]: the
/// member; a member there already keeps the later deadline), drops those whose deadline is
/// before ARGV[1] (now, ms), keeps the set as long as its last member can live (plus a
/// minute for clock skew), and returns how many it holds: `TAKE`'s second half, for one
/// key of a cluster.
static PEND: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        r"
local pending = KEYS[1]
for i = 2, #ARGV, 2 do
    redis.call('ZADD', pending, 'GT', ARGV[i], ARGV[i + 1])
end
",
        settle_pending!()
    ))
});

impl L2 {
    /// Moves every live registration of a tag (and those of older versions) into the
    /// tag's pending set; returns how many members it holds. `legacy_deadline_ms` is the
    /// deadline given to members taken from the older versions' set, which has none.
    pub(crate) async fn take_tag(
        &self,
        tag: &TagKeys,
        now_ms: u64,
        legacy_deadline_ms: u64,
    ) -> Result<u64, Fault> {
        if self.cluster {
            return self.take_tag_apart(tag, now_ms, legacy_deadline_ms).await;
        }
        let mut take = TAKE_LEGACY.key(&tag.legacy);
        take.key(&tag.pending).arg(legacy_deadline_ms);
        self.invoke::<i64>(Access::Write, &take).await?;
        let mut take = TAKE.key(&tag.live);
        take.key(&tag.pending).arg(now_ms);
        self.invoke(Access::Write, &take).await
    }

    /// The keys registered under a tag that may still be alive, without moving them (for
    /// when Redis takes no writes).
    pub(crate) async fn live_members(
        &self,
        tag: &TagKeys,
        now_ms: u64,
    ) -> Result<Vec<String>, Fault> {
        let mut live = redis::cmd("ZRANGEBYSCORE");
        live.arg(&tag.live).arg(now_ms).arg("+inf");
        let mut members: Vec<String> = self.link.query(Access::Write, &live).await?;
        let mut legacy = redis::cmd("SMEMBERS");
        legacy.arg(&tag.legacy);
        members.extend(
            self.link
                .query::<Vec<String>>(Access::Write, &legacy)
                .await?,
        );
        Ok(members)
    }

    /// Up to `count` members of a tag's pending set, with their scores.
    pub(crate) async fn pending(
        &self,
        tag: &TagKeys,
        count: usize,
    ) -> Result<Vec<(String, String)>, Fault> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(&tag.pending)
            .arg(0)
            .arg(count.saturating_sub(1))
            .arg("WITHSCORES");
        self.link.query(Access::Write, &cmd).await
    }

    /// Removes `members` from a tag's pending set, each only if its score did not change.
    pub(crate) async fn forget(
        &self,
        tag: &TagKeys,
        members: &[(String, String)],
    ) -> Result<(), Fault> {
        let mut forget = FORGET.key(&tag.pending);
        for (member, score) in members {
            forget.arg(member).arg(score);
        }
        self.invoke::<i64>(Access::Write, &forget).await.map(drop)
    }

    /// [`take_tag`](Self::take_tag) on a cluster, one key per call (see the module's
    /// documentation): each chunk of the older versions' set is added to the pending set,
    /// then removed from the set it came from; each chunk of the live set likewise, removed
    /// only where its deadline did not change (a load that registered again meanwhile stays
    /// registered for the next invalidation, and its key is tombstoned by this one all the
    /// same). Stopped half-way by a fault, it leaves every member in the pending set, the
    /// set it came from, or both: calling it again finishes the job.
    async fn take_tag_apart(
        &self,
        tag: &TagKeys,
        now_ms: u64,
        legacy_deadline_ms: u64,
    ) -> Result<u64, Fault> {
        let deadline = legacy_deadline_ms.to_string();
        self.scan_chunks("SSCAN", &tag.legacy, |members: Vec<String>| {
            let deadline = &deadline;
            async move {
                let mut pend = PEND.key(&tag.pending);
                pend.arg(now_ms);
                for member in &members {
                    pend.arg(deadline.as_str()).arg(member);
                }
                self.invoke::<i64>(Access::Write, &pend).await?;
                let mut remove = redis::cmd("SREM");
                remove.arg(&tag.legacy).arg(&members);
                self.link
                    .query::<i64>(Access::Write, &remove)
                    .await
                    .map(drop)
            }
        })
        .await?;
        self.scan_chunks("ZSCAN", &tag.live, |flat: Vec<String>| async move {
            // Input: [member, score, member, score...] as ZSCAN answers.
            let pairs: Vec<(String, String)> = flat
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            let mut pend = PEND.key(&tag.pending);
            pend.arg(now_ms);
            for (member, score) in &pairs {
                pend.arg(score).arg(member);
            }
            self.invoke::<i64>(Access::Write, &pend).await?;
            let mut forget = FORGET.key(&tag.live);
            for (member, score) in &pairs {
                forget.arg(member).arg(score);
            }
            self.invoke::<i64>(Access::Write, &forget).await.map(drop)
        })
        .await?;
        let mut pend = PEND.key(&tag.pending);
        pend.arg(now_ms);
        self.invoke(Access::Write, &pend).await
    }

    /// Runs `step` on each chunk of what `scan` (`SSCAN` or `ZSCAN`) returns for `key`,
    /// until the cursor comes back to 0. Every member present from the start of the scan to
    /// its end is in some chunk (some perhaps twice: `step` must not mind).
    async fn scan_chunks<F, Fut>(&self, scan: &str, key: &str, mut step: F) -> Result<(), Fault>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<(), Fault>>,
    {
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd(scan);
            cmd.arg(key).arg(cursor).arg("COUNT").arg(CHUNK);
            let (next, chunk): (u64, Vec<String>) = self.link.query(Access::Write, &cmd).await?;
            if !chunk.is_empty() {
                step(chunk).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
