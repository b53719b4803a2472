//! Batch loading: a function that loads many elements at once, cached per element.
//!
//! `#[cached(key = "user:<id>", batch(id in ids))]` on `async fn get_users(ids: Vec<u64>)
//! -> Result<HashMap<u64, User>, E>` caches each element under its own key (the entry a
//! single-item function with the same template and value type uses). A call looks up every
//! element in L1, then the rest in Redis in one round trip (one per hash slot on a cluster),
//! then runs the body once with only the elements still missing, and stores each element
//! it returns with the same compare-and-set as any load. Elements that another call is
//! loading are awaited, not loaded twice; the batch's own missing elements are registered
//! as loads in flight before its body runs, so an invalidation during the load wins.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::flight::{Follower, Leader, Outcome, Role};
use crate::key::Place;
use crate::l1::Entry;
use crate::l2::{FillIf, TagKeys};
use crate::output::CacheValue;
use crate::read::{LoadOptions, Lookup, Seen};
use crate::resilience::{Plan, Stale};
use crate::site::{Call, Outcome as Ended};
use crate::throttle::warn_throttled;
use crate::{Cache, Error};

/// The collection a batch function takes: anything whose references iterate over the
/// elements (`Vec`, a slice, `HashSet`, `BTreeSet`, `VecDeque`, and references to them).
#[diagnostic::on_unimplemented(
    message = "the `batch` parameter must be a collection of the elements, such as `Vec<K>`, `&[K]`, `HashSet<K>` or `BTreeSet<K>`, not `{Self}`",
    label = "not a collection of elements",
    note = "`batch(id in ids)` names the element `id` of the collection parameter `ids`"
)]
pub trait BatchCollection<K> {
    /// The elements, cloned.
    fn elements(&self) -> Vec<K>;
}

impl<C: ?Sized, K: Clone> BatchCollection<K> for C
where
    for<'x> &'x C: IntoIterator<Item = &'x K>,
{
    fn elements(&self) -> Vec<K> {
        self.into_iter().cloned().collect()
    }
}

/// What a batch function returns: a map from the element to its value (`HashMap`,
/// `BTreeMap`), or a `Result` of one.
#[diagnostic::on_unimplemented(
    message = "a `batch` function returns a map from the element to its value, such as `HashMap<K, V>`, `BTreeMap<K, V>` or a `Result` of one, where `K` is the element type: not `{Self}`",
    label = "not a map keyed by the batch's elements"
)]
pub trait BatchReturn<K>: Sized {
    /// The value of one element.
    type Value: CacheValue;

    /// The pairs of a successful call, or the call's result as it is (an `Err`).
    fn into_pairs(self) -> Result<Vec<(K, Self::Value)>, Self>;

    /// A successful result from pairs.
    fn from_pairs(pairs: Vec<(K, Self::Value)>) -> Self;
}

impl<K, V, S> BatchReturn<K> for HashMap<K, V, S>
where
    K: Eq + std::hash::Hash,
    V: CacheValue,
    S: std::hash::BuildHasher + Default,
{
    type Value = V;

    fn into_pairs(self) -> Result<Vec<(K, V)>, Self> {
        Ok(self.into_iter().collect())
    }

    fn from_pairs(pairs: Vec<(K, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Ord, V: CacheValue> BatchReturn<K> for std::collections::BTreeMap<K, V> {
    type Value = V;

    fn into_pairs(self) -> Result<Vec<(K, V)>, Self> {
        Ok(self.into_iter().collect())
    }

    fn from_pairs(pairs: Vec<(K, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K, M: BatchReturn<K>, E> BatchReturn<K> for Result<M, E> {
    type Value = M::Value;

    fn into_pairs(self) -> Result<Vec<(K, M::Value)>, Self> {
        match self {
            Ok(map) => map.into_pairs().map_err(Ok),
            Err(err) => Err(Err(err)),
        }
    }

    fn from_pairs(pairs: Vec<(K, M::Value)>) -> Self {
        Ok(M::from_pairs(pairs))
    }
}

/// What a batch caches for an element the body leaves out of its map.
pub trait Absence<V>: Send + Sync + 'static {
    /// The value cached per element.
    type Stored: CacheValue;

    /// The cached value of an element the body returned.
    fn found(value: V) -> Self::Stored;

    /// The cached value of an element the body left out, if it is cached at all.
    fn absent() -> Option<Self::Stored>;

    /// The element's value in the returned map, from its cached value (`None`: absent).
    fn served(stored: &Self::Stored) -> Option<V>;
}

/// Elements the body leaves out are not cached: asked for again on the next call. Each
/// element is cached as `V`, the entry of a single-item function returning `V`,
/// `Result<V, E>` or `Option<V>`.
pub struct NotCached;

impl<V: CacheValue> Absence<V> for NotCached {
    type Stored = V;

    #[inline]
    fn found(value: V) -> V {
        value
    }

    #[inline]
    fn absent() -> Option<V> {
        None
    }

    #[inline]
    fn served(stored: &V) -> Option<V> {
        Some(stored.clone())
    }
}

/// `cache_none`: an element the body leaves out is cached as absent (`None`) for the TTL,
/// so the body is not asked for it again. Each element is cached as `Option<V>`, the entry
/// of a single-item function returning `Option<V>` with `cache_none`.
pub struct CachedAsNone;

impl<V: CacheValue> Absence<V> for CachedAsNone {
    type Stored = Option<V>;

    #[inline]
    fn found(value: V) -> Option<V> {
        Some(value)
    }

    #[inline]
    fn absent() -> Option<Option<V>> {
        Some(None)
    }

    #[inline]
    fn served(stored: &Option<V>) -> Option<V> {
        stored.clone()
    }
}

/// One distinct element of the batch.
struct Element<K, V> {
    item: K,
    /// The element's own key text (its `KeyPart` encoding, injective): how the pairs the
    /// body returns are matched to the elements.
    ident: String,
    skey: String,
    /// The element's tags, for the elements this batch loads.
    tags: Vec<TagKeys>,
    state: State<V>,
    stale: Option<Stale<V>>,
}

enum State<V> {
    Found(Arc<V>),
    /// This batch loads it.
    Lead(Leader, Seen),
    /// Another call is loading it.
    Follow(Follower),
    /// Loaded elsewhere and failed, or not returned by the body.
    Absent,
}

/// A batch after its lookups: what was found, what this call loads, what it awaits.
pub struct Begun<K, V, A: Absence<V>> {
    cache: Cache,
    elements: Vec<Element<K, A::Stored>>,
    plan: Plan,
    version: u32,
    epoch: u64,
    ident: Ident<K>,
    /// The function's counters and the call's span.
    call: Call,
    /// When the lookups ended (and the body, if any, started).
    looked_up: std::time::Instant,
    /// The furthest tier an element came from, for the span.
    reached: Option<Ended>,
}

/// Writes an element alone, by its `KeyPart` encoding (injective): how the pairs the body
/// returns are matched to the elements.
pub type Ident<K> = fn(&K, &mut String);

/// The text `ident` writes for `item`.
fn ident_of<K>(ident: Ident<K>, item: &K) -> String {
    let mut out = String::new();
    ident(item, &mut out);
    out
}

/// Looks up every element of a batch: L1, then the rest in Redis in one round trip; the
/// elements left to load are registered as loads in flight.
pub(crate) async fn begin<K, V, A>(
    cache: &Cache,
    scope: Option<&str>,
    items: Vec<K>,
    write: impl Fn(&K, &mut String),
    ident: Ident<K>,
    tags: impl Fn(&K) -> Vec<String>,
    options: &LoadOptions,
) -> Begun<K, V, A>
where
    V: CacheValue,
    A: Absence<V>,
{
    let place = Place::of(scope);
    let plan = cache.plan(options, false);
    let epoch = cache.inner.l2.as_ref().map_or(0, |l2| l2.link().epoch());
    let mut begun = Begun {
        cache: cache.clone(),
        elements: Vec::with_capacity(items.len()),
        plan,
        version: options.version,
        epoch,
        ident,
        call: options.call.clone(),
        looked_up: std::time::Instant::now(),
        reached: None,
    };
    // The elements land in the function's own share of L1, if it has one.
    let share = options.call.site.and_then(crate::site::Site::share);
    // Duplicates are loaded once.
    let mut seen_keys: HashMap<String, ()> = HashMap::with_capacity(items.len());
    for item in items {
        let mut skey = cache.key_buffer(place, 32);
        write(&item, &mut skey);
        if crate::key::is_unkeyable(&skey) {
            // A key part could not be written: the element is loaded for this call alone
            // (a flight of its own) and stored nowhere.
            static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            skey.push_str(&call.to_string());
        }
        if seen_keys.insert(skey.clone(), ()).is_some() {
            continue;
        }
        let state = match cache.l1_get::<A::Stored>(&skey) {
            Some(value) => {
                begun.call.count(Ended::L1Hit);
                begun.reached(Ended::L1Hit);
                State::Found(Arc::new(value))
            }
            None => match cache.inner.flights.join(&skey) {
                Role::Leader(mut leader) => {
                    leader.land_in(share);
                    State::Lead(leader, Seen::Unknown)
                }
                Role::Follower(follower) => State::Follow(follower),
            },
        };
        let (stale, tags) = match state {
            State::Lead(..) => (
                (!plan.stale_for.is_zero())
                    .then(|| cache.l1_stale::<A::Stored>(&skey, plan.stale_for))
                    .flatten(),
                tags(&item).iter().map(|t| cache.tag_keys(t)).collect(),
            ),
            _ => (None, Vec::new()),
        };
        begun.elements.push(Element {
            ident: ident_of(ident, &item),
            item,
            skey,
            tags,
            state,
            stale,
        });
    }
    // Registered in this process too, whatever Redis does (see `Cache::lead`).
    for element in &begun.elements {
        if matches!(element.state, State::Lead(..)) {
            cache.register_local_tags(&element.tags, &element.skey);
        }
    }
    begun.read_redis().await;
    begun.looked_up = std::time::Instant::now();
    begun
}

impl<K, V: CacheValue, A: Absence<V>> Begun<K, V, A> {
    /// Remembers the furthest tier an element came from, for the span.
    fn reached(&mut self, tier: Ended) {
        let rank = |t: Ended| match t {
            Ended::L1Hit => 0,
            Ended::L2Hit => 1,
            Ended::Joined => 2,
            Ended::Stale => 3,
            Ended::Loaded | Ended::Failed => 4,
        };
        if self.reached.is_none_or(|r| rank(tier) > rank(r)) {
            self.reached = Some(tier);
        }
    }

    /// Registers the elements this batch leads under their tags and reads them from
    /// Redis, in one round trip. When Redis cannot answer, the elements stay to be loaded.
    async fn read_redis(&mut self) {
        let Some(l2) = self.cache.inner.l2.clone() else {
            return;
        };
        let led: Vec<usize> = (0..self.elements.len())
            .filter(|&i| matches!(self.elements[i].state, State::Lead(..)))
            .collect();
        if led.is_empty() {
            return;
        }
        let keys: Vec<String> = led.iter().map(|&i| self.elements[i].skey.clone()).collect();
        let tags: Vec<&[TagKeys]> = led.iter().map(|&i| &self.elements[i].tags[..]).collect();
        let registration = self.cache.registration(&self.plan);
        let reads = l2
            .read_many(&keys, &tags, &registration, self.cache.inner.max_value_size)
            .await;
        let reads: Vec<_> = match reads {
            Ok(reads) => reads.into_iter().map(Ok).collect(),
            Err(fault) => {
                if !matches!(fault, crate::link::Fault::Unavailable) {
                    crate::throttle::warn_throttled!(error = %fault, "cache: Redis read failed, loading the batch without it");
                }
                return;
            }
        };
        let mut reached_l2 = false;
        for (i, read) in led.into_iter().zip(reads) {
            let element = &mut self.elements[i];
            let lookup =
                self.cache
                    .interpret::<A::Stored>(&element.skey, read, self.version, &self.plan);
            let State::Lead(leader, _) = std::mem::replace(&mut element.state, State::Absent)
            else {
                continue;
            };
            element.state = match lookup {
                Lookup::Hit(value, found, _) => {
                    self.cache
                        .land_l2_hit(leader, Arc::clone(&value), found, &self.plan);
                    self.call.count(Ended::L2Hit);
                    reached_l2 = true;
                    State::Found(value)
                }
                Lookup::Stale(stale, bytes) => {
                    element.stale.get_or_insert(stale);
                    State::Lead(leader, Seen::Bytes(bytes))
                }
                Lookup::Miss(seen) => State::Lead(leader, seen),
                Lookup::Failed(_) => State::Lead(leader, Seen::Unknown),
            };
        }
        if reached_l2 {
            self.reached(Ended::L2Hit);
        }
    }

    /// The elements the body must load: those no tier had and no other call is loading.
    pub fn missing(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.elements
            .iter()
            .filter(|e| matches!(e.state, State::Lead(..)))
            .map(|e| e.item.clone())
            .collect()
    }

    /// Ends the batch with the body's result (`None`: the body did not run, nothing was
    /// missing): stores each element it returned, awaits the elements other calls load,
    /// and returns every element found. When the body failed, the elements it was to load
    /// fall back on their stale values if they all have one, else the failure is returned.
    pub async fn finish<R>(mut self, result: Option<R>) -> R
    where
        R: BatchReturn<K, Value = V>,
    {
        if let Some(result) = result {
            let took = self.looked_up.elapsed();
            self.call.load_started();
            let pairs = result.into_pairs();
            self.call.load_ended(took, pairs.is_ok());
            match pairs {
                Ok(pairs) => {
                    self.reached(Ended::Loaded);
                    let mut loaded: HashMap<String, (K, V)> = HashMap::with_capacity(pairs.len());
                    for (item, value) in pairs {
                        loaded.insert(ident_of(self.ident, &item), (item, value));
                    }
                    self.store(&mut loaded).await;
                    // Elements the body returned without being asked are dropped: a call
                    // returns what it asked for, the same whichever tier answered.
                    if !loaded.is_empty() {
                        warn_throttled!(
                            function = self.call.function(),
                            elements = loaded.len(),
                            "cache: a batch body returned elements it was not asked for; they are not returned nor cached"
                        );
                    }
                }
                Err(failed) => {
                    let all_stale = self
                        .elements
                        .iter()
                        .all(|e| !matches!(e.state, State::Lead(..)) || e.stale.is_some());
                    if !all_stale {
                        for element in &mut self.elements {
                            if let State::Lead(leader, _) =
                                std::mem::replace(&mut element.state, State::Absent)
                            {
                                leader.fail(None);
                            }
                        }
                        return failed;
                    }
                    self.fall_back();
                    self.reached(Ended::Stale);
                }
            }
        }
        let followed = self
            .elements
            .iter()
            .filter(|e| matches!(e.state, State::Follow(_)))
            .count();
        for _ in 0..followed {
            self.call.count(Ended::Joined);
        }
        if followed > 0 {
            self.reached(Ended::Joined);
        }
        if let Some(reached) = self.reached {
            self.call.record(reached);
        }
        let mut pairs = Vec::with_capacity(self.elements.len());
        for element in self.elements {
            let value = match element.state {
                State::Found(stored) => A::served(&stored),
                State::Follow(follower) => match follower.wait().await {
                    Outcome::Value(entry) => {
                        entry.take::<A::Stored>().ok().and_then(|s| A::served(&s))
                    }
                    _ => self
                        .cache
                        .l1_get::<A::Stored>(&element.skey)
                        .and_then(|s| A::served(&s)),
                },
                State::Lead(leader, _) => {
                    leader.fail(None);
                    None
                }
                State::Absent => None,
            };
            if let Some(value) = value {
                pairs.push((element.item, value));
            }
        }
        R::from_pairs(pairs)
    }

    /// Stores each led element the body returned, in one round trip to Redis.
    async fn store(&mut self, loaded: &mut HashMap<String, (K, V)>) {
        let cache = self.cache.clone();
        let can_fill = cache.inner.l2.is_some() && cache.bus_connected();
        let life = crate::envelope::Life::starting_now(self.plan.ttl);
        // Input: the led elements and their loaded values.
        // Output: each value filled in Redis (compare-and-set) and landed in L1.
        let mut landing: Vec<(usize, Arc<A::Stored>, bool)> = Vec::new();
        {
            let mut fills: Vec<(String, FillIf<'_>, Vec<u8>)> = Vec::new();
            let mut filled_at: Vec<usize> = Vec::new();
            for (i, element) in self.elements.iter().enumerate() {
                let State::Lead(leader, seen) = &element.state else {
                    continue;
                };
                let stored = match loaded.remove(&element.ident) {
                    Some((_, value)) => A::found(value),
                    None => match A::absent() {
                        Some(absent) => absent,
                        None => continue,
                    },
                };
                let value = Arc::new(stored);
                if leader.is_stale() || crate::key::is_unkeyable(&element.skey) {
                    if leader.is_stale() {
                        crate::stats::bump(&cache.inner.counters.stale_loads_dropped);
                    }
                    landing.push((i, value, false));
                    continue;
                }
                let fill = seen.fill_if();
                let encoded = fill.filter(|_| can_fill).and_then(|fill| {
                    cache
                        .encode(
                            &element.skey,
                            &*value,
                            self.version,
                            life,
                            self.plan.timed(),
                        )
                        .ok()
                        .map(|bytes| (fill, bytes))
                });
                if let Some((fill, bytes)) = encoded {
                    fills.push((element.skey.clone(), fill, bytes));
                    filled_at.push(landing.len());
                }
                landing.push((i, value, true));
            }
            if let (Some(l2), false) = (&cache.inner.l2, fills.is_empty()) {
                let stored = l2
                    .fill_many(
                        &fills,
                        self.plan.keep(),
                        cache.inner.max_value_size,
                        self.epoch,
                    )
                    .await;
                if let Ok(stored) = stored {
                    for (&at, stored) in filled_at.iter().zip(stored) {
                        if !stored {
                            // The key changed while it loaded: the value is not cached.
                            crate::stats::bump(&cache.inner.counters.stale_loads_dropped);
                            landing[at].2 = false;
                        }
                    }
                }
            }
        }
        let times = self.plan.times(Duration::ZERO, self.plan.ttl);
        for (i, value, store) in landing {
            let element = &mut self.elements[i];
            if let State::Lead(leader, _) = std::mem::replace(&mut element.state, State::Absent) {
                leader.land(
                    &cache.inner.l1,
                    Entry::with_times(Arc::clone(&value), times),
                    store,
                );
                element.state = State::Found(value);
            }
        }
    }

    /// After a failed body: every led element serves its stale value.
    fn fall_back(&mut self) {
        for element in &mut self.elements {
            let Some(stale) = element.stale.take() else {
                continue;
            };
            if let State::Lead(leader, _) = std::mem::replace(&mut element.state, State::Absent) {
                crate::stats::bump(&self.cache.inner.counters.stale_served);
                self.call.count(Ended::Stale);
                leader.land(
                    &self.cache.inner.l1,
                    stale.entry.refreshed_for(self.plan.throttle),
                    true,
                );
                element.state = State::Found(stale.value);
            }
        }
    }
}

impl Cache {
    /// Removes every key of `skeys` everywhere: one round trip to Redis for all of them.
    pub(crate) async fn remove_many_at(&self, skeys: &[String]) -> Result<(), Error> {
        tracing::debug!(target: "cachemacro", keys = skeys.len(), "invalidation: remove many");
        for skey in skeys {
            self.inner.flights.invalidate(skey);
        }
        let Some(l2) = &self.inner.l2 else {
            for skey in skeys {
                self.remove_local_at(skey);
            }
            return Ok(());
        };
        self.tombstone_keys(l2, skeys)
            .await
            .map_err(|f| Error::from_fault("remove", f))
    }
}
