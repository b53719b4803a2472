//! Single flight: concurrent misses of one key run the loader once, and an invalidation that
//! lands while a load is in flight is never undone by that load.
//!
//! moka's own `try_get_with` deduplicates loads, but `invalidate` does not take the per-key
//! lock it holds, so a `remove` during a load is followed by the load inserting the value it
//! read before the write. Here every in-flight load is registered per key; `remove`, `set`
//! and `clear` mark the flight *stale* under the same lock that a load's commit takes, so
//! either the commit happens first (and the invalidation then removes it) or the commit sees
//! the mark and keeps the value out of the cache.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::l1::{Entry, L1};

const SHARDS: usize = 64;

/// What followers of a flight learn when it lands.
#[derive(Clone)]
enum State {
    Pending,
    /// The loaded value; followers return it.
    Done(Entry),
    /// The leader's result was not cacheable (an `Err`, a `None`): followers load themselves.
    Retry,
}

struct Flight {
    stale: AtomicBool,
    tx: watch::Sender<State>,
}

type Shard = HashMap<String, Arc<Flight>>;

/// The registry of loads in flight, sharded by key.
pub(crate) struct Flights {
    shards: Box<[Mutex<Shard>]>,
}

/// The part a caller plays for one key.
pub(crate) enum Role<'a> {
    /// Load the value and [`Leader::land`] it.
    Leader(Leader<'a>),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() as usize) % self.shards.len();
        lock(&self.shards[index])
    }

    /// Joins the flight for `key`, starting it when none is in the air.
    pub(crate) fn join<'a>(&'a self, key: &str) -> Role<'a> {
        let mut shard = self.shard(key);
        if let Some(flight) = shard.get(key) {
            return Role::Follower(Follower {
                rx: flight.tx.subscribe(),
            });
        }
        let flight = Arc::new(Flight {
            stale: AtomicBool::new(false),
            tx: watch::Sender::new(State::Pending),
        });
        shard.insert(key.to_owned(), Arc::clone(&flight));
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            flight,
            landed: false,
        })
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

    /// Stores `entry` in L1 under the flight lock, so that a load in flight cannot overwrite
    /// it with an older value.
    pub(crate) fn insert(&self, l1: &L1, key: String, entry: Entry) {
        let mut shard = self.shard(&key);
        if let Some(flight) = shard.remove(&key) {
            flight.stale.store(true, Ordering::Release);
        }
        l1.insert(key, entry);
    }

    /// Marks stale every flight whose key starts with `prefix` (all of them for `""`).
    /// Call *before* clearing L1.
    pub(crate) fn invalidate_prefix(&self, prefix: &str) {
        for shard in self.shards.iter() {
            lock(shard).retain(|key, flight| {
                let hit = key.starts_with(prefix);
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
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    flight: Arc<Flight>,
    landed: bool,
}

impl Leader<'_> {
    /// Whether an invalidation has hit this key since the flight started.
    pub(crate) fn is_stale(&self) -> bool {
        self.flight.stale.load(Ordering::Acquire)
    }

    /// Ends the flight: stores `entry` in L1 when `store` is set and the flight did not go
    /// stale, and hands it to the followers. `None` (not cacheable) makes the followers load
    /// for themselves.
    pub(crate) fn land(mut self, l1: &L1, entry: Option<Entry>, store: bool) {
        self.landed = true;
        {
            let mut shard = self.flights.shard(&self.key);
            self.detach(&mut shard);
            if let Some(entry) = entry.as_ref().filter(|_| store && !self.is_stale()) {
                l1.insert(std::mem::take(&mut self.key), entry.clone());
            }
        }
        self.flight.tx.send_replace(match entry {
            Some(entry) => State::Done(entry),
            None => State::Retry,
        });
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

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.landed {
            let mut shard = self.flights.shard(&self.key);
            self.detach(&mut shard);
            drop(shard);
            self.flight.tx.send_replace(State::Retry);
        }
    }
}

/// A caller waiting for another caller's load of the same key.
pub(crate) struct Follower {
    rx: watch::Receiver<State>,
}

impl Follower {
    /// The leader's value, or `None` when the caller should try again (the leader failed,
    /// was cancelled, or produced a value that is not cached).
    pub(crate) async fn wait(mut self) -> Option<Entry> {
        let state = self
            .rx
            .wait_for(|state| !matches!(state, State::Pending))
            .await
            .ok()?;
        match &*state {
            State::Done(entry) => Some(entry.clone()),
            _ => None,
        }
    }
}
