//! What `#[cached]` and `#[derive(KeyPart)]` expand to. Not a public API: it changes without
//! notice. Generated code names these items only through `::cachemacro::__private::…`.
//!
//! Several choices here are made by the type checker rather than by the macro, which sees
//! only tokens: whether a return type is a `Result` or an `Option` (through any alias),
//! whether a value can be cached, whether a parameter's type can be part of a key. They use
//! *autoref specialization*: a method is looked up first on `Probe` (where an impl with the
//! interesting bound lives), then on `&Probe` (the fallback, without the bound), so the
//! bound picks the method. The generated code turns the outcome into a compile error with a
//! message of its own, through a trait it defines locally with
//! `#[diagnostic::on_unimplemented]` (a local trait can name the parameter in its message,
//! and keeps this crate's paths out of the error).

use std::future::Future;
use std::pin::Pin;

pub use crate::global::{
    bypassed, global_for_companion, global_unless_bypassed, without_cache, GlobalCache,
};
pub use crate::key::{write_text, ScopedKey};
pub use crate::output::{Always, Mode, OkOnly, SomeOnly};
pub use crate::site::{Call, Site};
pub use crate::source::{with_source, Source};

/// Counts an invalidation sent by a companion of the function of `site`.
#[inline]
pub fn invalidation_sent(site: &'static Site) {
    site.invalidation_sent();
}
pub use crate::{Cache, Error, KeyPart};
pub use core::marker::PhantomData;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use core::time::Duration;
pub use std::string::String;
pub use std::vec::Vec;
pub use tracing;

use crate::key::Place;

/// The path a free function's key without template starts with (see the macro's
/// `key_path`): `in_module` (`module::name`) for a function of a module; for one declared
/// inside another function's body, the path `type_name` gives the marker declared beside it
/// (`module::enclosing_fn::name`, without the `{{closure}}` of an async body). Computed once.
pub struct FnPath(std::sync::OnceLock<String>);

impl FnPath {
    /// Not computed yet.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        FnPath(std::sync::OnceLock::new())
    }

    /// The path. `marker` is the `type_name` of the type named `marker_name` declared
    /// beside the function `name`, in the module `module`.
    #[inline]
    pub fn get(
        &'static self,
        module: &'static str,
        marker: &'static str,
        marker_name: &str,
        name: &str,
        in_module: &'static str,
    ) -> &'static str {
        match marker
            .strip_suffix(marker_name)
            .and_then(|prefix| prefix.strip_suffix("::"))
        {
            Some(prefix) if prefix != module => self.0.get_or_init(|| {
                // `type_name` names an async body `{{closure}}`: left out, as it says nothing.
                let mut path: Vec<&str> = prefix
                    .split("::")
                    .filter(|segment| !segment.starts_with("{{"))
                    .collect();
                path.push(name);
                path.join("::")
            }),
            _ => in_module,
        }
    }
}

/// The scope of a grouped function's entries (`#[cached(group = "...")]`): the group's name
/// and its current version, read as [`Cache::version`] does; when that fails, the last one
/// this process knows (a group read fails open, as `version` does without `compat_0_1`).
pub async fn group_scope(cache: &Cache, group: &str) -> String {
    let version = match cache.version(group).await {
        Ok(version) => version,
        // Only with `compat_0_1`, whose 0.1 instances bump unannounced.
        Err(error) => {
            crate::throttle::warn_throttled!(%group, %error, "cache: could not read the version of a function's group; using the last one known (bumps heard on the bus included)");
            cache.inner.versions.last_known(group)
        }
    };
    scope_of_group(group, version)
}

/// [`group_scope`] with the last version this process knows, for the companions that
/// cannot wait (`key`, `remove_local`).
pub fn group_scope_now(cache: &Cache, group: &str) -> String {
    scope_of_group(group, cache.inner.versions.last_known(group))
}

/// `<group>@v<version>`.
fn scope_of_group(group: &str, version: u64) -> String {
    format!("{group}@v{version}")
}

/// An empty storage key for `scope`, with room for `extra` bytes of key.
#[inline]
pub fn key_buffer(cache: &Cache, scope: Option<&str>, extra: usize) -> String {
    cache.key_buffer(Place::of(scope), extra)
}

/// Whether a function's key values can key its typed front of L1 (autoref specialization,
/// as [`ShareProbe`] does).
///
/// Each value is first taken as itself when its type is a `TypedKey` (integers, strings...)
/// and as its key text otherwise (a `KeyPart`'s, or a `Serialize` type's):
/// `(&&&&PartProbe(&a)).__cachemacro_part()` is [`ByValue`](front::ByValue) or
/// [`ByKeyText`](front::ByKeyText) ([`NoPart`](front::NoPart) for a value that cannot be
/// part of a key, whose own check fails). Then
/// `(&KeyProbe(&(a, b))).__cachemacro_front()` is [`ByArgs`](front::ByArgs) when the tuple
/// is a `TypedKey` (up to 8 values, each a key part), else [`ByText`](front::ByText).
pub mod front {
    use super::*;
    use crate::key::typed::TypedKey;
    use std::hash::Hasher;

    /// One value the key is written from.
    pub struct PartProbe<'a, T: ?Sized>(pub &'a T);

    /// A value compared and hashed as itself.
    pub struct ByValue<'a, T: ?Sized>(&'a T);

    /// A value compared and hashed as the text it writes in the key (a derived `KeyPart`,
    /// a date, a `Serialize` type): its text is all that tells two values apart in the key.
    pub struct ByKeyText<'a, T: ?Sized> {
        value: &'a T,
        write: fn(&T, &mut String),
    }

    /// A value that cannot be part of a key: the function has no typed front (and the
    /// key's own check fails to compile).
    pub struct NoPart;

    // Four verdicts: autoderef specialization, as `check`'s ladder. The call is
    // `(&&&&PartProbe(value)).__cachemacro_part()`, looked up on `&&&PartProbe` (a
    // `TypedKey`), `&&PartProbe` (a `KeyPart`), `&PartProbe` (`Serialize`), `PartProbe`.

    /// The value is a `TypedKey`.
    pub trait PartTyped<'a, T: ?Sized> {
        /// [`ByValue`].
        fn __cachemacro_part(&self) -> ByValue<'a, T>;
    }
    impl<'a, T: TypedKey + ?Sized> PartTyped<'a, T> for &&&PartProbe<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> ByValue<'a, T> {
            ByValue(self.0)
        }
    }

    /// It is a `KeyPart`.
    pub trait PartText<'a, T: ?Sized> {
        /// [`ByKeyText`], through `KeyPart`.
        fn __cachemacro_part(&self) -> ByKeyText<'a, T>;
    }
    impl<'a, T: KeyPart + ?Sized> PartText<'a, T> for &&PartProbe<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> ByKeyText<'a, T> {
            ByKeyText {
                value: self.0,
                write: T::write_key_part,
            }
        }
    }

    /// It is `Serialize`.
    pub trait PartSerialized<'a, T: ?Sized> {
        /// [`ByKeyText`], through `write_serialized`.
        fn __cachemacro_part(&self) -> ByKeyText<'a, T>;
    }
    impl<'a, T: serde::Serialize + ?Sized> PartSerialized<'a, T> for &PartProbe<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> ByKeyText<'a, T> {
            ByKeyText {
                value: self.0,
                write: crate::key::write_serialized::<T>,
            }
        }
    }

    /// It is none of these.
    pub trait PartNone {
        /// [`NoPart`].
        #[inline]
        fn __cachemacro_part(&self) -> NoPart {
            NoPart
        }
    }
    impl<T: ?Sized> PartNone for PartProbe<'_, T> {}

    impl<T: TypedKey + ?Sized> TypedKey for ByValue<'_, T> {
        type Owned = T::Owned;
        #[inline]
        fn to_owned_key(&self) -> T::Owned {
            self.0.to_owned_key()
        }
        #[inline]
        fn matches(&self, owned: &T::Owned) -> bool {
            self.0.matches(owned)
        }
        #[inline]
        fn hash_key<S: Hasher>(&self, state: &mut S) {
            self.0.hash_key(state);
        }
    }

    impl<T: ?Sized> ByKeyText<'_, T> {
        /// Runs `f` on the value's key text, written into a reused per-thread buffer (a
        /// fresh one when the buffer is in use: a `KeyPart` that looks up a cache itself).
        #[inline]
        fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
            thread_local! {
                static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
            }
            let mut f = Some(f);
            let reused = TEXT
                .try_with(|cell| {
                    let mut text = cell.try_borrow_mut().ok()?;
                    text.clear();
                    (self.write)(self.value, &mut text);
                    Some((f.take()?)(&text))
                })
                .ok()
                .flatten();
            match (reused, f) {
                (Some(r), _) => r,
                (None, Some(f)) => {
                    let mut text = String::new();
                    (self.write)(self.value, &mut text);
                    f(&text)
                }
                (None, None) => unreachable!("the closure runs at most once"),
            }
        }
    }

    impl<T: ?Sized> TypedKey for ByKeyText<'_, T> {
        type Owned = String;
        fn to_owned_key(&self) -> String {
            let mut text = String::new();
            (self.write)(self.value, &mut text);
            text
        }
        #[inline]
        fn matches(&self, owned: &String) -> bool {
            self.with_text(|text| text == owned)
        }
        #[inline]
        fn hash_key<S: Hasher>(&self, state: &mut S) {
            // As `String`'s `hash_owned` does.
            self.with_text(|text| text.hash_key(state));
        }
    }

    /// The values the key is written from, as a tuple of references.
    pub struct KeyProbe<'k, K>(pub &'k K);

    /// Hits look in the function's front first, by these values.
    pub struct ByArgs<'k, K>(&'k K);

    /// Hits go through L1's text key only.
    pub struct ByText;

    /// The values can key a front.
    pub trait Typed<'k, K> {
        /// [`ByArgs`].
        fn __cachemacro_front(&self) -> ByArgs<'k, K>;
    }
    impl<'k, K: TypedKey> Typed<'k, K> for KeyProbe<'k, K> {
        #[inline]
        fn __cachemacro_front(&self) -> ByArgs<'k, K> {
            ByArgs(self.0)
        }
    }

    /// They cannot.
    pub trait Untyped {
        /// [`ByText`].
        #[inline]
        fn __cachemacro_front(&self) -> ByText {
            ByText
        }
    }
    impl<K> Untyped for &KeyProbe<'_, K> {}

    /// How a hit is looked up.
    pub trait Front {
        /// The lookup of a `T` under the key `write` writes in `scope`.
        fn lookup<T: crate::CacheValue>(
            self,
            cache: &Cache,
            scope: Option<&str>,
            write: impl FnOnce(&mut String),
            site: &'static Site,
            span: &tracing::Span,
        ) -> Result<T, Looked<T>>;
    }

    impl<K: TypedKey> Front for ByArgs<'_, K> {
        #[inline(always)]
        fn lookup<T: crate::CacheValue>(
            self,
            cache: &Cache,
            scope: Option<&str>,
            write: impl FnOnce(&mut String),
            site: &'static Site,
            span: &tracing::Span,
        ) -> Result<T, Looked<T>> {
            cache.lookup_typed::<T, K>(self.0, scope, write, site, span)
        }
    }

    impl Front for ByText {
        #[inline(always)]
        fn lookup<T: crate::CacheValue>(
            self,
            cache: &Cache,
            scope: Option<&str>,
            write: impl FnOnce(&mut String),
            site: &'static Site,
            span: &tracing::Span,
        ) -> Result<T, Looked<T>> {
            cache.lookup::<T>(Place::of(scope), write, site, span)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::key::typed::OwnedKey;
        use std::hash::{BuildHasher, BuildHasherDefault};

        type Fixed = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

        #[test]
        fn a_value_taken_as_its_key_text_hashes_and_compares_as_its_stored_text() {
            let value = vec!["a:b".to_owned(), String::new()];
            let part = ByKeyText {
                value: &value,
                write: <Vec<String> as KeyPart>::write_key_part,
            };
            let owned = part.to_owned_key();
            assert_eq!(owned, "[a%3Ab,]");
            assert!(part.matches(&owned));
            let other = vec!["a:b".to_owned()];
            let other = ByKeyText {
                value: &other,
                write: <Vec<String> as KeyPart>::write_key_part,
            };
            assert!(!other.matches(&owned));
            let mut borrowed = Fixed::default().build_hasher();
            part.hash_key(&mut borrowed);
            let mut stored = Fixed::default().build_hasher();
            owned.hash_owned(&mut stored);
            assert_eq!(borrowed.finish(), stored.finish());
        }

        #[test]
        fn a_serialize_value_is_taken_as_its_serialized_text() {
            #[derive(serde::Serialize)]
            struct Filter {
                page: u8,
            }
            let filter = Filter { page: 2 };
            // As the generated code calls it: the ladder needs every `&`.
            #[allow(clippy::needless_borrow)]
            let part = (&&&&PartProbe(&filter)).__cachemacro_part();
            assert_eq!(part.to_owned_key(), "(page=2)");
            assert!(part.matches(&"(page=2)".to_owned()));
        }
    }
}

pub use crate::read::{Detached, Here, Looked, Run as RunBody, Solo};
pub use crate::resilience::{Fleet, Resilience};

/// A body that may run in the background: any future that is `Send` and owns what it uses.
#[diagnostic::on_unimplemented(
    message = "`soft_timeout`, `hard_timeout` and `refresh_ahead` let a load go on in the background, so the function's future must be `Send` and own what it uses",
    label = "this function's body cannot run in a task of its own",
    note = "hold no `Rc`, `RefCell` borrow or `MutexGuard` across an `.await`, and take owned arguments (`String`, not `&str`)"
)]
pub trait Background: Future + Send + 'static {}

impl<F: Future + Send + 'static> Background for F {}

/// The body of a function that asked for background work: it must be able to detach.
#[inline]
pub fn detach<F>(fut: F) -> Detached<F::Output>
where
    F: Background,
    F::Output: Send + 'static,
{
    Detached(Box::pin(fut))
}

/// Finds out, at the call site, whether a body can run in a task of its own (autoref
/// specialization, as [`ShareProbe`] does): only used where the function's arguments are
/// owned, so that `'static` holds whenever the rest does.
pub struct BodyProbe<F>(PhantomData<fn() -> F>);

impl<F> BodyProbe<F> {
    /// The probe for the body `_fut`.
    #[inline]
    pub fn of(_fut: &F) -> Self {
        BodyProbe(PhantomData)
    }
}

/// The body can detach.
pub trait BodyDetachable<F: Future> {
    /// As a [`Detached`] body.
    fn body(&self, fut: F) -> Detached<F::Output>;
}

impl<F> BodyDetachable<F> for BodyProbe<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[inline]
    fn body(&self, fut: F) -> Detached<F::Output> {
        Detached(Box::pin(fut))
    }
}

/// The body runs in the caller's task.
pub trait BodyHere<F> {
    /// As a [`Here`] body.
    fn body(&self, fut: F) -> Here<F>;
}

impl<F> BodyHere<F> for &BodyProbe<F> {
    #[inline]
    fn body(&self, fut: F) -> Here<F> {
        Here(fut)
    }
}

/// The miss path of a cached function: single flight, L2, the body. Boxed, so that the
/// caller's future stays small on the hit path.
#[inline]
pub fn load<'a, M, R, B>(
    cache: &'a Cache,
    storage_key: String,
    options: crate::read::LoadOptions,
    share: Option<Share<R>>,
    body: B,
) -> Pin<Box<impl Future<Output = R> + 'a>>
where
    M: Mode<R> + 'a,
    R: 'a,
    B: RunBody<M, R> + Solo<R> + 'a,
{
    let span = options.call.span.clone();
    Box::pin(tracing::Instrument::instrument(
        cache.load::<M, R, B>(storage_key, options, share, body),
        span,
    ))
}

pub use crate::read::Share;

/// Finds out, at the call site, whether `R` can be shared between the callers of one load
/// (autoref specialization: the method of [`ShareByClone`] takes `&ShareProbe<R>` and
/// applies when `R: Clone + Send + 'static`; otherwise the method of [`ShareNot`], which
/// takes `&&ShareProbe<R>`, is found one auto-reference later).
pub struct ShareProbe<R>(std::marker::PhantomData<fn() -> R>);

impl<R> ShareProbe<R> {
    /// A probe for `R`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ShareProbe(std::marker::PhantomData)
    }
}

/// `R` is shared by cloning it.
pub trait ShareByClone<R> {
    /// `Some`: clone it.
    fn share(&self) -> Option<Share<R>>;
}

impl<R: Clone + Send + 'static> ShareByClone<R> for ShareProbe<R> {
    fn share(&self) -> Option<Share<R>> {
        Some(Share::cloning())
    }
}

/// `R` cannot be shared.
pub trait ShareNot<R> {
    /// `None`: each caller needs a result of its own.
    fn share(&self) -> Option<Share<R>>;
}

impl<R> ShareNot<R> for &ShareProbe<R> {
    fn share(&self) -> Option<Share<R>> {
        None
    }
}

/// `remove_cached`.
pub async fn remove(cache: &Cache, storage_key: String) -> Result<(), Error> {
    cache.remove_at(&storage_key).await
}

/// `remove_local`.
pub fn remove_local(cache: &Cache, storage_key: String) {
    cache.remove_local_at(&storage_key);
}

/// `local_entry_count` of a function with `l1_capacity`: the entries its own share of
/// `cache`'s L1 holds (`function`: its path).
pub fn share_entry_count(cache: &Cache, function: &str) -> u64 {
    crate::l1::share::ids_of(function)
        .into_iter()
        .map(|id| cache.inner.l1.share_len(id))
        .sum()
}

/// `clear_local` of a function with `l1_capacity`: drops the entries of its own share of
/// `cache`'s L1.
pub fn clear_share(cache: &Cache, function: &str) {
    for id in crate::l1::share::ids_of(function) {
        cache.inner.l1.clear_share(id);
    }
}

/// `cache` unless caching is bypassed here ([`crate::without_cache`]).
#[inline]
pub fn unless_bypassed(cache: &Cache) -> Option<&Cache> {
    if bypassed() || cache.is_shut_down() {
        None
    } else {
        Some(cache)
    }
}

/// Appends the type arguments of a generic function to its key: `<name,name>`, each
/// type's name escaped as text, so `load::<A>` and `load::<B>` never share an entry.
/// No escaped name contains `<`, so the last `<` of a key starts this suffix.
pub fn write_type_names(names: &[&str], out: &mut String) {
    out.push('<');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_text(name, out);
    }
    out.push('>');
}

/// What a cache miss (or a hit due for a refresh) needs to load and store the value.
pub struct Miss<'a, R> {
    cache: &'a Cache,
    key: String,
    /// A value to return at once while the body refreshes it in the background.
    ready: Option<R>,
    ttl: Option<Duration>,
    tags: Vec<String>,
    resilience: Resilience,
    call: Call,
}

impl<'a, R> Miss<'a, R> {
    /// A miss (as the lookup found it) in `cache`.
    #[inline]
    pub fn new(
        cache: &'a Cache,
        looked: Looked<R>,
        ttl: Option<Duration>,
        tags: Vec<String>,
        resilience: Resilience,
        call: Call,
    ) -> Self {
        let (key, ready) = match looked {
            Looked::Miss(key) => (key, None),
            Looked::Refresh(key, value) => (key, Some(value)),
        };
        Self {
            cache,
            key,
            ready,
            ttl,
            tags,
            resilience,
            call,
        }
    }
}

/// A future that is a value ready now (a hit refreshed in the background), the load of a
/// miss, or the body run without the cache; boxed, so the caller's future does not grow with
/// the body.
pub type Run<L, F, R> = futures_util::future::Either<
    futures_util::future::Ready<R>,
    futures_util::future::Either<Pin<Box<L>>, Pin<Box<F>>>,
>;

/// What `#[cached(batch(id in ids))]` expands to.
pub mod batch {
    use super::*;

    pub use crate::batch::{
        Absence, BatchCollection, BatchReturn, Begun, CachedAsNone, Ident, NotCached,
    };

    /// The elements of the batch's collection, cloned.
    #[inline]
    pub fn elements<C: BatchCollection<K> + ?Sized, K>(collection: &C) -> Vec<K> {
        collection.elements()
    }

    /// Looks up every element: L1, then Redis in one round trip; registers the missing
    /// ones as loads in flight. `R` is the function's return type; `A` says whether the
    /// elements the body leaves out are cached as absent.
    // The arguments are the attribute's, spelled out by generated code.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin<R, K, A>(
        cache: &Cache,
        scope: Option<&str>,
        items: Vec<K>,
        write: impl Fn(&K, &mut String),
        ident: Ident<K>,
        tags: impl Fn(&K) -> Vec<String>,
        ttl: Option<Duration>,
        version: u32,
        resilience: Resilience,
        call: Call,
    ) -> Begun<K, R::Value, A>
    where
        R: BatchReturn<K>,
        A: Absence<R::Value>,
    {
        let options = crate::read::LoadOptions {
            ttl,
            version,
            tags: Vec::new(),
            resilience,
            call,
        };
        crate::batch::begin(cache, scope, items, write, ident, tags, &options).await
    }

    /// A batch's body, as a body runs: `cachemacro::entry()` changes nothing in it (its
    /// elements' entries are not its to decide), and the cached calls it makes do not
    /// answer the caller's `with_source`.
    #[inline]
    pub fn body<F: Future>(body: F) -> impl Future<Output = F::Output> {
        crate::read::as_body(None, body)
    }

    /// `remove_cached_many`: every element's entry, in one round trip.
    pub async fn remove_many(cache: &Cache, storage_keys: Vec<String>) -> Result<(), Error> {
        cache.remove_many_at(&storage_keys).await
    }
}

/// The choice of how a function's return value is cached, and whether it can be.
pub mod select {
    use super::*;

    /// A probe for the return type `R`.
    pub struct Probe<R: ?Sized>(PhantomData<fn() -> Box<R>>);

    impl<R: ?Sized> Probe<R> {
        /// The probe.
        #[inline]
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<R: ?Sized> Default for Probe<R> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// `R` is a `Result` (through any alias): cache `Ok` values.
    pub trait AutoResult {
        /// The mode.
        fn __cachemacro_auto(&self) -> OkOnly {
            OkOnly
        }
        /// The mode for `result = true`.
        fn __cachemacro_result(&self) -> OkOnly {
            OkOnly
        }
    }
    impl<T, E> AutoResult for Probe<Result<T, E>> {}

    /// `R` is an `Option`: cache `Some` values, or every value with `cache_none`.
    pub trait AutoOption {
        /// The mode.
        fn __cachemacro_auto(&self) -> SomeOnly {
            SomeOnly
        }
        /// The mode for `option = true`.
        fn __cachemacro_option(&self) -> SomeOnly {
            SomeOnly
        }
        /// The mode for `cache_none = true`.
        fn __cachemacro_cache_none(&self) -> Always {
            Always
        }
    }
    impl<T> AutoOption for Probe<Option<T>> {}

    /// Any other `R`: cache every value; or a declared mode that does not fit `R`, which
    /// the generated code reports.
    pub trait AutoPlain {
        /// The mode.
        fn __cachemacro_auto(&self) -> Always {
            Always
        }
        /// `result = true` on a type that is not a `Result`.
        fn __cachemacro_result(&self) -> Mismatch {
            Mismatch
        }
        /// `option = true` on a type that is not an `Option`.
        fn __cachemacro_option(&self) -> Mismatch {
            Mismatch
        }
        /// `cache_none = true` on a type that is not an `Option`.
        fn __cachemacro_cache_none(&self) -> Mismatch {
            Mismatch
        }
    }
    impl<R: ?Sized> AutoPlain for &Probe<R> {}

    /// A declared mode (`result = true`, `option = true`, `cache_none`) that does not fit
    /// the return type; the generated code reports it, so nothing else does.
    pub struct Mismatch;

    /// The cached part of `R` under a mode, whether or not it can be cached.
    pub trait ModeOf<R: ?Sized> {
        /// The cached value.
        type Value: ?Sized;
    }
    impl<T> ModeOf<T> for Always {
        type Value = T;
    }
    impl<T, E> ModeOf<Result<T, E>> for OkOnly {
        type Value = T;
    }
    impl<T> ModeOf<Option<T>> for SomeOnly {
        type Value = T;
    }
    impl<R: ?Sized> ModeOf<R> for Mismatch {
        type Value = ();
    }

    /// The mode `M` chosen for the return type `R`.
    pub struct Dispatch<M, R>(PhantomData<(M, fn() -> R)>);

    impl<M, R> Dispatch<M, R> {
        /// Pairs the chosen mode with the return type.
        #[inline]
        pub fn new(_mode: M, _probe: Probe<R>) -> Self {
            Self(PhantomData)
        }
    }

    /// The value can be cached: the real lookup and load.
    pub trait ViaCache<M, R> {
        /// The way to the cache.
        fn __cachemacro_dispatch(&self) -> Cached<M, R> {
            Cached(PhantomData)
        }
    }
    impl<M: Mode<R>, R> ViaCache<M, R> for Dispatch<M, R> {}

    /// The value cannot be cached, or the mode does not fit: the generated code reports
    /// it, and this stand-in keeps the rest of the function free of further errors.
    pub trait ViaNothing<M, R> {
        /// The stand-in.
        fn __cachemacro_dispatch(&self) -> Rejected<M, R> {
            Rejected(PhantomData)
        }
    }
    impl<M, R> ViaNothing<M, R> for &Dispatch<M, R> {}

    /// The probe for the cached value's type.
    pub struct ValueProbe<V: ?Sized>(PhantomData<fn() -> Box<V>>);

    impl<V: ?Sized> ValueProbe<V> {
        /// The type, for the generated check's message.
        #[inline]
        pub fn phantom(&self) -> PhantomData<V> {
            PhantomData
        }
    }

    /// The value's type is a `CacheValue`.
    pub trait Cacheable {
        /// `yes`.
        fn __cachemacro_verdict<Y, N>(&self, yes: Y, _no: N) -> Y {
            yes
        }
    }
    impl<V: crate::CacheValue> Cacheable for ValueProbe<V> {}

    /// The value's type is not a `CacheValue`.
    pub trait NotCacheable {
        /// `no`.
        fn __cachemacro_verdict<Y, N>(&self, _yes: Y, no: N) -> N {
            no
        }
    }
    impl<V: ?Sized> NotCacheable for &ValueProbe<V> {}

    /// The real lookup and load, for a mode that fits and a value that can be cached.
    pub struct Cached<M, R>(PhantomData<(M, fn() -> R)>);

    impl<M: Mode<R>, R> Cached<M, R> {
        /// The probe of the cached value's type.
        #[inline]
        pub fn value_probe(&self) -> ValueProbe<M::Value> {
            ValueProbe(PhantomData)
        }

        /// The hit path of a cached function: `Ok` with the cached value when present and
        /// of the right type, else `Err` with the storage key (and, past the value's
        /// refresh point, the value). `front` says whether the function's arguments can key
        /// a typed front.
        #[inline]
        pub fn lookup<F: super::front::Front>(
            &self,
            cache: &Cache,
            scope: Option<&str>,
            write: impl FnOnce(&mut String),
            site: &'static Site,
            span: &tracing::Span,
            front: F,
        ) -> Result<R, Looked<R>> {
            front
                .lookup::<M::Value>(cache, scope, write, site, span)
                .map(M::wrap)
                .map_err(|looked| looked.map(M::wrap))
        }

        /// Loads and stores a miss, or runs the body without the cache: when caching is
        /// bypassed (`miss` is `None`), or the TTL is zero. A hit past its refresh point
        /// returns its value at once and refreshes it in the background.
        #[inline]
        pub fn run<'a, B>(
            &self,
            miss: Option<Miss<'a, R>>,
            version: u32,
            share: Option<Share<R>>,
            body: B,
        ) -> Run<impl Future<Output = R> + 'a, impl Future<Output = R> + 'a, R>
        where
            M: 'a,
            R: 'a,
            B: RunBody<M, R> + Solo<R> + 'a,
        {
            use futures_util::future::{ready, Either};
            match miss {
                Some(miss) if miss.ttl != Some(Duration::ZERO) => {
                    let options = crate::read::LoadOptions {
                        ttl: miss.ttl,
                        version,
                        tags: miss.tags,
                        resilience: miss.resilience,
                        call: miss.call,
                    };
                    match miss.ready {
                        Some(value) => {
                            body.refresh(miss.cache, miss.key, options);
                            Either::Left(ready(value))
                        }
                        None => Either::Right(Either::Left(load::<M, R, B>(
                            miss.cache, miss.key, options, share, body,
                        ))),
                    }
                }
                Some(Miss {
                    ready: Some(value), ..
                }) => Either::Left(ready(value)),
                _ => Either::Right(Either::Right(Box::pin(body.run_alone()))),
            }
        }
    }

    /// The stand-in for a function whose value cannot be cached: never runs, because the
    /// generated check fails to compile.
    pub struct Rejected<M, R>(PhantomData<(M, fn() -> R)>);

    impl<M: ModeOf<R>, R> Rejected<M, R> {
        /// The probe of the cached value's type.
        #[inline]
        pub fn value_probe(&self) -> ValueProbe<M::Value> {
            ValueProbe(PhantomData)
        }
    }

    impl<M, R> Rejected<M, R> {
        /// Always a miss.
        #[inline]
        pub fn lookup<F>(
            &self,
            _cache: &Cache,
            _scope: Option<&str>,
            _write: impl FnOnce(&mut String),
            _site: &'static Site,
            _span: &tracing::Span,
            _front: F,
        ) -> Result<R, Looked<R>> {
            Err(Looked::Miss(String::new()))
        }

        /// Runs the body.
        #[inline]
        pub fn run<B: Solo<R>>(
            &self,
            _miss: Option<Miss<'_, R>>,
            _version: u32,
            _share: Option<Share<R>>,
            body: B,
        ) -> Pin<Box<impl Future<Output = R>>> {
            Box::pin(body.run_alone())
        }
    }
}

/// A placeholder's value as a key part: itself when its type is a `KeyPart`, else its
/// `Serialize` text, else nothing, and a compile error (autoderef specialization, as
/// `check`'s ladder: `(&&&Part(&value)).__cachemacro_part()` is looked up on `&&Part`,
/// `&Part`, then `Part`). The generated code then calls
/// `IsKeyPart::__cachemacro_check(&value, &part)`, which fails for [`NotAKeyPart`](part::NotAKeyPart)
/// with a message naming the value's type.
pub mod part {
    use super::*;

    /// A placeholder's value.
    pub struct Part<'a, T: ?Sized>(pub &'a T);

    /// The value's type is a `KeyPart`.
    pub trait ItsOwn<'a, T: ?Sized> {
        /// The value itself.
        fn __cachemacro_part(&self) -> &'a T;
    }
    impl<'a, T: KeyPart + ?Sized> ItsOwn<'a, T> for &&Part<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> &'a T {
            self.0
        }
    }

    /// It is `Serialize`.
    pub trait BySerde<'a, T: ?Sized> {
        /// The value, written through [`write_serialized`](crate::key::write_serialized).
        fn __cachemacro_part(&self) -> Serialized<'a, T>;
    }
    impl<'a, T: serde::Serialize + ?Sized> BySerde<'a, T> for &Part<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> Serialized<'a, T> {
            Serialized(self.0)
        }
    }

    /// It is neither.
    pub trait Neither<'a, T: ?Sized> {
        /// A stand-in that writes nothing: the generated check fails to compile.
        fn __cachemacro_part(&self) -> NotAKeyPart<'a, T>;
    }
    impl<'a, T: ?Sized> Neither<'a, T> for Part<'a, T> {
        #[inline]
        fn __cachemacro_part(&self) -> NotAKeyPart<'a, T> {
            NotAKeyPart(self.0)
        }
    }

    /// A `Serialize` value as a key part.
    pub struct Serialized<'a, T: ?Sized>(&'a T);

    impl<T: serde::Serialize + ?Sized> KeyPart for Serialized<'_, T> {
        #[inline]
        fn write_key_part(&self, out: &mut String) {
            crate::key::write_serialized(self.0, out);
        }
    }

    /// A value that is neither a `KeyPart` nor `Serialize`: writes nothing, and fails
    /// [`IsKeyPart`].
    pub struct NotAKeyPart<'a, T: ?Sized>(&'a T);

    impl<T: ?Sized> KeyPart for NotAKeyPart<'_, T> {
        #[inline]
        fn write_key_part(&self, _out: &mut String) {}
    }

    /// The check that a placeholder's value found a way into the key. `T`, the value's
    /// type, is a parameter so that the message can name it.
    #[diagnostic::on_unimplemented(
        message = "`{T}` cannot be part of a cache key",
        label = "this value is used in a cache key, but `{T}` is neither `serde::Serialize` nor a `KeyPart`",
        note = "a placeholder takes any `serde::Serialize` type, and the key parts (integers, floats, bool, char, strings, and Option, Vec, tuples, sets and maps of these); add `#[derive(serde::Serialize)]` (or `#[derive(cachemacro::KeyPart)]`) to your own type, name one of its fields in the template (`<param.field>`), or keep this value out of the key"
    )]
    pub trait IsKeyPart<T: ?Sized> {
        /// Compiles when the part is a key part. The value comes first, so that its type is
        /// known when the compiler reports the missing impl (else the message shows `_`).
        #[inline]
        fn __cachemacro_check(_value: &T, _part: &Self) {}
    }

    #[diagnostic::do_not_recommend]
    impl<T: ?Sized> IsKeyPart<T> for &T {}

    #[diagnostic::do_not_recommend]
    impl<T: ?Sized> IsKeyPart<T> for Serialized<'_, T> {}
}

/// The checks on parameters: can a parameter's type be part of a key?
pub mod check {
    use super::*;

    /// A parameter's value.
    pub struct Param<'a, T: ?Sized>(pub &'a T);

    // A parameter of a key without template is written by its `KeyPart`, else through
    // `Serialize`, else not at all (and the generated check fails): three verdicts, so the
    // call is `(&&&Param(&value))`, looked up on `&&Param`, `&Param`, then `Param` (see the
    // ladder below).

    /// The parameter's type is a key part.
    pub trait IsKeyPart {
        /// `yes`.
        fn __cachemacro_verdict<Y, N>(&self, yes: Y, _no: N) -> Y {
            yes
        }
        /// Writes the value (a key without template).
        fn __cachemacro_write(&self, out: &mut String);
    }
    impl<T: KeyPart + ?Sized> IsKeyPart for &&Param<'_, T> {
        #[inline]
        fn __cachemacro_write(&self, out: &mut String) {
            self.0.write_key_part(out);
        }
    }

    /// The parameter's type is `Serialize`, not a key part.
    pub trait IsSerialize {
        /// `yes`.
        fn __cachemacro_verdict<Y, N>(&self, yes: Y, _no: N) -> Y {
            yes
        }
        /// Writes the value's `Serialize` text (a key without template).
        fn __cachemacro_write(&self, out: &mut String);
    }
    impl<T: serde::Serialize + ?Sized> IsSerialize for &Param<'_, T> {
        #[inline]
        fn __cachemacro_write(&self, out: &mut String) {
            crate::key::write_serialized(self.0, out);
        }
    }

    /// The parameter's type is neither.
    pub trait NotKeyPart {
        /// `no`.
        fn __cachemacro_verdict<Y, N>(&self, _yes: Y, no: N) -> N {
            no
        }
        /// Writes nothing: the generated check has already failed to compile.
        fn __cachemacro_write(&self, _out: &mut String) {}
    }
    impl<T: ?Sized> NotKeyPart for Param<'_, T> {}

    // A parameter left out of a key template is data or a handle. Three verdicts need one
    // more level than autoref gives, so this ladder is autoderef specialization: the call is
    // `(&&&Param(&value)).__cachemacro_left_out(key_part, data, handle)`, and the method is
    // looked up on `&&Param` (a key part), then on `&Param` (`Serialize`), then on `Param`.

    /// A parameter left out of the key whose type is a key part.
    pub trait LeftOutKeyPart {
        /// `key_part`.
        fn __cachemacro_left_out<K, D, H>(&self, key_part: K, _data: D, _handle: H) -> K {
            key_part
        }
    }
    impl<T: KeyPart + ?Sized> LeftOutKeyPart for &&Param<'_, T> {}

    /// A parameter left out of the key whose type is data (`serde::Serialize`), not a key
    /// part.
    pub trait LeftOutData {
        /// `data`.
        fn __cachemacro_left_out<K, D, H>(&self, _key_part: K, data: D, _handle: H) -> D {
            data
        }
    }
    impl<T: serde::Serialize + ?Sized> LeftOutData for &Param<'_, T> {}

    /// A parameter left out of the key whose type is neither: a handle (`&Db`, `State<App>`).
    pub trait LeftOutHandle {
        /// `handle`.
        fn __cachemacro_left_out<K, D, H>(&self, _key_part: K, _data: D, handle: H) -> H {
            handle
        }
    }
    impl<T: ?Sized> LeftOutHandle for Param<'_, T> {}
}
