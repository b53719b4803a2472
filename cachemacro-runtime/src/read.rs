//! The read path: L1, then one load per key at a time (L2, then the function), the fills
//! that keep a load from undoing an invalidation, and what a load does when its source is
//! slow or failing (see `resilience`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::bus::Message;
use crate::entry::Decision;
use crate::envelope::{self, Life, Stored};
use crate::flight::{Leader, Outcome, Role, SharedFailure};
use crate::key::typed::TypedKey;
use crate::key::Place;
use crate::l1::{Entry, Times};
use crate::l2::{FillIf, Read, Registration, TagKeys, L2};
use crate::output::{CacheValue, Mode};
use crate::resilience::{self, Lease, Plan, Ran, Resilience, Stale, Turn};
use crate::site::{Call, Outcome as Ended, Site};
use crate::throttle::warn_throttled;
use crate::{conflicts, Cache, Error};

/// How far past its freshness (by the writer's clock) a value read from Redis is still
/// taken as at the very end of its life rather than expired: the clocks of two instances
/// may disagree by this much.
const CLOCK_SLACK_MS: u64 = 100;

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
    /// What to do when the source is slow or failing.
    pub resilience: Resilience,
    /// The function's counters and the call's span.
    pub call: Call,
}

/// How a load's leader hands its uncached result (an `Err`, a `None`) to the callers
/// waiting on the same load, so that they need not run the function again: by cloning it.
/// `#[cached]` uses it when the function's return type is `Clone + Send`.
pub struct Share<R> {
    wrap: fn(&R) -> SharedFailure,
    unwrap: fn(&SharedFailure) -> Option<R>,
}

impl<R> Clone for Share<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Share<R> {}

impl<R: Clone + Send + 'static> Share<R> {
    /// Shares results by cloning them.
    pub fn cloning() -> Self {
        Self {
            wrap: |r| Arc::new(Mutex::new(r.clone())) as SharedFailure,
            unwrap: |shared| {
                let r = shared.downcast_ref::<Mutex<R>>()?;
                let r = r.lock().unwrap_or_else(PoisonError::into_inner);
                Some(r.clone())
            },
        }
    }
}

impl<R> std::fmt::Debug for Share<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share")
    }
}

/// What L2 held when a load began; the fill stores only if it still holds the same.
pub(crate) enum Seen {
    /// L2 is not configured, or could not be read: fill L1 only.
    Unknown,
    Absent,
    /// A value (stale, or one being refreshed), a tombstone, or a value this reader cannot
    /// use (corrupt, another type, an old layout, too large): its first bytes as read.
    Bytes(Vec<u8>),
    /// A value of another Redis type.
    WrongType,
}

impl Seen {
    /// What a fill of the key requires it to still hold; `None` when nothing is known.
    pub(crate) fn fill_if(&self) -> Option<FillIf<'_>> {
        match self {
            Seen::Unknown => None,
            Seen::Absent => Some(FillIf::Absent),
            Seen::Bytes(bytes) => Some(FillIf::Same(bytes)),
            Seen::WrongType => Some(FillIf::WrongType),
        }
    }
}

/// How old a value found in Redis is, and how long it stays fresh.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub(crate) age: Duration,
    /// `None`: at the very end of its life (or the clocks disagree).
    pub(crate) fresh: Option<Duration>,
}

/// The outcome of an L2 read.
pub(crate) enum Lookup<T> {
    /// A fresh value, and the bytes it was read from.
    Hit(Arc<T>, Found, Vec<u8>),
    /// A value past its freshness, still inside its stale window.
    Stale(Stale<T>, Vec<u8>),
    Miss(Seen),
    Failed(Error),
}

/// What a caller got from the flight of its key.
enum Joined<T> {
    /// The value another caller loaded.
    Value(T),
    /// This caller loads, for everyone waiting.
    Lead(Leader),
    /// The uncached result the leader shared.
    Shared(SharedFailure),
    /// The flight this caller waited on failed and another one is in the air: load alone,
    /// rather than queue behind it.
    Solo,
}

/// The result of the hit path when it is not a plain hit.
pub enum Looked<T> {
    /// A miss: the storage key, owned, for the load.
    Miss(String),
    /// A hit on a value past its refresh point: return the value, and refresh it in the
    /// background.
    Refresh(String, T),
}

impl<T> Looked<T> {
    /// The same, with the value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Looked<U> {
        match self {
            Looked::Miss(key) => Looked::Miss(key),
            Looked::Refresh(key, value) => Looked::Refresh(key, f(value)),
        }
    }
}

/// `r` wrapped for the followers, when it can be shared.
fn wrap_shared<R>(share: Option<Share<R>>, r: &R) -> Option<SharedFailure> {
    share.map(|share| (share.wrap)(r))
}

/// A copy of the leader's shared result, when it is an `R`.
fn unwrap_shared<R>(share: Option<Share<R>>, shared: &SharedFailure) -> Option<R> {
    (share?.unwrap)(shared)
}

/// A body that runs in the caller's task only: it borrows from the caller, or is not
/// `Send`. Slow-source features that need the load to go on after the callers have their
/// answer (`soft_timeout`, `refresh_ahead`) do not apply to it.
pub struct Here<F>(pub F);

/// A body that can go on in a task of its own, after the callers have their answer.
pub struct Detached<R>(pub Pin<Box<dyn Future<Output = R> + Send + 'static>>);

/// How a load runs the function's body: [`Here`] or [`Detached`].
pub trait Run<M: Mode<R>, R>: Sized {
    /// Whether the body can go on in a task of its own.
    fn detachable(&self) -> bool;

    /// Runs the body for `load`, falling back on `stale` as the load's plan says.
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn execute(
        self,
        load: Load,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> impl Future<Output = R>;

    /// Runs the body in the background to refresh `skey` ahead of its expiry (only a
    /// detachable body can).
    fn refresh(self, _cache: &Cache, _skey: String, _options: LoadOptions) {}
}

impl<M: Mode<R>, R, F: Future<Output = R>> Run<M, R> for Here<F> {
    fn detachable(&self) -> bool {
        false
    }

    #[allow(private_interfaces)]
    async fn execute(
        self,
        load: Load,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        load.run::<M, R, _>(self.0, stale, share).await
    }
}

impl<M, R> Run<M, R> for Detached<R>
where
    M: Mode<R> + Send + 'static,
    R: Send + 'static,
{
    fn detachable(&self) -> bool {
        true
    }

    #[allow(private_interfaces)]
    async fn execute(
        self,
        load: Load,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        let plan = load.plan;
        match stale {
            Some(stale) if plan.soft_timeout.is_some() || plan.hard_timeout.is_some() => {
                load.race::<M, R>(self.0, stale, share).await
            }
            stale => load.run::<M, R, _>(self.0, stale, share).await,
        }
    }

    fn refresh(self, cache: &Cache, skey: String, options: LoadOptions) {
        let Role::Leader(mut leader) = cache.inner.flights.join(&skey) else {
            // A load or a refresh of the key is in the air already.
            return;
        };
        leader.land_in(options.call.site.and_then(Site::share));
        // The entry the hit found, unless an invalidation took it since: then there is
        // nothing to refresh (and putting it back would undo the invalidation).
        let Some(current) = cache
            .inner
            .l1
            .get(&skey)
            .filter(|_| cache.l1_trusted_for(&skey))
        else {
            return;
        };
        let plan = cache.plan(&options, true);
        // No more refreshes from hits until this one is done or has failed for a while.
        leader.keep(&cache.inner.l1, current.refresh_after(plan.throttle));
        let background = Arc::clone(&cache.inner.background);
        let cache = cache.clone();
        background.spawn(async move {
            cache
                .refresh_ahead::<M, R>(leader, skey, options, plan, self.0)
                .await
        });
    }
}

/// A load in progress, owned, so that it can finish in a task of its own.
pub(crate) struct Load {
    cache: Cache,
    leader: Leader,
    skey: String,
    seen: Seen,
    target: Target,
    plan: Plan,
    /// The fleet-wide lease this instance loads under.
    lease: Option<Lease>,
    /// Tell the other instances to drop their copies once the value is stored (a refresh:
    /// they then take the new value from Redis).
    announce: bool,
    /// The function's counters and the call's span.
    call: Call,
    /// When the body started.
    started: std::time::Instant,
    /// What the body chooses for its entry (`cachemacro::entry()`).
    decision: Arc<Decision>,
    /// Whether the function declares tags (registered in Redis before the body ran).
    tagged: bool,
}

/// Where a loaded value goes in L2.
pub(crate) struct Target {
    /// The value type's schema version.
    pub(crate) version: u32,
    /// The connection the load read on (see `Link::epoch`).
    pub(crate) epoch: u64,
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
        site: &'static Site,
        span: &tracing::Span,
    ) -> Result<T, Looked<T>> {
        self.lookup_then(place, write, site, span, NoFront)
    }

    /// [`lookup`](Self::lookup) for a function whose key values `key` can key its typed
    /// front (`l1::front`): looked up there first; an L1 hit copies its value there.
    #[inline]
    pub(crate) fn lookup_typed<T: CacheValue, K: TypedKey + ?Sized>(
        &self,
        key: &K,
        scope: Option<&str>,
        write: impl FnOnce(&mut String),
        site: &'static Site,
        span: &tracing::Span,
    ) -> Result<T, Looked<T>> {
        // With the span on, the call goes through L1, which records the key in it.
        if span.is_disabled() {
            let front = site
                .front_id()
                .and_then(|id| self.inner.l1.fronts().get::<K::Owned, T>(id));
            if let Some(value) = front.and_then(|f| f.get(key, crate::l1::clock::now_ms())) {
                self.inner.counters.front_hit();
                site.l1_hit();
                return Ok(value);
            }
        }
        self.lookup_then(Place::of(scope), write, site, span, ToFront { key, span })
    }

    /// [`lookup`](Self::lookup), handing an L1 hit to `then`.
    #[inline(always)]
    fn lookup_then<T: CacheValue, P: Promote<T>>(
        &self,
        place: Place<'_>,
        write: impl FnOnce(&mut String),
        site: &'static Site,
        span: &tracing::Span,
        then: P,
    ) -> Result<T, Looked<T>> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let mut write = Some(write);
        let mut then = Some(then);
        // Re-entered (a `KeyPart` impl that runs a lookup itself), or called while the thread
        // shuts down: use a fresh buffer instead.
        let reused = KEY
            .try_with(|cell| {
                let mut key = cell.try_borrow_mut().ok()?;
                key.clear();
                self.write_key_prefix(place, &mut key);
                (write.take()?)(&mut key);
                Some(self.looked_up::<T, P>(&key, site, span, then.take()?))
            })
            .ok()
            .flatten();
        match (reused, write, then) {
            (Some(result), _, _) => result,
            (None, Some(write), Some(then)) => {
                let mut key = self.key_buffer(place, 64);
                write(&mut key);
                self.looked_up::<T, P>(&key, site, span, then)
            }
            _ => unreachable!("the key writer runs at most once"),
        }
    }

    /// The L1 answer for `skey`, with the owned key when it is not a plain hit.
    #[inline(always)]
    fn looked_up<T: CacheValue, P: Promote<T>>(
        &self,
        skey: &str,
        site: &'static Site,
        span: &tracing::Span,
        then: P,
    ) -> Result<T, Looked<T>> {
        let now = crate::l1::clock::now_ms();
        let seen = then.before(&self.inner.l1, skey);
        let hit = if self.l1_trusted_for(skey) {
            match site.share() {
                None => self.inner.l1.get_at(skey, now),
                share => self.inner.l1.get_at_for(share, skey, now),
            }
        } else {
            None
        };
        let Some(entry) = hit else {
            if !span.is_disabled() {
                span.record("key", skey);
            }
            return Err(Looked::Miss(skey.to_owned()));
        };
        let due = entry.refresh_due(now);
        let until = entry.serve_until();
        match entry.take::<T>() {
            Ok(value) => {
                self.inner.counters.l1_hit();
                crate::site::l1_hit(site, span, skey);
                if due {
                    Err(Looked::Refresh(skey.to_owned(), value))
                } else {
                    then.after(&self.inner.l1, site, seen, &value, until);
                    Ok(value)
                }
            }
            Err(found) => {
                self.type_conflict::<T>(skey, conflicts::name_of(found));
                Err(Looked::Miss(skey.to_owned()))
            }
        }
    }

    /// The settings of a load with `options`.
    pub(crate) fn plan(&self, options: &LoadOptions, detachable: bool) -> Plan {
        let ttl = self.jittered(self.ttl_or_default(options.ttl));
        let plan = Plan::new(&options.resilience, &self.inner.defaults, ttl, detachable);
        self.learn_stale_window(plan.stale_for);
        plan
    }

    /// Reads `skey` from L2 as a `T`.
    async fn l2_lookup<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        version: u32,
        tags: &[TagKeys],
        plan: &Plan,
    ) -> Lookup<T> {
        let limit = self.inner.max_value_size;
        let read = if tags.is_empty() {
            l2.read(skey, limit).await
        } else {
            // Boxed: a tagged read's future is several times a plain one's.
            Box::pin(l2.read_tagged(skey, tags, &self.registration(plan), limit)).await
        };
        self.interpret(skey, read, version, plan)
    }

    /// A tag registration for a load with `plan`, made now.
    pub(crate) fn registration(&self, plan: &Plan) -> Registration {
        // The tag sets outlive the value: it is written up to a load's time after now.
        Registration::now(
            plan.keep() + self.inner.tombstone_ttl,
            envelope::tombstone(self.inner.instance),
            self.inner.tombstone_ttl,
        )
    }

    /// What an L2 read of `skey` means for a `T` at `version`.
    pub(crate) fn interpret<T: CacheValue>(
        &self,
        skey: &str,
        read: Result<Read, crate::link::Fault>,
        version: u32,
        plan: &Plan,
    ) -> Lookup<T> {
        let limit = self.inner.max_value_size;
        let bytes = match read {
            Ok(Read::Bytes(bytes)) => bytes,
            Ok(Read::Absent) => return Lookup::Miss(Seen::Absent),
            Ok(Read::WrongType) => {
                self.unusable::<T>(skey, "a value of another Redis type (not a string)");
                return Lookup::Miss(Seen::WrongType);
            }
            Ok(Read::Lost(tombstone)) => {
                self.unusable::<T>(
                    skey,
                    "not listed under one of its tags (Redis evicted or lost the tag's set, so \
                     an invalidation of the tag could have missed it); replaced with a tombstone",
                );
                return Lookup::Miss(Seen::Bytes(tombstone));
            }
            Err(fault) => return Lookup::Failed(Error::from_fault("read", fault)),
        };
        if bytes.len() > limit {
            self.unusable::<T>(skey, "larger than the cache's max_value_size");
            return Lookup::Miss(Seen::Bytes(bytes));
        }
        let reason = match envelope::parse(&bytes) {
            Stored::Value {
                fingerprint,
                born_ms,
                fresh_until_ms,
                payload,
                packed,
            } => match crate::compress::payload(payload, packed, limit).map(|payload| {
                self.inner
                    .formats
                    .decode::<T>(fingerprint, version, &payload)
            }) {
                Err(reason) => reason,
                Ok(Some(Ok(value))) => {
                    self.inner.counters.l2_hit();
                    let value = Arc::new(value);
                    let now = envelope::now_ms();
                    // Format 1 does not say when the value was born: its TTL before its end.
                    let ttl_ms = u64::try_from(plan.ttl.as_millis()).unwrap_or(u64::MAX);
                    let born = born_ms.unwrap_or(fresh_until_ms.saturating_sub(ttl_ms));
                    let age = Duration::from_millis(now.saturating_sub(born));
                    let fresh = fresh_until_ms
                        .checked_sub(now)
                        .filter(|&ms| ms > 0)
                        .map(Duration::from_millis);
                    let stale_left = fresh_until_ms
                        .saturating_add(u64::try_from(plan.stale_for.as_millis()).unwrap_or(0))
                        .checked_sub(now)
                        .filter(|&ms| ms > 0);
                    // Past its freshness by more than the clocks may disagree, and outside
                    // this reader's stale window: kept for another reader's (a longer
                    // `stale_for`, or a value written with `Cache::set`), not a hit here.
                    let expired = now > fresh_until_ms.saturating_add(CLOCK_SLACK_MS);
                    return match (fresh, stale_left) {
                        (None, Some(left)) if !plan.stale_for.is_zero() => {
                            let entry = Entry::with_times(
                                Arc::clone(&value),
                                Times {
                                    age,
                                    fresh: Duration::ZERO,
                                    keep: Duration::from_millis(left),
                                    refresh: None,
                                },
                            );
                            let stale = Stale { value, entry };
                            Lookup::Stale(stale, bytes)
                        }
                        (None, _) if expired => Lookup::Miss(Seen::Bytes(bytes)),
                        _ => Lookup::Hit(value, Found { age, fresh }, bytes),
                    };
                }
                Ok(Some(Err(err))) => format!("undecodable value ({err})"),
                Ok(None) => match conflicts::fingerprint_of(fingerprint) {
                    Some((name, _)) if name != std::any::type_name::<T>() => {
                        self.type_conflict::<T>(skey, Some(name));
                        format!("a value of another type ({name})")
                    }
                    Some((_, version)) => format!("a value of the type's version {version}"),
                    None => "a value of another type, version or codec".to_owned(),
                },
            },
            Stored::Tombstone => return Lookup::Miss(Seen::Bytes(bytes)),
            Stored::Foreign(reason) => reason.to_owned(),
        };
        self.unusable::<T>(skey, &reason);
        Lookup::Miss(Seen::Bytes(bytes))
    }

    /// Counts and logs (rate-limited) a value in Redis that cannot be used.
    fn unusable<T>(&self, skey: &str, reason: &str) {
        crate::stats::bump(&self.inner.counters.unusable_values);
        warn_throttled!(
            key = %skey,
            reason = %reason,
            expected = std::any::type_name::<T>(),
            "cache: unusable value in Redis, treating it as a miss; the next load overwrites it"
        );
    }

    pub(crate) async fn get_at<T: CacheValue>(&self, skey: &str) -> Result<Option<T>, Error> {
        if self.is_shut_down() {
            return Ok(None);
        }
        if let Some(value) = self.l1_get::<T>(skey) {
            return Ok(Some(value));
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        let share = Some(Share::<Result<Option<T>, Error>>::cloning());
        let leader = match self.follow_or_lead::<T>(skey).await {
            Joined::Value(value) => return Ok(Some(value)),
            Joined::Lead(leader) => Some(leader),
            Joined::Shared(shared) => match unwrap_shared(share, &shared) {
                Some(result) => return result,
                None => None,
            },
            Joined::Solo => None,
        };
        let plan = self.plan(&LoadOptions::default(), false);
        let result = match self.l2_lookup::<T>(l2, skey, 0, &[], &plan).await {
            Lookup::Hit(value, found, _) => {
                let out = T::clone(&value);
                if let Some(leader) = leader {
                    self.land_l2_hit(leader, value, found, &plan);
                }
                return Ok(Some(out));
            }
            Lookup::Stale(..) | Lookup::Miss(_) => Ok(None),
            Lookup::Failed(err) => Err(err),
        };
        if let Some(leader) = leader {
            leader.fail(wrap_shared(share, &result));
        }
        result
    }

    /// Joins the flight for `skey`: the value another caller loaded, the lead when this
    /// caller must load it (no flight was in the air, or the one it waited for was
    /// cancelled or loaded another type), the leader's uncached result when it shared it,
    /// or a solo load when the flights it waited for failed without sharing their result.
    ///
    /// Callers released by a failed flight load again as one new flight (a passing failure
    /// costs one more load, not one per caller); when that one fails too, they stop
    /// queueing and load each for itself, so that N callers of a failing function wait
    /// about three loads, not N loads one after the other.
    async fn follow_or_lead<T: CacheValue>(&self, skey: &str) -> Joined<T> {
        let mut failures = 0;
        loop {
            let follower = match self.inner.flights.join(skey) {
                Role::Leader(leader) => return Joined::Lead(leader),
                Role::Follower(_) if failures >= 2 => return Joined::Solo,
                Role::Follower(follower) => follower,
            };
            match follower.wait().await {
                Outcome::Value(entry) => match entry.take::<T>() {
                    Ok(value) => return Joined::Value(value),
                    Err(found) => self.type_conflict::<T>(skey, conflicts::name_of(found)),
                },
                Outcome::Failed(Some(shared)) => return Joined::Shared(shared),
                Outcome::Failed(None) => failures += 1,
                Outcome::Cancelled => {}
            }
            if let Some(value) = self.l1_get::<T>(skey) {
                return Joined::Value(value);
            }
        }
    }

    /// Fills L1 from an L2 hit: for what is left of the value's freshness, never longer.
    pub(crate) fn land_l2_hit<T: CacheValue>(
        &self,
        leader: Leader,
        value: Arc<T>,
        found: Found,
        plan: &Plan,
    ) {
        match found.fresh {
            Some(fresh) => leader.land(
                &self.inner.l1,
                Entry::with_times(value, plan.times(found.age, fresh.min(plan.ttl))),
                true,
            ),
            // The value is at the end of its life (or the clocks disagree): hand it to the
            // waiting callers but keep it out of L1.
            None => leader.land(&self.inner.l1, Entry::new(value, plan.ttl), false),
        }
    }

    #[inline]
    pub(crate) fn l1_get<T: CacheValue>(&self, skey: &str) -> Option<T> {
        if !self.l1_trusted_for(skey) {
            return None;
        }
        match self.inner.l1.get(skey)?.take::<T>() {
            Ok(value) => {
                self.inner.counters.l1_hit();
                Some(value)
            }
            Err(found) => {
                self.type_conflict::<T>(skey, conflicts::name_of(found));
                None
            }
        }
    }

    /// The stale value of `skey` in L1, if it holds one of type `T` less than `stale_for`
    /// past its freshness (an entry may be kept longer for another reader: a value written
    /// with `Cache::set` is kept for the longest window, see `Cache::set_keep`).
    pub(crate) fn l1_stale<T: CacheValue>(
        &self,
        skey: &str,
        stale_for: Duration,
    ) -> Option<Stale<T>> {
        if !self.l1_trusted_for(skey) {
            return None;
        }
        let entry = self.inner.l1.get_kept(skey)?;
        let window = u64::try_from(stale_for.as_millis()).unwrap_or(u64::MAX);
        if entry.fresh_until().saturating_add(window) <= crate::l1::clock::exact_ms() {
            return None;
        }
        let value = entry.clone().downcast::<T>().ok()?;
        Some(Stale { value, entry })
    }

    /// Counts and reports (once per pair of types) a key that holds another type than `T`.
    #[cold]
    fn type_conflict<T>(&self, skey: &str, found: Option<&str>) {
        crate::stats::bump(&self.inner.counters.type_conflicts);
        conflicts::report::<T>(skey, found);
    }

    /// The read path of `get_or_set`: L1, then one load per key at a time (L2, then `fut`).
    #[inline]
    pub(crate) async fn read_through<M, R, F>(
        &self,
        skey: String,
        ttl: Option<Duration>,
        share: Option<Share<R>>,
        fut: F,
    ) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        if self.is_shut_down() {
            return as_body(None, fut).await;
        }
        if let Some(value) = self.l1_get::<M::Value>(&skey) {
            return M::wrap(value);
        }
        let options = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        Box::pin(self.load::<M, R, _>(skey, options, share, Here(fut))).await
    }

    /// The miss path: join or lead the flight for `skey`.
    pub(crate) async fn load<M, R, B>(
        &self,
        skey: String,
        options: LoadOptions,
        share: Option<Share<R>>,
        body: B,
    ) -> R
    where
        M: Mode<R>,
        B: Run<M, R> + Solo<R>,
    {
        if crate::key::is_unkeyable(&skey) {
            // A key part could not be written: two calls would share this key.
            return self.solo(body, &options.call).await;
        }
        match self.follow_or_lead::<M::Value>(&skey).await {
            Joined::Value(value) => {
                options.call.ended(Ended::Joined);
                M::wrap(value)
            }
            Joined::Lead(leader) => {
                self.lead::<M, R, B>(leader, skey, options, share, body)
                    .await
            }
            Joined::Shared(shared) => match unwrap_shared(share, &shared) {
                Some(r) => {
                    options.call.ended(Ended::Joined);
                    r
                }
                None => self.solo(body, &options.call).await,
            },
            Joined::Solo => self.solo(body, &options.call).await,
        }
    }

    /// Runs the body for this caller alone; its result is not cached.
    async fn solo<R, B: Solo<R>>(&self, body: B, call: &Call) -> R {
        crate::stats::bump(&self.inner.counters.loads);
        call.load_started();
        body.run_alone().await
    }

    /// Loads `skey` for every caller waiting on it: from L2, else by running the body.
    async fn lead<M, R, B>(
        &self,
        mut leader: Leader,
        skey: String,
        options: LoadOptions,
        share: Option<Share<R>>,
        body: B,
    ) -> R
    where
        M: Mode<R>,
        B: Run<M, R>,
    {
        // Before anything is read: a tag the body chooses counts its invalidations from here.
        let decision = Decision::new(self.inner.tag_log.position());
        leader.land_in(options.call.site.and_then(Site::share));
        let plan = self.plan(&options, body.detachable());
        let tags: Vec<TagKeys> = options.tags.iter().map(|t| self.tag_keys(t)).collect();
        let mut target = Target {
            version: options.version,
            // The connection the load reads on; it fills only on the same one.
            epoch: self.inner.l2.as_ref().map_or(0, |l2| l2.link().epoch()),
        };
        let mut stale = if plan.stale_for.is_zero() {
            None
        } else {
            self.l1_stale::<M::Value>(&skey, plan.stale_for)
        };
        // Registered here too, whatever Redis does: this process's own copy must be found
        // by a tag invalidation even when Redis loses the tag's set (evicted, or lost in a
        // restart or failover), and a peer's message finds it the same way.
        self.register_local_tags(&tags, &skey);
        let (seen, lease) = match &self.inner.l2 {
            None => (Seen::Unknown, None),
            Some(l2) => {
                let seen = match self
                    .l2_lookup::<M::Value>(l2, &skey, options.version, &tags, &plan)
                    .await
                {
                    Lookup::Hit(value, found, _) => {
                        let out = M::Value::clone(&value);
                        self.land_l2_hit(leader, value, found, &plan);
                        options.call.ended(Ended::L2Hit);
                        return M::wrap(out);
                    }
                    Lookup::Stale(from_l2, bytes) => {
                        stale.get_or_insert(from_l2);
                        Seen::Bytes(bytes)
                    }
                    Lookup::Miss(seen) => seen,
                    Lookup::Failed(err) => {
                        // Fail open: the function still answers while Redis is away.
                        if !matches!(err, Error::Unavailable { .. }) {
                            warn_throttled!(key = %skey, error = %err, "cache: Redis read failed, loading without it");
                        }
                        Seen::Unknown
                    }
                };
                match plan.fleet {
                    // One instance of the fleet loads a cold key for all of them.
                    Some(max_wait) if stale.is_none() && !matches!(seen, Seen::Unknown) => {
                        // Boxed, as the load below: a future holds room for its largest
                        // state, and an L2 hit should not move (or allocate) a load's.
                        match Box::pin(self.fleet_turn::<M::Value>(
                            l2,
                            &skey,
                            options.version,
                            &plan,
                            max_wait,
                        ))
                        .await
                        {
                            Turn::Value(value, age, fresh) => {
                                let out = M::Value::clone(&value);
                                let found = Found {
                                    age,
                                    fresh: Some(fresh),
                                };
                                self.land_l2_hit(leader, value, found, &plan);
                                options.call.ended(Ended::L2Hit);
                                return M::wrap(out);
                            }
                            Turn::Load(lease) if leader.is_stale() => {
                                // An invalidation (or a bus drop) came while this instance
                                // waited, before its load began: start afresh rather than
                                // load a value nobody may store.
                                match self
                                    .restart_load::<M::Value>(
                                        l2,
                                        &mut leader,
                                        &skey,
                                        &tags,
                                        &mut target,
                                        &plan,
                                    )
                                    .await
                                {
                                    Ok(seen) => (seen, lease),
                                    Err((value, found)) => {
                                        let out = M::Value::clone(&value);
                                        self.land_l2_hit(leader, value, found, &plan);
                                        options.call.ended(Ended::L2Hit);
                                        return M::wrap(out);
                                    }
                                }
                            }
                            Turn::Load(lease) => (seen, lease),
                        }
                    }
                    _ => (seen, None),
                }
            }
        };
        tracing::debug!(target: "cachemacro", key = %skey, "cache miss: loading");
        crate::stats::bump(&self.inner.counters.loads);
        options.call.load_started();
        let load = Load {
            cache: self.clone(),
            leader,
            skey,
            seen,
            target,
            plan,
            lease,
            announce: false,
            call: options.call,
            started: std::time::Instant::now(),
            decision,
            tagged: !tags.is_empty(),
        };
        // Boxed: the body's future (the function's own) and the store after it are most
        // of this future's size, which every L2 hit would otherwise move around.
        Box::pin(body.execute(load, stale, share)).await
    }

    /// Starts a fleet load afresh after its flight went stale while it waited: clears the
    /// mark (when the bus can report the next one), registers the tags again and reads
    /// Redis again, on the connection the fill will use, for what the fill compares
    /// against. A value found there is returned instead (`Err`).
    async fn restart_load<T: CacheValue>(
        &self,
        l2: &L2,
        leader: &mut Leader,
        skey: &str,
        tags: &[TagKeys],
        target: &mut Target,
        plan: &Plan,
    ) -> Result<Seen, (Arc<T>, Found)> {
        if !self.bus_connected() || !leader.restart() {
            // It stays stale: the load's value is handed to the callers, not stored.
            return Ok(Seen::Unknown);
        }
        crate::stats::bump(&self.inner.counters.fleet_restarts);
        target.epoch = l2.link().epoch();
        // Registered again, here and in Redis: a tag invalidation meanwhile dropped them.
        self.register_local_tags(tags, skey);
        match self
            .l2_lookup::<T>(l2, skey, target.version, tags, plan)
            .await
        {
            Lookup::Hit(value, found, _) => Err((value, found)),
            Lookup::Stale(_, bytes) => Ok(Seen::Bytes(bytes)),
            Lookup::Miss(seen) => Ok(seen),
            Lookup::Failed(_) => Ok(Seen::Unknown),
        }
    }

    /// Waits for another instance to load `skey` into Redis, or takes its turn to load it:
    /// one instance takes a short lease on the key and loads, the others wait (woken by the
    /// bus when the value is stored, at most `max_wait`) and read it from Redis.
    async fn fleet_turn<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        version: u32,
        plan: &Plan,
        max_wait: Duration,
    ) -> Turn<T> {
        let lease = Lease::of(self.inner.layout.root(), skey, max_wait);
        let owner = self.inner.instance;
        match l2.try_lease(&lease.key, owner, lease.ttl).await {
            Ok(true) => return Turn::Load(Some(lease)),
            Ok(false) => {}
            // Redis cannot say: load without it.
            Err(_) => return Turn::Load(None),
        }
        crate::stats::bump(&self.inner.counters.fleet_waits);
        let deadline = tokio::time::Instant::now() + max_wait;
        let notify = self.inner.waiters.join(skey);
        let turn = loop {
            let woken = notify.notified();
            tokio::pin!(woken);
            // Registered before looking, so that a value stored meanwhile wakes it.
            woken.as_mut().enable();
            match self.l2_lookup::<T>(l2, skey, version, &[], plan).await {
                Lookup::Hit(
                    value,
                    Found {
                        age,
                        fresh: Some(fresh),
                    },
                    _,
                ) => break Turn::Value(value, age, fresh),
                Lookup::Failed(_) => break Turn::Load(None),
                _ => {}
            }
            // The loader may have gone: it gave up, or crashed and its lease expired.
            match l2.try_lease(&lease.key, owner, lease.ttl).await {
                Ok(true) => break Turn::Load(Some(lease)),
                Ok(false) => {}
                Err(_) => break Turn::Load(None),
            }
            tokio::select! {
                _ = woken => {}
                // A quarter of the lease's life: a crashed loader's lease (at most 2 s) is
                // taken over within 2.5 s.
                _ = tokio::time::sleep(lease.ttl / 4) => {}
                _ = tokio::time::sleep_until(deadline) => break Turn::Load(None),
            }
        };
        self.inner.waiters.leave(skey, notify);
        turn
    }

    /// Refreshes `skey` ahead of its expiry, in a task of its own: one instance of the
    /// fleet loads (the one that takes the lease), stores the value, and tells the others
    /// to drop their copies so that they read the new one from Redis.
    async fn refresh_ahead<M, R>(
        self,
        leader: Leader,
        skey: String,
        options: LoadOptions,
        plan: Plan,
        body: Pin<Box<dyn Future<Output = R> + Send + 'static>>,
    ) where
        M: Mode<R>,
    {
        crate::stats::bump(&self.inner.counters.refreshes);
        let decision = Decision::new(self.inner.tag_log.position());
        // The call that found the value due has returned: the refresh has no span.
        let call = Call {
            span: tracing::Span::none(),
            ..options.call.clone()
        };
        let target = Target {
            version: options.version,
            epoch: self.inner.l2.as_ref().map_or(0, |l2| l2.link().epoch()),
        };
        let tags: Vec<TagKeys> = options.tags.iter().map(|t| self.tag_keys(t)).collect();
        self.register_local_tags(&tags, &skey);
        let (seen, lease) = match &self.inner.l2 {
            None => (Seen::Unknown, None),
            Some(l2) => {
                let lease = Lease::of(self.inner.layout.root(), &skey, plan.ttl);
                if !matches!(
                    l2.try_lease(&lease.key, self.inner.instance, lease.ttl)
                        .await,
                    Ok(true)
                ) {
                    // Another instance refreshes it (or Redis cannot say): its value
                    // reaches this one through Redis and the bus.
                    leader.fail(None);
                    return;
                }
                match self
                    .l2_lookup::<M::Value>(l2, &skey, options.version, &tags, &plan)
                    .await
                {
                    // Another instance refreshed it already: take its value.
                    Lookup::Hit(value, found, _)
                        if plan.refresh_at().is_some_and(|at| found.age < at) =>
                    {
                        self.land_l2_hit(leader, value, found, &plan);
                        let _ = l2
                            .release_lease(&lease.key, self.inner.instance, None)
                            .await;
                        return;
                    }
                    Lookup::Hit(_, _, bytes) | Lookup::Stale(_, bytes) => {
                        (Seen::Bytes(bytes), Some(lease))
                    }
                    Lookup::Miss(seen) => (seen, Some(lease)),
                    Lookup::Failed(_) => (Seen::Unknown, Some(lease)),
                }
            }
        };
        let load = Load {
            cache: self.clone(),
            leader,
            skey,
            seen,
            target,
            plan,
            lease,
            announce: true,
            started: std::time::Instant::now(),
            call,
            decision,
            tagged: !tags.is_empty(),
        };
        load.call.load_started();
        let body = crate::entry::scoped(Some(Arc::clone(&load.decision)), body);
        // The value the hit found stays until its own expiry, whatever the refresh does.
        let ran = load
            .holding_lease(resilience::run_guarded(body, plan.hard_timeout))
            .await;
        match ran {
            Ran::Done(r) => {
                let _ = load.done::<M, R>(r, None, None).await;
            }
            Ran::Panicked | Ran::TimedOut => load.refresh_failed().await,
        }
    }
}

/// Running a body for one caller alone, outside any flight.
pub trait Solo<R> {
    /// Runs it.
    fn run_alone(self) -> impl Future<Output = R>;
}

// The caller's `with_source` hears `Loaded`: a call that records nothing was an L1 hit.
impl<R, F: Future<Output = R>> Solo<R> for Here<F> {
    async fn run_alone(self) -> R {
        crate::source::report(Ended::Loaded);
        as_body(None, self.0).await
    }
}

impl<R> Solo<R> for Detached<R> {
    async fn run_alone(self) -> R {
        crate::source::report(Ended::Loaded);
        as_body(None, self.0).await
    }
}

/// `body` as a body runs: deciding its entry through `decision` (`None`: its value is not
/// stored, `entry()` changes nothing), and silenced, so that the cached calls it makes do
/// not answer the caller's `with_source`, nor decide its entry.
pub(crate) fn as_body<F: Future>(
    decision: Option<Arc<Decision>>,
    body: F,
) -> impl Future<Output = F::Output> {
    crate::entry::scoped(decision, crate::source::silenced(body))
}

impl Load {
    /// Runs `body` in the caller's task and ends the load. With a `stale` value to fall back
    /// on, a panic or the plan's hard timeout ends the body too, and the callers get the
    /// stale value; without one, the body's panic goes to the caller.
    async fn run<M: Mode<R>, R, F: Future<Output = R>>(
        self,
        body: F,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        let body = as_body(Some(Arc::clone(&self.decision)), body);
        match stale {
            Some(stale) => {
                let guarded = resilience::run_guarded(body, self.plan.hard_timeout);
                let ran = self.holding_lease(guarded).await;
                self.finish::<M, R>(ran, stale, share).await
            }
            None => {
                let r = self.holding_lease(body).await;
                self.done::<M, R>(r, None, share).await
            }
        }
    }

    /// Awaits `run`, renewing the fleet lease (when this load holds one) meanwhile.
    async fn holding_lease<F: Future>(&self, run: F) -> F::Output {
        match (&self.lease, &self.cache.inner.l2) {
            (Some(lease), Some(l2)) => {
                let held = resilience::hold(l2, lease, self.cache.inner.instance);
                tokio::pin!(held);
                tokio::select! {
                    out = run => out,
                    never = &mut held => match never {},
                }
            }
            _ => run.await,
        }
    }

    /// A refresh ahead that panicked or passed the hard timeout: a failed reload. The value
    /// it was refreshing stays until its own expiry (the next refresh is tried after the
    /// fail-safe throttle, see `Detached::refresh`), and the fleet's lease is given up.
    async fn refresh_failed(self) {
        self.call.load_ended(self.started.elapsed(), false);
        warn_throttled!(key = %self.skey, "cache: a refresh ahead failed (a panic, or past hard_timeout); the current value stays until it expires");
        self.fail(None).await;
    }

    /// Ends the load without a value to cache: the waiting callers get `shared` (or load
    /// for themselves), and the fleet's lease is given up.
    async fn fail(self, shared: Option<SharedFailure>) {
        let Load {
            cache,
            leader,
            skey,
            lease,
            ..
        } = self;
        leader.fail(shared);
        cache.release(lease, &skey).await;
    }

    /// Races a detached body against the soft (or hard) timeout: past it, the callers get
    /// the stale value, and the load goes on in the background until it finishes or the
    /// hard timeout passes.
    async fn race<M, R>(
        self,
        body: Pin<Box<dyn Future<Output = R> + Send + 'static>>,
        stale: Stale<M::Value>,
        share: Option<Share<R>>,
    ) -> R
    where
        M: Mode<R> + Send + 'static,
        R: Send + 'static,
    {
        let plan = self.plan;
        let first = plan
            .soft_timeout
            .or(plan.hard_timeout)
            .unwrap_or(Duration::MAX);
        let mut handle = tokio::spawn(crate::entry::scoped(Some(Arc::clone(&self.decision)), body));
        // Whoever drops the load (a cancelled caller, an abandoned background task) ends
        // the body too.
        let abort = crate::background::AbortOnDrop(handle.abort_handle());
        tokio::select! {
            joined = &mut handle => return self.finish::<M, R>(Ran::joined(joined), stale, share).await,
            () = tokio::time::sleep(first) => {}
        }
        if plan.soft_timeout.is_none() {
            // The hard timeout: the reload counts as failed.
            handle.abort();
            return self.finish::<M, R>(Ran::TimedOut, stale, share).await;
        }
        // The soft timeout: the callers get the stale value now (and so does anyone who
        // asks meanwhile), while the reload goes on.
        self.leader.interim(
            &self.cache.inner.l1,
            stale.entry.refreshed_for(plan.throttle),
        );
        crate::stats::bump(&self.cache.inner.counters.stale_served);
        self.call.ended(Ended::Stale);
        // The call ends here; the reload goes on, counted for the function, outside it.
        let mut load = self;
        load.call.span = tracing::Span::none();
        let out = M::Value::clone(&stale.value);
        let rest = plan.hard_timeout.map(|hard| hard.saturating_sub(first));
        let background = Arc::clone(&load.cache.inner.background);
        background.spawn(async move {
            let _abort = abort;
            let ran = match rest {
                Some(rest) => match tokio::time::timeout(rest, &mut handle).await {
                    Ok(joined) => Ran::joined(joined),
                    Err(_) => {
                        handle.abort();
                        Ran::TimedOut
                    }
                },
                None => Ran::joined(handle.await),
            };
            let _ = load.finish::<M, R>(ran, stale, None).await;
        });
        M::wrap(out)
    }

    /// Ends a load that had a stale value to fall back on: with what the body gave, or with
    /// the stale value when the body panicked or passed the hard timeout.
    async fn finish<M: Mode<R>, R>(
        self,
        ran: Ran<R>,
        stale: Stale<M::Value>,
        share: Option<Share<R>>,
    ) -> R {
        match ran {
            Ran::Done(r) => self.done::<M, R>(r, Some(stale), share).await,
            Ran::Panicked | Ran::TimedOut => {
                self.call.load_ended(self.started.elapsed(), false);
                M::wrap(self.fall_back(stale).await)
            }
        }
    }

    /// Ends the load with what the body returned: stores a value (unless an invalidation
    /// came meanwhile), or falls back on the stale value, or hands the failure to the
    /// waiting callers.
    async fn done<M: Mode<R>, R>(
        self,
        r: R,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        let took = self.started.elapsed();
        let value = M::split(&r);
        self.call.load_ended(took, value.is_some());
        let Some(value) = value else {
            if let Some(stale) = stale {
                return M::wrap(self.fall_back(stale).await);
            }
            self.fail(wrap_shared(share, &r)).await;
            return r;
        };
        let Load {
            cache,
            leader,
            skey,
            seen,
            target,
            mut plan,
            lease,
            announce,
            decision,
            tagged,
            ..
        } = self;
        let value = Arc::new(value);
        // What the body chose for its entry (`cachemacro::entry()`).
        let choice = decision.take();
        // In this process only, not in Redis: an entry whose tags Redis cannot be trusted to
        // list (see `EntryHandle::tag` and `EntryHandle::ttl`).
        let mut local = !choice.tags.is_empty();
        if let Some(ttl) = choice.ttl {
            let ttl = cache.jittered(ttl.min(crate::MAX_TTL));
            local |= tagged && ttl > plan.ttl;
            plan.ttl = ttl;
        }
        if choice.skip || choice.too_many_tags || plan.ttl.is_zero() {
            if choice.too_many_tags {
                warn_throttled!(key = %skey, max = crate::entry::MAX_ENTRY_TAGS, "cache: the body chose more tags than an entry takes; the value is not cached");
            }
            // The callers waiting get the value; neither tier stores it.
            leader.land(&cache.inner.l1, Entry::new(value, plan.ttl), false);
            cache.release(lease, &skey).await;
            return r;
        }
        // Registered before the log is asked: an invalidation of a chosen tag either comes
        // after the registration, and drops the entry (or marks the flight), or before the
        // question, which then finds it (see `TagLog`).
        let invalidated = !choice.tags.is_empty() && {
            let tags: Vec<TagKeys> = choice.tags.iter().map(|t| cache.tag_keys(t)).collect();
            cache.register_local_tags(&tags, &skey);
            cache
                .inner
                .tag_log
                .invalidated_since(decision.since, &choice.tags)
        };
        let store = if leader.is_stale() || invalidated {
            // Invalidated while it loaded (here, or by a peer's message, or because the bus
            // dropped): the value may predate the invalidation, so neither tier gets it,
            // whatever Redis holds now (it may have lost the tombstone in a restart).
            crate::stats::bump(&cache.inner.counters.stale_loads_dropped);
            false
        } else if !cache.bus_connected() {
            // This instance cannot hear invalidations right now, so it cannot tell whether
            // one came during the load: the value stays in this process (which clears its
            // memory when the bus is back) and out of Redis, where every instance would
            // trust it.
            true
        } else {
            let fill = cache
                .inner
                .l2
                .as_ref()
                .filter(|_| !local)
                .zip(seen.fill_if());
            match fill {
                Some((l2, seen)) => {
                    let stored = cache.fill(l2, &skey, seen, &*value, &target, &plan).await;
                    if stored == Some(true) && announce {
                        // The other instances drop their copies and read the new value.
                        let _ = cache.publish(Message::Remove(skey.clone())).await;
                    }
                    stored.is_some()
                }
                None => true,
            }
        };
        let times = plan.times(Duration::ZERO, plan.ttl);
        leader.land(&cache.inner.l1, Entry::with_times(value, times), store);
        cache.release(lease, &skey).await;
        r
    }

    /// Serves the stale value after a failed reload: to every caller waiting, and, as if
    /// fresh, to every caller for the fail-safe throttle (the next reload waits that long),
    /// unless an invalidation came meanwhile.
    async fn fall_back<T: CacheValue>(self, stale: Stale<T>) -> T {
        let Load {
            cache,
            leader,
            skey,
            plan,
            lease,
            call,
            ..
        } = self;
        crate::stats::bump(&cache.inner.counters.stale_served);
        call.ended(Ended::Stale);
        warn_throttled!(key = %skey, "cache: the reload failed; serving the stale value");
        leader.land(
            &cache.inner.l1,
            stale.entry.refreshed_for(plan.throttle),
            true,
        );
        cache.release(lease, &skey).await;
        T::clone(&stale.value)
    }
}

impl Cache {
    /// Gives up a fleet lease, waking the instances waiting for the key.
    async fn release(&self, lease: Option<Lease>, skey: &str) {
        let (Some(lease), Some(l2)) = (lease, &self.inner.l2) else {
            return;
        };
        let message = self.inner.bus.as_ref().map(|bus| {
            (
                bus.channel(),
                bus.payload(&Message::Filled(skey.to_owned())),
            )
        });
        let _ = l2
            .release_lease(
                &lease.key,
                self.inner.instance,
                message.as_ref().map(|(c, m)| (*c, m.as_str())),
            )
            .await;
    }

    /// Stores a loaded value in L2 unless the key changed since the load began. Returns
    /// whether it stored (`Some(true)`), whether L1 may keep the value alone (`Some(false)`:
    /// Redis is away, or the value is not for Redis), or `None` when the key changed (the
    /// value is dropped).
    pub(crate) async fn fill<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        seen: FillIf<'_>,
        value: &T,
        target: &Target,
        plan: &Plan,
    ) -> Option<bool> {
        let life = Life::starting_now(plan.ttl);
        let bytes = match self.encode(skey, value, target.version, life, plan.timed()) {
            Ok(bytes) => bytes,
            Err(err) => {
                warn_throttled!(key = %skey, error = %err, "cache: value kept in this process only");
                return Some(false);
            }
        };
        match l2
            .fill(
                skey,
                seen,
                &bytes,
                plan.keep(),
                self.inner.max_value_size,
                target.epoch,
            )
            .await
        {
            Ok(true) => Some(true),
            Ok(false) => {
                crate::stats::bump(&self.inner.counters.stale_loads_dropped);
                tracing::debug!(target: "cachemacro", key = %skey, "cache: the key changed while loading; the loaded value is not cached");
                None
            }
            Err(crate::link::Fault::Unavailable) => Some(false),
            Err(fault) => {
                warn_throttled!(key = %skey, error = %fault, "cache: could not store the value in Redis; kept in this process only");
                Some(false)
            }
        }
    }
}

/// What an L1 hit does besides returning its value: nothing, or copy it to the function's
/// typed front.
trait Promote<T> {
    /// What `before` saw, for `after`.
    type Seen;
    /// Before the L1 read of `skey`.
    fn before(&self, l1: &crate::l1::L1, skey: &str) -> Self::Seen;
    /// After the read found `value`, fresh until coarse time `until`.
    fn after(
        self,
        l1: &crate::l1::L1,
        site: &'static Site,
        seen: Self::Seen,
        value: &T,
        until: u64,
    );
}

/// A function without a front.
struct NoFront;

impl<T> Promote<T> for NoFront {
    type Seen = ();
    #[inline(always)]
    fn before(&self, _l1: &crate::l1::L1, _skey: &str) {}
    #[inline(always)]
    fn after(self, _l1: &crate::l1::L1, _site: &'static Site, _seen: (), _value: &T, _until: u64) {}
}

/// A function whose key values `key` key its front.
struct ToFront<'a, K: ?Sized> {
    key: &'a K,
    span: &'a tracing::Span,
}

impl<T: CacheValue, K: TypedKey + ?Sized> Promote<T> for ToFront<'_, K> {
    type Seen = Option<crate::l1::front::Snapshot>;

    #[inline]
    fn before(&self, l1: &crate::l1::L1, skey: &str) -> Self::Seen {
        // The epochs before the read: a change to the entry after them ends the copy.
        (self.span.is_disabled() && l1.fronts().enabled())
            .then(|| l1.fronts().epochs().snapshot(skey))
    }

    #[inline]
    fn after(
        self,
        l1: &crate::l1::L1,
        site: &'static Site,
        seen: Self::Seen,
        value: &T,
        until: u64,
    ) {
        let Some(seen) = seen else { return };
        let front = site
            .assign_front_id()
            .and_then(|id| l1.fronts().get_or_make::<K::Owned, T>(id));
        if let Some(front) = front {
            front.insert(self.key, value.clone(), until, seen);
        }
    }
}
