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

mod load;

pub(crate) use load::as_body;
pub use load::Solo;

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
