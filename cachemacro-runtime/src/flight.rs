//! Single flight: concurrent misses of one key run the loader once, and an invalidation that
//! lands while a load is in flight is never undone by that load.
//!
//! A cache's own loader deduplication (moka's `try_get_with`, say) does not protect against
//! a `remove` during a load: the load then inserts the value it read before the write. Here
//! every in-flight load is registered per key; `remove`, `set` and `clear` mark the flight
//! *stale* under the same lock that a load's commit takes, so either the commit happens
//! first (and the invalidation then removes it) or the commit sees the mark and keeps the
//! value out of the cache.
//!
//! A `set` runs as a flight too: it replaces (and marks stale) any load in flight for its
//! key, and a `remove` that comes while it writes Redis keeps its value out of L1.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::watch;

use crate::l1::{Entry, Share, L1};

const SHARDS: usize = 64;

/// A failed result the leader shares with its followers: the caller's own return value
/// (an `Err`, a `None`), behind a `Mutex` so that each follower can clone it out.
pub(crate) type SharedFailure = Arc<dyn Any + Send + Sync>;

/// How a flight ended, as its followers learn it.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The loaded value.
    Value(Entry),
    /// The load produced a result that is not cached (an `Err`, a `None`); the result
    /// itself when the leader could share it.
    Failed(Option<SharedFailure>),
    /// The leader was cancelled (or panicked): one of the followers takes over.
    Cancelled,
}

#[derive(Clone)]
enum State {
    Pending,
    /// A value to hand out meanwhile (a stale value, served while the load goes on in the
    /// background); the flight is still in the air.
    Interim(Entry),
    Landed(Outcome),
}

struct Flight {
    stale: AtomicBool,
    /// How the followers learn the outcome: made by the first of them (or by a value handed
    /// out meanwhile), as most flights have none. A channel costs an allocation, and each
    /// send and its drop wake its eight lists of waiters, each under a lock of its own.
    ///
    /// A follower makes or subscribes to it while it holds the shard lock and finds the
    /// flight registered; the leader detaches the flight under that lock before it sends.
    /// So a leader that finds no channel has no follower to tell.
    tx: OnceLock<watch::Sender<State>>,
}

impl Flight {
    fn channel(&self) -> &watch::Sender<State> {
        self.tx.get_or_init(|| watch::Sender::new(State::Pending))
    }

    /// Tells the followers, if any, that the flight is in `state`.
    fn tell(&self, state: State) {
        if let Some(tx) = self.tx.get() {
            tx.send_replace(state);
        }
    }
}

/// Keyed by a fast hash (foldhash, through quick_cache, which L1 uses already), seeded per
/// process: every load of a key hashes it four times here.
type Shard = HashMap<String, Arc<Flight>, quick_cache::DefaultHashBuilder>;

/// The registry of loads in flight, sharded by key. Cloning it is cheap: the clones share
/// the registry, so that a load can go on in a task of its own.
#[derive(Clone)]
pub(crate) struct Flights {
    shards: Arc<[Mutex<Shard>]>,
    /// Picks a key's shard.
    hasher: quick_cache::DefaultHashBuilder,
}

/// The part a caller plays for one key.
pub(crate) enum Role {
    /// Load the value and [`Leader::land`] it.
    Leader(Leader),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        use std::hash::BuildHasher;
        let index = (self.hasher.hash_one(key) >> 32) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    fn start(&self, shard: &mut Shard, key: &str) -> Leader {
        let flight = Arc::new(Flight {
            stale: AtomicBool::new(false),
            tx: OnceLock::new(),
        });
        shard.insert(key.to_owned(), Arc::clone(&flight));
        Leader {
            flights: self.clone(),
            key: key.to_owned(),
            flight,
            landed: false,
            share: None,
        }
    }

    /// Joins the flight for `key`, starting it when none is in the air.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut shard = self.shard(key);
        if let Some(flight) = shard.get(key) {
            return Role::Follower(Follower {
                rx: flight.channel().subscribe(),
            });
        }
        Role::Leader(self.start(&mut shard, key))
    }

    /// Starts a flight for `key` that replaces (and marks stale) any flight in the air: a
    /// write whose value must win over what a load in flight read before it.
    pub(crate) fn lead_exclusive(&self, key: &str) -> Leader {
        let mut shard = self.shard(key);
        if let Some(flight) = shard.remove(key) {
            flight.stale.store(true, Ordering::Release);
        }
        self.start(&mut shard, key)
    }

    /// Whether a load of `key` is in flight.
    pub(crate) fn is_in_flight(&self, key: &str) -> bool {
        self.shard(key).contains_key(key)
    }

    /// Marks the flight for `key` stale and detaches it, so that later callers start afresh.
    /// Call *before* removing the key from L1.
    pub(crate) fn invalidate(&self, key: &str) {
        if let Some(flight) = self.shard(key).remove(key) {
            flight.stale.store(true, Ordering::Release);
        }
    }

    /// Marks stale every flight whose key starts with `prefix` (all of them for `""`).
    /// Call *before* clearing L1.
    pub(crate) fn invalidate_prefix(&self, prefix: &str) {
        self.invalidate_where(|key| key.starts_with(prefix));
    }

    /// Marks stale every flight whose key `hit` picks. Call *before* dropping the entries
    /// from L1.
    pub(crate) fn invalidate_where(&self, hit: impl Fn(&str) -> bool) {
        for shard in self.shards.iter() {
            lock(shard).retain(|key, flight| {
                let hit = hit(key);
                if hit {
                    flight.stale.store(true, Ordering::Release);
                }
                !hit
            });
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // No code panics while holding a shard lock, and the map stays consistent regardless.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The caller that runs the load. Dropping it without landing (the caller was cancelled,
/// or the loader panicked) releases the followers, and one of them takes over.
pub(crate) struct Leader {
    flights: Flights,
    key: String,
    flight: Arc<Flight>,
    landed: bool,
    /// The loading function's own share of L1, where the value lands (`l1::share`).
    share: Option<Share>,
}

impl Leader {
    /// Lands the value in `share`, the loading function's own store of L1.
    pub(crate) fn land_in(&mut self, share: Option<Share>) {
        self.share = share;
    }

    /// Whether an invalidation has hit this key since the flight started.
    pub(crate) fn is_stale(&self) -> bool {
        self.flight.stale.load(Ordering::Acquire)
    }

    /// Starts the flight afresh when an invalidation marked it stale before its load began
    /// (it waited for another instance's load, say): the mark is cleared and the flight is
    /// registered again, so that a later invalidation marks it as any flight. The load must
    /// then read what it compares its fill against only after this returns. Returns whether
    /// the flight is fresh: `false` when another flight of the key started meanwhile (this
    /// one then stays stale and stores nothing).
    pub(crate) fn restart(&mut self) -> bool {
        let mut shard = self.flights.shard(&self.key);
        if !self.is_stale() {
            return true;
        }
        if shard.contains_key(&self.key) {
            return false;
        }
        self.flight.stale.store(false, Ordering::Release);
        shard.insert(self.key.clone(), Arc::clone(&self.flight));
        true
    }

    /// Ends the flight with a value: stores `entry` in L1 when `store` is set and the
    /// flight did not go stale, and hands it to the followers.
    pub(crate) fn land(mut self, l1: &L1, entry: Entry, store: bool) {
        {
            let mut shard = self.flights.shard(&self.key);
            self.detach(&mut shard);
            if store && !self.is_stale() {
                l1.insert_for(self.share, std::mem::take(&mut self.key), entry.clone());
            }
        }
        self.finish(Outcome::Value(entry));
    }

    /// Ends the flight without a value to cache; the followers get `shared` (the leader's
    /// own result, when it can be cloned) or load for themselves.
    pub(crate) fn fail(mut self, shared: Option<SharedFailure>) {
        {
            let mut shard = self.flights.shard(&self.key);
            self.detach(&mut shard);
        }
        self.finish(Outcome::Failed(shared));
    }

    /// Stores `entry` in L1 unless the flight went stale; the flight goes on.
    pub(crate) fn keep(&self, l1: &L1, entry: Entry) {
        let _shard = self.flights.shard(&self.key);
        if !self.is_stale() {
            l1.insert_for(self.share, self.key.clone(), entry);
        }
    }

    /// Hands `entry` to the followers waiting now, and stores it in L1 unless the flight
    /// went stale, while the load goes on: a stale value served while a slow reload runs
    /// in the background.
    pub(crate) fn interim(&self, l1: &L1, entry: Entry) {
        self.keep(l1, entry.clone());
        // Made here if no follower made it: one that comes later gets the value at once.
        self.flight.channel().send_replace(State::Interim(entry));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.landed = true;
        self.flight.tell(State::Landed(outcome));
    }

    fn detach(&self, shard: &mut Shard) {
        if shard
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            shard.remove(&self.key);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.landed {
            let mut shard = self.flights.shard(&self.key);
            self.detach(&mut shard);
            drop(shard);
            self.flight.tell(State::Landed(Outcome::Cancelled));
        }
    }
}

/// A caller waiting for another caller's load of the same key.
pub(crate) struct Follower {
    rx: watch::Receiver<State>,
}

impl Follower {
    /// How the leader's flight ended, or the value it hands out meanwhile.
    pub(crate) async fn wait(mut self) -> Outcome {
        let state = self
            .rx
            .wait_for(|state| !matches!(state, State::Pending))
            .await;
        match state.as_deref() {
            Ok(State::Landed(outcome)) => outcome.clone(),
            Ok(State::Interim(entry)) => Outcome::Value(entry.clone()),
            // The sender is gone without landing: treat it as a cancelled leader.
            _ => Outcome::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(value: u64) -> Entry {
        Entry::new(Arc::new(value), Duration::from_secs(60))
    }

    fn lead(flights: &Flights, key: &str) -> Leader {
        match flights.join(key) {
            Role::Leader(leader) => leader,
            Role::Follower(_) => panic!("a flight of {key} was in the air"),
        }
    }

    fn follow(flights: &Flights, key: &str) -> Follower {
        match flights.join(key) {
            Role::Follower(follower) => follower,
            Role::Leader(_) => panic!("no flight of {key} was in the air"),
        }
    }

    /// How `follower`'s flight ended; fails (rather than hangs) when nobody tells it.
    async fn ended(follower: Follower) -> Outcome {
        tokio::time::timeout(Duration::from_secs(5), follower.wait())
            .await
            .expect("the follower was told")
    }

    fn value_of(outcome: Outcome) -> Option<u64> {
        match outcome {
            Outcome::Value(entry) => entry.take::<u64>().ok(),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_flight_without_followers_makes_no_channel_and_lands_in_l1() {
        let (flights, l1) = (Flights::new(), L1::new(10));
        let leader = lead(&flights, "k");
        let flight = Arc::clone(&leader.flight);
        leader.land(&l1, entry(1), true);
        assert!(flight.tx.get().is_none(), "nobody to tell, no channel");
        assert_eq!(l1.get("k").and_then(|e| e.take::<u64>().ok()), Some(1));
        assert!(!flights.is_in_flight("k"));
    }

    #[tokio::test]
    async fn followers_that_joined_before_the_landing_get_the_value() {
        let (flights, l1) = (Flights::new(), L1::new(10));
        let leader = lead(&flights, "k");
        let (first, second) = (follow(&flights, "k"), follow(&flights, "k"));
        leader.land(&l1, entry(7), true);
        assert_eq!(value_of(ended(first).await), Some(7));
        assert_eq!(value_of(ended(second).await), Some(7));
    }

    #[tokio::test]
    async fn a_follower_that_comes_after_an_interim_value_gets_it_at_once() {
        let (flights, l1) = (Flights::new(), L1::new(10));
        let leader = lead(&flights, "k");
        leader.interim(&l1, entry(3));
        let late = follow(&flights, "k");
        // Told before the landing, which comes only after.
        assert_eq!(value_of(ended(late).await), Some(3));
        leader.land(&l1, entry(4), true);
    }

    #[tokio::test]
    async fn a_cancelled_or_failed_leader_releases_its_followers() {
        let flights = Flights::new();
        let leader = lead(&flights, "k");
        let follower = follow(&flights, "k");
        drop(leader);
        assert!(matches!(ended(follower).await, Outcome::Cancelled));

        let leader = lead(&flights, "k");
        let follower = follow(&flights, "k");
        leader.fail(None);
        assert!(matches!(ended(follower).await, Outcome::Failed(None)));
    }

    #[tokio::test]
    async fn an_invalidated_flight_keeps_its_value_out_of_l1_but_still_tells_its_followers() {
        let (flights, l1) = (Flights::new(), L1::new(10));
        let leader = lead(&flights, "k");
        let follower = follow(&flights, "k");
        flights.invalidate("k");
        assert!(leader.is_stale());
        // A caller after the invalidation starts a flight of its own.
        let next = lead(&flights, "k");
        leader.land(&l1, entry(5), true);
        assert!(l1.get("k").is_none(), "the stale load is not stored");
        assert_eq!(value_of(ended(follower).await), Some(5));
        assert!(
            flights.is_in_flight("k"),
            "the new flight is still registered"
        );
        next.land(&l1, entry(6), true);
        assert_eq!(l1.get("k").and_then(|e| e.take::<u64>().ok()), Some(6));
    }
}
