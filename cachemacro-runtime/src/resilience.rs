//! What a load does when its source is slow or failing: serve the last good value
//! (`stale_for`, the fail-safe), answer with it before a slow reload finishes
//! (`soft_timeout`), give up on a reload (`hard_timeout`), reload before the value expires
//! (`refresh_ahead`), and let one instance of the fleet load a cold key for all
//! (`fleet_single_flight`).
//!
//! Every stale value served comes from L1 or Redis, where an invalidation removes it
//! (`remove` writes a tombstone, a tag or purge deletes, a version bump changes the key): a
//! value that an invalidation removed is never served as stale. A stale value put back in
//! L1 (for the fail-safe throttle, or while a slow reload runs) goes through the load's
//! flight, which an invalidation marks, so it cannot come back either.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Notify;

use crate::l1::{Entry, Times};

/// The default time a stale value is served again, as if fresh, after a reload failed,
/// before the next reload is tried.
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(10);

/// How a cached function behaves when its source is slow or failing. Each `None` takes the
/// cache's default (see [`CacheBuilder`](crate::CacheBuilder)). `#[cached]` fills it from its
/// arguments of the same names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resilience {
    /// How long past its TTL an entry is kept to be served when a reload fails.
    pub stale_for: Option<Duration>,
    /// With a stale value, how long callers wait for a reload before they get the stale
    /// value (the reload goes on in the background).
    pub soft_timeout: Option<Duration>,
    /// With a stale value, how long a reload may take before it counts as failed.
    pub hard_timeout: Option<Duration>,
    /// The fraction of the TTL after which a hit also reloads the value in the background.
    pub refresh_ahead: Option<f64>,
    /// How long a stale value is served as if fresh after a failed reload.
    pub fail_safe_throttle: Option<Duration>,
    /// Fleet-wide single flight for cold keys.
    pub fleet: Option<Fleet>,
}

/// Fleet-wide single flight: one instance loads a cold key while the others wait for its
/// value in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fleet {
    /// Off for this function.
    Off,
    /// On, waiting at most the cache's `fleet_single_flight` time (1 s if it has none).
    On,
    /// On, waiting at most this long before loading anyway.
    Wait(Duration),
}

/// The default longest wait for another instance's load, when a function turns fleet-wide
/// single flight on and the cache sets no time.
const DEFAULT_FLEET_WAIT: Duration = Duration::from_secs(1);

/// The cache-wide defaults.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defaults {
    pub(crate) stale_for: Duration,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) throttle: Duration,
    pub(crate) fleet: Option<Duration>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            stale_for: Duration::ZERO,
            soft_timeout: None,
            hard_timeout: None,
            refresh_ahead: None,
            throttle: DEFAULT_FAIL_SAFE_THROTTLE,
            fleet: None,
        }
    }
}

/// The settings of one load, resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// How long the value is fresh (jitter applied).
    pub(crate) ttl: Duration,
    pub(crate) stale_for: Duration,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) throttle: Duration,
    /// The longest wait for another instance's load.
    pub(crate) fleet: Option<Duration>,
}

impl Plan {
    /// `settings` over `defaults`, for a value fresh for `ttl`; `detachable`: whether the
    /// function's body can go on in a task of its own (the soft timeout and refreshing
    /// ahead need it).
    pub(crate) fn new(
        settings: &Resilience,
        defaults: &Defaults,
        ttl: Duration,
        detachable: bool,
    ) -> Self {
        let fleet = match settings.fleet {
            Some(Fleet::Off) => None,
            Some(Fleet::On) => Some(defaults.fleet.unwrap_or(DEFAULT_FLEET_WAIT)),
            Some(Fleet::Wait(wait)) => Some(wait),
            None => defaults.fleet,
        };
        // A function's own settings are not checked by the builder: bounded here, so that no
        // deadline computed from them can overflow.
        let wait = |d: Duration| d.min(crate::MAX_WAIT);
        Self {
            ttl,
            stale_for: settings
                .stale_for
                .unwrap_or(defaults.stale_for)
                .min(crate::MAX_TTL),
            soft_timeout: settings
                .soft_timeout
                .or(defaults.soft_timeout)
                .filter(|_| detachable)
                .map(wait),
            hard_timeout: settings.hard_timeout.or(defaults.hard_timeout).map(wait),
            refresh_ahead: settings
                .refresh_ahead
                .or(defaults.refresh_ahead)
                .filter(|f| *f > 0.0 && *f < 1.0)
                .filter(|_| detachable),
            throttle: wait(settings.fail_safe_throttle.unwrap_or(defaults.throttle)),
            fleet: fleet.map(wait),
        }
    }

    /// How long the value is kept, in L1 and Redis: fresh, then stale.
    pub(crate) fn keep(&self) -> Duration {
        self.ttl.saturating_add(self.stale_for)
    }

    /// Whether values need the envelope that records their birth (format 2).
    pub(crate) fn timed(&self) -> bool {
        !self.stale_for.is_zero() || self.refresh_ahead.is_some()
    }

    /// When, from its birth, a hit starts refreshing a value ahead of its expiry.
    pub(crate) fn refresh_at(&self) -> Option<Duration> {
        self.refresh_ahead
            .map(|fraction| self.ttl.mul_f64(fraction))
    }

    /// The L1 times of a value born `age` ago that is fresh for `fresh` more.
    pub(crate) fn times(&self, age: Duration, fresh: Duration) -> Times {
        Times {
            age,
            fresh,
            keep: fresh.saturating_add(self.stale_for),
            refresh: self
                .refresh_at()
                .map(|at| at.saturating_sub(age).min(fresh)),
        }
    }
}

/// How running a body ended.
pub(crate) enum Ran<R> {
    Done(R),
    /// It panicked (the panic was caught: the load falls back on a value).
    Panicked,
    /// It took longer than the hard timeout.
    TimedOut,
}

impl<R> Ran<R> {
    /// The outcome of a body run in a task of its own.
    pub(crate) fn joined(joined: Result<R, tokio::task::JoinError>) -> Self {
        match joined {
            Ok(r) => Ran::Done(r),
            Err(err) if err.is_panic() => Ran::Panicked,
            Err(_) => Ran::TimedOut,
        }
    }
}

/// Runs `body` in the caller's task, for a load that can fall back on a value (a stale one,
/// or the current one for a refresh ahead): a panic is caught and the hard timeout applies.
/// A load with nothing to fall back on awaits its body as it is, so that a panic goes to
/// the caller.
pub(crate) async fn run_guarded<F: Future>(
    body: F,
    hard_timeout: Option<Duration>,
) -> Ran<F::Output> {
    let run = AssertUnwindSafe(body).catch_unwind();
    let finished = match hard_timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(finished) => finished,
            Err(_) => return Ran::TimedOut,
        },
        None => run.await,
    };
    match finished {
        Ok(r) => Ran::Done(r),
        Err(_) => Ran::Panicked,
    }
}

/// A value to fall back on: stale in L1, or in Redis.
pub(crate) struct Stale<T> {
    pub(crate) value: Arc<T>,
    /// Its entry, with its own deadlines (the stale window included).
    pub(crate) entry: Entry,
}

/// A lease on a key in Redis, held by the instance that loads it for the fleet.
pub(crate) struct Lease {
    pub(crate) key: String,
    /// How long it lasts without being renewed.
    pub(crate) ttl: Duration,
}

impl Lease {
    /// The lease of `skey` (a storage key under `root`).
    pub(crate) fn of(root: &str, skey: &str, max_wait: Duration) -> Self {
        let rest = skey.strip_prefix(root).unwrap_or(skey);
        Self {
            key: format!("{root}f:{rest}"),
            ttl: lease_ttl(max_wait),
        }
    }
}

/// How long a lease lasts without renewal: short, so that a crashed leader is replaced
/// soon; its holder renews it a few times per period while it loads.
fn lease_ttl(max_wait: Duration) -> Duration {
    (max_wait / 2).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// Keeps `lease` held (renewing it at a third of its life) until the future is dropped: it
/// never ends.
pub(crate) async fn hold(
    l2: &crate::l2::L2,
    lease: &Lease,
    owner: u64,
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(lease.ttl / 3).await;
        if !matches!(l2.renew_lease(&lease.key, owner, lease.ttl).await, Ok(true)) {
            // Lost (expired, or Redis is away): another instance may load too, which costs
            // a load, never a wrong value.
            std::future::pending::<()>().await;
        }
    }
}

/// What a fleet-wide single flight gave this instance.
pub(crate) enum Turn<T> {
    /// Another instance loaded it: the value and its times.
    Value(Arc<T>, Duration, Duration),
    /// This instance loads it (holding the lease, when it got one).
    Load(Option<Lease>),
}

/// The instances waiting, in this process, for another instance to fill a key.
#[derive(Default)]
pub(crate) struct Waiters {
    keys: std::sync::Mutex<std::collections::HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Notify>>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The signal for `key`, registered until [`leave`](Self::leave).
    pub(crate) fn join(&self, key: &str) -> Arc<Notify> {
        Arc::clone(self.lock().entry(key.to_owned()).or_default())
    }

    /// Unregisters a waiter of `key`.
    pub(crate) fn leave(&self, key: &str, notify: Arc<Notify>) {
        let mut keys = self.lock();
        // The map's own reference, and this one.
        if Arc::strong_count(&notify) <= 2 {
            keys.remove(key);
        }
    }

    /// Wakes the waiters of `key`: another instance filled it (or gave up).
    pub(crate) fn wake(&self, key: &str) {
        if let Some(notify) = self.lock().get(key) {
            notify.notify_waiters();
        }
    }
}
