//! A function's share of L1: `#[cached(l1_capacity = N)]` gives the function a store of
//! its own, of at most N entries, beside the store the other functions share (the `cached`
//! crate's per-function `size`). Its loads land there and its hits read there, so one hot
//! function evicts its own entries, never the others'; its entries can be counted and
//! cleared as a whole.
//!
//! Each share is a quick_cache store like L1's own (S3-FIFO, the same lifecycle: evictions
//! are counted and end the fronts' copies, front hits count as reads), made on the
//! function's first load through each cache. Everything else that names a storage key
//! (a removal, an invalidation from a peer, `Cache::get`, a tag) looks in every store, and
//! an insert into one store drops the key from the others, so a key lives in one store at a
//! time and every invalidation finds it. A function's identity is its `Site`: ids are
//! process-wide, handed out on first use, at most [`MAX_SHARES`] of them (functions past
//! that use the shared store).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::Store;

/// The most functions with a share of their own, per process.
pub(crate) const MAX_SHARES: usize = 256;

/// A function's share: its id and its capacity in entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) id: usize,
    pub(crate) capacity: u64,
}

/// The next share id (0 means none assigned yet).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// Which ids each function path holds (two methods of one module share a path).
static NAMES: Mutex<Vec<(&'static str, usize)>> = Mutex::new(Vec::new());

/// The share of the function `name` whose id lives in `slot`, assigned on first use;
/// `None` past [`MAX_SHARES`].
pub(crate) fn assign(slot: &AtomicU32, name: &'static str, capacity: u64) -> Option<Share> {
    let id = match slot.load(Ordering::Relaxed) {
        0 => {
            let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed).min(u32::MAX - 1);
            match slot.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    if (fresh as usize) < MAX_SHARES {
                        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
                        names.push((name, fresh as usize));
                    }
                    fresh
                }
                Err(already) => already,
            }
        }
        id => id,
    };
    ((id as usize) < MAX_SHARES).then_some(Share {
        id: id as usize,
        capacity,
    })
}

/// The share ids of the function `name` (its path).
pub(crate) fn ids_of(name: &str) -> Vec<usize> {
    let names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|&(_, id)| id)
        .collect()
}

/// One L1's shares, by id.
pub(super) struct Shares {
    stores: Box<[OnceLock<Arc<Store>>]>,
    /// One past the highest id with a store: the stores to look in.
    used: AtomicUsize,
}

impl Shares {
    pub(super) fn new() -> Self {
        Self {
            stores: (0..MAX_SHARES).map(|_| OnceLock::new()).collect(),
            used: AtomicUsize::new(0),
        }
    }

    /// The store of share `id`, if it was made.
    #[inline]
    pub(super) fn get(&self, id: usize) -> Option<&Arc<Store>> {
        self.stores.get(id)?.get()
    }

    /// The store of `share`, made with `make` on first use.
    pub(super) fn get_or_make(&self, share: Share, make: impl FnOnce(u64) -> Store) -> &Arc<Store> {
        let store = self.stores[share.id].get_or_init(|| Arc::new(make(share.capacity)));
        self.used.fetch_max(share.id + 1, Ordering::Release);
        store
    }

    /// Whether any share has a store.
    #[inline]
    pub(super) fn any(&self) -> bool {
        self.used.load(Ordering::Acquire) != 0
    }

    /// Every store made so far, with its id.
    pub(super) fn each(&self) -> impl Iterator<Item = (usize, &Arc<Store>)> {
        let used = self.used.load(Ordering::Acquire);
        self.stores[..used]
            .iter()
            .enumerate()
            .filter_map(|(id, store)| Some((id, store.get()?)))
    }
}
