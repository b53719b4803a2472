//! What the body of a cached function decides about the entry its value makes: its TTL
//! (from the value, as the `cached` crate's `CanExpire`), extra tags, or not to cache it
//! at all (FusionCache's "adaptive caching").
//!
//! The body calls [`entry()`] and sets what it wants on the handle. The load that runs the
//! body puts a fresh [`Decision`] in a task-local for it (the body of every load, and
//! nothing else: a body run without the cache, or a cached function's body that this body
//! calls, sees a decision of its own or none), and reads it when the body returns, before
//! it stores the value. The return type stays the user's: callers, `Result` and `Option`,
//! `?` and the companions see nothing of it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The most tags a body may add to one entry: past it, the value is returned but not
/// cached (and a warning logged), so a runaway loop cannot grow the tag registry.
pub const MAX_ENTRY_TAGS: usize = 64;

tokio::task_local! {
    static DECISION: Option<Arc<Decision>>;
}

/// What the body of one load chose, and when (in the tag log's order) the load began.
#[derive(Debug)]
pub(crate) struct Decision {
    choice: Mutex<Choice>,
    /// The tag log's position when the load began (see `TagLog`).
    pub(crate) since: u64,
}

/// The body's choices.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    pub(crate) ttl: Option<Duration>,
    pub(crate) skip: bool,
    pub(crate) tags: Vec<String>,
    /// More than [`MAX_ENTRY_TAGS`] tags were asked for.
    pub(crate) too_many_tags: bool,
}

impl Decision {
    /// A decision for a load that begins at position `since` of the tag log.
    pub(crate) fn new(since: u64) -> Arc<Self> {
        Arc::new(Self {
            choice: Mutex::new(Choice::default()),
            since,
        })
    }

    /// What the body chose; the decision is empty afterwards.
    pub(crate) fn take(&self) -> Choice {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Choice> {
        self.choice.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `body` with `decision` as what [`entry()`] answers inside it.
pub(crate) fn scoped<F: std::future::Future>(
    decision: Option<Arc<Decision>>,
    body: F,
) -> impl std::future::Future<Output = F::Output> {
    DECISION.scope(decision, body)
}

/// The entry that the value of the running cached function will make: call it in the body
/// to choose the entry's TTL, add tags, or keep the value out of the cache.
///
/// ```
/// use std::time::Duration;
/// use cachemacro::cached;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Token {
///     secret: String,
///     expires_in: Duration,
/// }
///
/// #[cached(key = "token:<client>", ttl = "1h")]
/// async fn token(client: u64) -> Result<Token, String> {
///     let token = Token { secret: format!("s{client}"), expires_in: Duration::from_secs(90) };
///     // Cached as long as the token is valid, not the function's hour.
///     cachemacro::entry().ttl(token.expires_in);
///     Ok(token)
/// }
///
/// #[cached(key = "page:<path>", ttl = "5m")]
/// async fn page(path: String) -> String {
///     let html = format!("<h1>{path}</h1>");
///     if html.contains("draft") {
///         cachemacro::entry().skip(); // served, never cached
///     }
///     html
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # assert_eq!(token(1).await.unwrap().secret, "s1");
/// # assert_eq!(page("a".into()).await, "<h1>a</h1>");
/// # }
/// ```
///
/// The loader of [`Cache::get_or_set`](crate::Cache::get_or_set) decides its entry the
/// same way. Outside the body of a load (a hit does not run the body; `uncached`,
/// `without_cache`, a zero TTL, a batch function's body, a task the body spawns) the handle
/// changes nothing: [`EntryHandle::is_deciding`] says which.
pub fn entry() -> EntryHandle {
    EntryHandle {
        decision: DECISION.try_with(Clone::clone).ok().flatten(),
    }
}

/// What [`entry()`] returns: the entry of the value the running load will store. Cheap to
/// clone and to keep across `.await`s; each setter returns the handle, to chain.
///
/// The last call of a setter wins (`ttl`), `tag` adds, `skip` cannot be undone. None of
/// them weakens an invalidation: whatever the body chose, an invalidation that comes while
/// it runs (of the key, of a tag, a clear, a purge) keeps the value out of the cache.
#[derive(Clone, Debug)]
pub struct EntryHandle {
    decision: Option<Arc<Decision>>,
}

impl EntryHandle {
    /// Stores the value for `ttl` instead of the function's TTL: a TTL read from the value
    /// (`cached`'s `CanExpire`). Like `ttl = ...` it is shortened at random by the cache's
    /// `ttl_jitter` and to [`MAX_TTL`](crate::MAX_TTL); `stale_for` and `refresh_ahead`
    /// apply to it. `Duration::ZERO` is [`skip`](Self::skip).
    ///
    /// On a function with `tags`, a TTL longer than the function's keeps the entry in this
    /// process only (not in Redis): the tags' registrations in Redis were made, before the
    /// body ran, to last as long as the function's TTL, and a copy in Redis that outlives
    /// them could outlive an invalidation of the tag.
    pub fn ttl(&self, ttl: Duration) -> &Self {
        if let Some(decision) = &self.decision {
            decision.lock().ttl = Some(ttl);
        }
        self
    }

    /// Returns the value to the callers (this one and the ones waiting on the same load)
    /// without caching it: neither tier stores it, and the entry already cached (a stale
    /// value) stays as it was. A `Result`'s `Err` and an `Option`'s `None` are not cached
    /// anyway; this is for values that are: a partial answer, a value that must not be
    /// shared.
    pub fn skip(&self) -> &Self {
        if let Some(decision) = &self.decision {
            decision.lock().skip = true;
        }
        self
    }

    /// Adds a tag to the entry, beside the function's `tags`: an
    /// [`invalidate_tag`](crate::Cache::invalidate_tag) of it removes the entry. For tags
    /// known only from the value (the categories of a product).
    ///
    /// An entry with tags chosen by the body is kept in this process only, not in Redis: a
    /// tag chosen after the load began could be invalidated by another instance before it
    /// is registered, and only this process can tell (it hears every invalidation of a tag,
    /// and keeps the value out when one came during the load). The function's own `tags`,
    /// registered before the body runs, have no such cost. More than
    /// [`MAX_ENTRY_TAGS`] tags keep the value out of the cache.
    pub fn tag(&self, tag: impl Into<String>) -> &Self {
        if let Some(decision) = &self.decision {
            let mut choice = decision.lock();
            let tag = tag.into();
            if choice.tags.contains(&tag) {
                return self;
            }
            if choice.tags.len() >= MAX_ENTRY_TAGS {
                choice.too_many_tags = true;
            } else {
                choice.tags.push(tag);
            }
        }
        self
    }

    /// Whether the handle belongs to a load whose value will be stored (its choices take
    /// effect): `false` outside a cached function's body, and where the body runs without
    /// the cache.
    pub fn is_deciding(&self) -> bool {
        self.decision.is_some()
    }
}
