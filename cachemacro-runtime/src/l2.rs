//! L2: values in Redis, shared by every instance. Speaks Redis commands and nothing else.
//!
//! Every command goes through the supervised [`Link`], bounded by the Redis timeout.

mod doubts;
mod purge;
mod tagged;
mod tags;

pub(crate) use doubts::parse_cluster_slots;
pub(crate) use purge::Burial;

use std::time::Duration;

use redis::{Pipeline, Script, Value};

use crate::bus::BusChannels;
use crate::link::{Access, Fault, Link};

/// What a read found under a key.
#[derive(Debug)]
pub(crate) enum Read {
    Absent,
    /// The first bytes stored (at most the read limit + 1: more than the limit means the
    /// value is too large to use).
    Bytes(Vec<u8>),
    /// A value of another Redis type (a list, a hash...).
    WrongType,
    /// A value was there that one of the tags being registered did not list (Redis evicted
    /// or lost the tag's set, so an invalidation of the tag could have missed it): it was
    /// replaced with the registration's tombstone, which this holds.
    Lost(Vec<u8>),
}

/// What a fill requires the key to still hold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FillIf<'a> {
    Absent,
    /// These bytes (as [`Read::Bytes`] returned them).
    Same(&'a [u8]),
    /// A value of another Redis type, to be replaced.
    WrongType,
}

impl FillIf<'_> {
    /// The FILL script's mode and digest for this condition. `Absent` is first tried with
    /// `SET NX`; the script's form of it then stores over a foreign empty string (which
    /// reads exactly like an absent key).
    fn script_condition(self) -> (&'static str, String) {
        match self {
            FillIf::Absent => ("same", sha1_hex(b"")),
            FillIf::Same(seen) => ("same", sha1_hex(seen)),
            FillIf::WrongType => ("type", String::new()),
        }
    }
}

/// One tag's registration alone (a cluster, where the tag and the key live in different
/// slots). KEYS[1]: the sorted set; ARGV[1]: the member; ARGV[2..4] as above. Returns 1
/// when the member was listed already (alive), else 0.
const REGISTER: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'GT')
if score and tonumber(score) >= tonumber(ARGV[3]) then return 1 end
return 0
";

/// Adds ARGV[1] to the older versions' set KEYS[1] when there is one (an older instance
/// of the service uses it), or always when ARGV[3] is `1` (instances of 0.1 may share the
/// namespace: their `invalidate_tag` reads only that set). Returns 1 when it was a member
/// already, else 0.
const REGISTER_LEGACY: &str = r"
if ARGV[3] == '1' or redis.call('EXISTS', KEYS[1]) == 1 then
    local was = redis.call('SADD', KEYS[1], ARGV[1]) == 0
    redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
    redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
    if was then return 1 end
end
return 0
";

/// Stores a loaded value only if the key still holds what the load saw, so a load never
/// undoes a removal that happened while it ran (the removal replaced what it saw with a
/// unique tombstone). What was seen travels as a SHA-1, never whole.
///
/// KEYS[1]: the key. ARGV[1]: `same` (the key holds a string whose first ARGV[5] + 1 bytes
/// hash to ARGV[2]) or `type` (the key holds another Redis type); ARGV[3]: the value;
/// ARGV[4]: its TTL in ms.
const FILL: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if ARGV[1] == 'type' then
    if kind == 'none' or kind == 'string' then return 0 end
    redis.call('DEL', KEYS[1])
elseif kind ~= 'string' or redis.sha1hex(redis.call('GETRANGE', KEYS[1], 0, ARGV[5])) ~= ARGV[2] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// Moves a group version that went back below ARGV[1] (what this instance knew: Redis lost
/// the counter, or an instance of 0.1 purged the namespace, which deletes it, and counts
/// from 1 again) past it, as a bump: to ARGV[1] + 1 or ARGV[2] (the time in ms), whichever
/// is larger. Returns the version and whether it moved it.
const RESTORE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local known = tonumber(ARGV[1])
if current >= known then return {current, 0} end
local version = math.max(known + 1, tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%d', version))
return {version, 1}
";

/// A group version's next value: one more than it was, or ARGV[1] (the time in ms) if that
/// is larger, so that a counter lost with Redis's data never repeats a value.
const BUMP: &str = r"
local version = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if version < floor then
    redis.call('SET', KEYS[1], ARGV[1])
    version = floor
end
return version
";

/// Extends the lease KEYS[1] to ARGV[2] ms if ARGV[1] holds it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Registers keys under their tags, then reads them: one round trip, so that a tag
/// invalidation that comes later finds each key even while it is still loading (a load's
/// lookup, or a batch's).
///
/// A value that one of its tags does not list (a live member of the sorted set, a member
/// of the older versions' set, or of the pending set: an invalidation of the tag under way
/// took it and will tombstone it, the ordinary race of a read with an invalidation) may
/// have escaped an invalidation of that tag: Redis
/// evicted the set (`volatile-lru` evicts keys with a TTL) or lost it. It is replaced with
/// a tombstone, atomically, so that no reader serves it, and the tombstone is returned.
/// Tombstones (`cm`, format 1, kind 2, see `envelope`) are left as they are.
///
/// KEYS[1..ARGV[2]]: the keys to read; the rest: triples of a tag's sorted set, its older
/// versions' set and its pending set. ARGV[1]: how many bytes of each value to read, minus one; ARGV[3..7]: the
/// registrations' deadline, now, how long the tag sets are kept, the tombstone and its TTL
/// (as for one key); ARGV[8]: `1` to register in the older versions' set even when it does
/// not exist (instances of 0.1 may share the namespace); ARGV[8 + t]: the indices in KEYS
/// of the keys registered under the t-th tag pair, space-separated. Answers for each key to read its first bytes, `""` when
/// absent, `0` when it holds another Redis type, and the tombstone in a table of its own
/// when it replaced a value a tag did not list.
const READ_MANY: &str = r"
local n = tonumber(ARGV[2])
local unlisted = {}
for t = 1, (#KEYS - n) / 3 do
    local live, legacy, pending = KEYS[n + 3 * t - 2], KEYS[n + 3 * t - 1], KEYS[n + 3 * t]
    local has_legacy = redis.call('EXISTS', legacy) == 1
    local to_legacy = has_legacy or ARGV[8] == '1'
    for index in string.gmatch(ARGV[8 + t], '%d+') do
        local key = KEYS[tonumber(index)]
        local score = redis.call('ZSCORE', live, key)
        if not (score and tonumber(score) >= tonumber(ARGV[4]))
            and not (has_legacy and redis.call('SISMEMBER', legacy, key) == 1)
            and not redis.call('ZSCORE', pending, key) then
            unlisted[tonumber(index)] = true
        end
        redis.call('ZADD', live, 'GT', ARGV[3], key)
        if to_legacy then
            redis.call('SADD', legacy, key)
        end
    end
    redis.call('ZREMRANGEBYSCORE', live, '-inf', '(' .. ARGV[4])
    redis.call('PEXPIRE', live, ARGV[5], 'NX')
    redis.call('PEXPIRE', live, ARGV[5], 'GT')
    if to_legacy then
        redis.call('PEXPIRE', legacy, ARGV[5], 'NX')
        redis.call('PEXPIRE', legacy, ARGV[5], 'GT')
    end
end
local out = {}
for i = 1, n do
    local read = redis.pcall('GETRANGE', KEYS[i], 0, ARGV[1])
    if type(read) == 'table' and read.err then
        out[i] = 0
    elseif unlisted[i] and read ~= '' and string.sub(read, 1, 4) ~= 'cm\1\2' then
        redis.call('SET', KEYS[i], ARGV[6], 'PX', ARGV[7])
        out[i] = {ARGV[6]}
    else
        out[i] = read
    end
end
return out
";

/// Deletes the lease KEYS[1] if ARGV[1] holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// The Redis keys of one tag.
#[derive(Clone, Debug)]
pub(crate) struct TagKeys {
    /// The tag itself, as the application names it.
    pub(crate) name: String,
    /// The sorted set of registrations: storage key -> deadline.
    pub(crate) live: String,
    /// What an invalidation of the tag still has to tombstone.
    pub(crate) pending: String,
    /// The set older versions of cachemacro register in.
    pub(crate) legacy: String,
}

/// A tag registration: the entry's key can be alive until `deadline_ms`.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) deadline_ms: u64,
    pub(crate) now_ms: u64,
    /// How long the tag's sets are kept.
    pub(crate) keep: Duration,
    /// What replaces a value that a tag does not list (see [`Read::Lost`]), and for how long.
    pub(crate) tombstone: Vec<u8>,
    pub(crate) tombstone_ttl: Duration,
}

impl Registration {
    /// A registration made now, alive for `keep`, that replaces a value a tag does not list
    /// with `tombstone` for `tombstone_ttl`.
    pub(crate) fn now(keep: Duration, tombstone: Vec<u8>, tombstone_ttl: Duration) -> Self {
        let now_ms = crate::envelope::now_ms();
        Self {
            deadline_ms: now_ms.saturating_add(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX)),
            now_ms,
            keep,
            tombstone,
            tombstone_ttl,
        }
    }
}

/// What one answer of `READ_MANY` means.
fn read_answer(value: Value) -> Read {
    match value {
        Value::Int(_) => Read::WrongType,
        Value::Array(mut items) if items.len() == 1 => {
            match redis::from_redis_value::<Vec<u8>>(items.remove(0)) {
                Ok(tombstone) => Read::Lost(tombstone),
                Err(_) => Read::Absent,
            }
        }
        other => match redis::from_redis_value::<Vec<u8>>(other) {
            Ok(bytes) if bytes.is_empty() => Read::Absent,
            Ok(bytes) => Read::Bytes(bytes),
            Err(_) => Read::Absent,
        },
    }
}

/// The shared tier.
#[derive(Clone)]
pub(crate) struct L2 {
    link: Link,
    cluster: bool,
    /// How a bus message is published (`PUBLISH`, `SPUBLISH` or both).
    bus_channels: BusChannels,
    /// Register tags in the older versions' sets too, whether or not they exist (see
    /// [`CacheBuilder::compat_0_1`](crate::CacheBuilder::compat_0_1)).
    legacy_tags: bool,
    /// On a cluster, the nodes whose slots reads skip for now.
    doubts: std::sync::Arc<doubts::Doubts>,
    register: Script,
    register_legacy: Script,
    fill: Script,
    bump: Script,
    restore: Script,
    renew: Script,
    release: Script,
    read_many: Script,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A read's answer: the bytes, "" when absent, or a WRONGTYPE error.
fn classify(read: Result<Vec<u8>, Fault>) -> Result<Read, Fault> {
    match read {
        Ok(bytes) if bytes.is_empty() => Ok(Read::Absent),
        Ok(bytes) => Ok(Read::Bytes(bytes)),
        Err(fault) if fault.code() == Some("WRONGTYPE") => Ok(Read::WrongType),
        Err(fault) => Err(fault),
    }
}

/// The cluster hash slot of `key` (CRC16/XMODEM of the key, or of its `{hash tag}`).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

impl L2 {
    pub(crate) fn new(
        link: Link,
        cluster: bool,
        bus_channels: BusChannels,
        legacy_tags: bool,
    ) -> Self {
        Self {
            link,
            cluster,
            bus_channels,
            legacy_tags,
            doubts: Default::default(),
            register: Script::new(REGISTER),
            register_legacy: Script::new(REGISTER_LEGACY),
            fill: Script::new(FILL),
            bump: Script::new(BUMP),
            restore: Script::new(RESTORE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            read_many: Script::new(READ_MANY),
        }
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// What `key` holds: at most `limit + 1` bytes are transferred, so a value larger than
    /// the limit (say, a foreign 400 MB string) costs no more than the limit to look at.
    pub(crate) async fn read(&self, key: &str, limit: usize) -> Result<Read, Fault> {
        self.skip_doubted(key, Access::Read)?;
        let mut cmd = redis::cmd("GETRANGE");
        cmd.arg(key).arg(0).arg(limit);
        classify(self.noted(key, self.link.query(Access::Read, &cmd).await))
    }

    /// Stores each value of `fills` (key, what it must still hold, bytes) as
    /// [`fill`](Self::fill) does, in one round trip on a single server, and only on the
    /// connection of `epoch`. Returns whether each was stored.
    pub(crate) async fn fill_many(
        &self,
        fills: &[(String, FillIf<'_>, Vec<u8>)],
        ttl: Duration,
        limit: usize,
        epoch: u64,
    ) -> Result<Vec<bool>, Fault> {
        let batch = if self.cluster { 1 } else { fills.len().max(1) };
        // One pipeline on a single server; on a cluster one command per key, concurrently.
        let answers =
            futures_util::future::try_join_all(fills.chunks(batch).map(|chunk| async move {
                let mut pipe = redis::pipe();
                for (key, seen, value) in chunk {
                    match seen {
                        FillIf::Absent => {
                            pipe.cmd("SET")
                                .arg(key)
                                .arg(value)
                                .arg("PX")
                                .arg(millis(ttl))
                                .arg("NX");
                        }
                        FillIf::Same(_) | FillIf::WrongType => {
                            let (mode, digest) = seen.script_condition();
                            pipe.cmd("EVAL")
                                .arg(FILL)
                                .arg(1)
                                .arg(key)
                                .arg(mode)
                                .arg(digest)
                                .arg(value)
                                .arg(millis(ttl))
                                .arg(limit);
                        }
                    }
                }
                let pipe = &pipe;
                self.link
                    .run_on(Access::Read, Some(epoch), |mut conn| async move {
                        pipe.query_async::<Vec<Value>>(&mut conn).await
                    })
                    .await
            }))
            .await?;
        Ok(answers
            .into_iter()
            .flatten()
            .map(|v| {
                matches!(v, Value::Okay | Value::Int(1))
                    || matches!(&v, Value::SimpleString(s) if s == "OK")
            })
            .collect())
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        access: Access,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Fault> {
        self.link
            .run(access, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await
    }

    /// Stores `value` if `key` still holds what `seen` says, and only on the connection of
    /// `epoch` (the one the load read on: a new connection may be to a Redis that restarted
    /// empty, which lost the tombstone of a removal made meanwhile). Returns whether it
    /// stored.
    pub(crate) async fn fill(
        &self,
        key: &str,
        seen: FillIf<'_>,
        value: &[u8],
        ttl: Duration,
        limit: usize,
        epoch: u64,
    ) -> Result<bool, Fault> {
        self.skip_doubted(key, Access::Read)?;
        if let FillIf::Absent = seen {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value).arg("PX").arg(millis(ttl)).arg("NX");
            let stored: Option<String> = self.noted(
                key,
                self.link
                    .run_on(Access::Read, Some(epoch), |mut conn| async move {
                        set.query_async(&mut conn).await
                    })
                    .await,
            )?;
            if stored.is_some() {
                return Ok(true);
            }
            // Something is there: a write that came meanwhile, or a foreign empty string.
        }
        let (mode, digest) = seen.script_condition();
        let mut invocation = self.fill.key(key);
        invocation
            .arg(mode)
            .arg(digest)
            .arg(value)
            .arg(millis(ttl))
            .arg(limit);
        let invocation = &invocation;
        let stored: i64 = self.noted(
            key,
            self.link
                .run_on(Access::Read, Some(epoch), |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await,
        )?;
        Ok(stored == 1)
    }

    /// Stores `value` under `key` unconditionally and, with a bus, publishes `message` on
    /// `channel`: one round trip on a single server, where Redis runs the two in order, so
    /// a peer that receives the message already finds the new value (or tombstone).
    ///
    /// When Redis refuses the write for lack of memory (`OOM`), the old value is deleted
    /// instead (a deletion is always allowed) and the message still published, so no
    /// instance keeps serving it; the error is returned all the same.
    pub(crate) async fn write(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        message: Option<(&str, &str)>,
    ) -> Result<(), Fault> {
        self.write_all(
            &[key.to_owned()],
            value,
            ttl,
            message.map(|(c, m)| (c, vec![m])),
        )
        .await
    }

    /// [`write`](Self::write) for several keys: `value` under each of `keys`, and
    /// `messages[i]` published for `keys[i]`.
    pub(crate) async fn write_all(
        &self,
        keys: &[String],
        value: &[u8],
        ttl: Duration,
        messages: Option<(&str, Vec<&str>)>,
    ) -> Result<(), Fault> {
        // Input: keys [k0, k1...], messages [m0, m1...].
        // Output: one pipeline `SET k0; PUBLISH m0; SET k1; PUBLISH m1...` on a single server;
        // on a cluster, which routes each key and the channel by their own slots, `SET k0`
        // then `PUBLISH m0` (in that order, so a peer that hears the message finds the new
        // value), and so on, a round trip each.
        let steps: Vec<Pipeline> = if self.cluster {
            keys.iter()
                .enumerate()
                .flat_map(|(i, key)| {
                    let mut set = redis::pipe();
                    set.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(millis(ttl))
                        .ignore();
                    // Each publish command routes by its own channel's slot.
                    let publishes = self.publish_commands(&messages, i).into_iter().map(|cmd| {
                        let mut publish = redis::pipe();
                        publish.add_command(cmd).ignore();
                        publish
                    });
                    std::iter::once(set).chain(publishes)
                })
                .collect()
        } else {
            let mut pipe = redis::pipe();
            for (i, key) in keys.iter().enumerate() {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis(ttl))
                    .ignore();
                for publish in self.publish_commands(&messages, i) {
                    pipe.add_command(publish).ignore();
                }
            }
            vec![pipe]
        };
        for step in &steps {
            match self.link.pipe::<()>(Access::Write, step).await {
                Ok(()) => {}
                Err(fault) if fault.code() == Some("OOM") => {
                    // Redis refuses new data but always accepts a deletion: delete the old
                    // values, tell the peers, and report the error so the caller retries.
                    let batch = if self.cluster { 1 } else { keys.len().max(1) };
                    for (n, chunk) in keys.chunks(batch).enumerate() {
                        let mut delete = redis::pipe();
                        delete.cmd("UNLINK").arg(chunk).ignore();
                        let _ = self.link.pipe::<()>(Access::Write, &delete).await;
                        for i in n * batch..n * batch + chunk.len() {
                            for cmd in self.publish_commands(&messages, i) {
                                let _ = self.link.query::<Value>(Access::Write, &cmd).await;
                            }
                        }
                    }
                    return Err(fault);
                }
                Err(fault) => return Err(fault),
            }
        }
        Ok(())
    }

    /// The commands that publish `messages[i]` (none when there is no message).
    fn publish_commands(&self, messages: &Option<(&str, Vec<&str>)>, i: usize) -> Vec<redis::Cmd> {
        match messages {
            Some((channel, messages)) => messages.get(i).map_or_else(Vec::new, |message| {
                crate::bus::publish_commands(self.bus_channels, channel, message)
            }),
            None => Vec::new(),
        }
    }

    /// Takes the lease `key` for `owner` for `ttl` if nobody holds it; returns whether it
    /// did.
    pub(crate) async fn try_lease(
        &self,
        key: &str,
        owner: u64,
        ttl: Duration,
    ) -> Result<bool, Fault> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(owner).arg("PX").arg(millis(ttl)).arg("NX");
        let taken: Option<String> = self.link.query(Access::Write, &cmd).await?;
        Ok(taken.is_some())
    }

    /// Extends the lease `key` by `ttl` if `owner` still holds it; returns whether it did.
    pub(crate) async fn renew_lease(
        &self,
        key: &str,
        owner: u64,
        ttl: Duration,
    ) -> Result<bool, Fault> {
        let mut renew = self.renew.key(key);
        renew.arg(owner).arg(millis(ttl));
        let renewed: i64 = self.invoke(Access::Write, &renew).await?;
        Ok(renewed == 1)
    }

    /// Gives up the lease `key` if `owner` holds it, then publishes `message` (which wakes
    /// the instances waiting for the key).
    pub(crate) async fn release_lease(
        &self,
        key: &str,
        owner: u64,
        message: Option<(&str, &str)>,
    ) -> Result<(), Fault> {
        let mut release = self.release.key(key);
        release.arg(owner);
        let released = self.invoke::<i64>(Access::Write, &release).await;
        if let Some((channel, message)) = message {
            self.publish(channel, message).await?;
        }
        released.map(drop)
    }

    /// Publishes `message` on the bus whose classic channel is `channel` (on the channels
    /// the bus is configured for).
    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<(), Fault> {
        for cmd in crate::bus::publish_commands(self.bus_channels, channel, message) {
            self.link.query::<i64>(Access::Write, &cmd).await?;
        }
        Ok(())
    }

    /// The counter under `key` (0 when absent).
    pub(crate) async fn counter(&self, key: &str) -> Result<u64, Fault> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let value: Option<u64> = self.link.query(Access::Read, &cmd).await?;
        Ok(value.unwrap_or(0))
    }

    /// Moves the version counter under `key` past `known` when it holds less (see
    /// `RESTORE`); returns the version and whether it moved it.
    pub(crate) async fn restore(
        &self,
        key: &str,
        known: u64,
        floor: u64,
    ) -> Result<(u64, bool), Fault> {
        let mut restore = self.restore.key(key);
        restore.arg(known).arg(floor);
        let (version, moved): (u64, u8) = self.invoke(Access::Write, &restore).await?;
        Ok((version, moved == 1))
    }

    /// Moves the version counter under `key` to one more than it holds, or to `floor` if
    /// that is larger; returns the new value.
    pub(crate) async fn bump(&self, key: &str, floor: u64) -> Result<u64, Fault> {
        let mut bump = self.bump.key(key);
        bump.arg(floor);
        self.invoke(Access::Write, &bump).await
    }

    /// The primaries that serve the slots of a cluster, as `(host, port)`, from `CLUSTER
    /// SLOTS`; an error unless every slot has one.
    ///
    /// A primary that died still serves its slots there until its replica is promoted, so
    /// that a purge fails on it rather than skip its slots (`CLUSTER NODES`, read before,
    /// flags it `fail`: a purge then skipped it, returned Ok and left its values for the
    /// promoted replica to serve).
    async fn primaries(&self) -> Result<Vec<(String, u16)>, Fault> {
        let mut layout = self.layout().await?;
        layout.sort_unstable_by_key(|(start, _, _)| *start);
        let mut next = 0u32;
        for (start, end, _) in &layout {
            if u32::from(*start) != next {
                break;
            }
            next = u32::from(*end) + 1;
        }
        if next != 16384 {
            return Err(Fault::Reply(redis::RedisError::from((
                redis::ErrorKind::ClusterConnectionNotFound,
                "some slots have no primary (a failover in progress?)",
            ))));
        }
        let mut nodes: Vec<(String, u16)> = layout
            .iter()
            .filter_map(|(_, _, node)| {
                let (host, port) = node.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        Ok(nodes)
    }
}
