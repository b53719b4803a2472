//! Cache keys: how argument values become key text, and how keys are laid out in storage.
//!
//! # Encoding of placeholder values
//!
//! A key template such as `"user:<a>:<b>"` joins literal text with the encoded values of its
//! placeholders. The encoding is *injective*: two different argument tuples never produce the
//! same key, so `("x:y", "z")` and `("x", "y:z")` give `user:x%3Ay:z` and `user:x:y%3Az`.
//!
//! | value | encoding |
//! |---|---|
//! | integers | decimal (`42`, `-7`) |
//! | `bool` | `true` / `false` |
//! | `char`, `str`, `String` | the text, with every [reserved](RESERVED) character, control character and space written `%XX` (hex, upper case) |
//! | `Option<T>` | `None` is `~`; `Some(x)` is the encoding of `x` (prefixed with `~` when that itself starts with `~`) |
//! | `Vec<T>`, slices | `[a,b,c]`; `[]` is empty, and one item that writes nothing (`vec![""]`) is `[%]` |
//! | arrays `[T; N]` | `[a,b,c]` |
//! | tuples | `(a,b)` |
//! | `&T`, `&mut T`, `Box<T>`, `Arc<T>`, `Rc<T>`, `Cow<T>` | the encoding of `T` |
//! | `#[derive(KeyPart)]` struct | one field: that field's encoding; several: `(a,b)`; none: `()` |
//! | `#[derive(KeyPart)]` enum | the variant's name, then its fields as a tuple when it has any: `Active`, `Id(42)`, `Range(1,9)` |
//! | `f32`, `f64` | the shortest decimal that reads back the same (`0.1`, `1e300`, `-0.0`); every NaN is `NaN`, the infinities `inf` and `-inf` |
//! | `HashSet`, `BTreeSet`, `HashMap`, `BTreeMap` | the elements (`(key,value)` pairs) as a sequence, in sorted order |
//! | `uuid::Uuid` (feature `uuid`) | hyphenated, lower case |
//! | `chrono` and `time` dates and times (features `chrono`, `time`) | ISO 8601 text, escaped: `2024-05-17T13%3A05%3A00Z` (see below) |
//! | a placeholder of any other `serde::Serialize` type | its serialized data, through [`write_serialized`]: `(status='open',page=2)` (see below) |
//!
//! Text stays readable (`alice@example.com` is written as is) while the characters that
//! separate key parts (`:` `|` `,` brackets), glob characters (`*` `?`) and white space are
//! escaped, so a namespace purge by pattern never matches by accident.
//!
//! ## Why the encoding is injective, nested to any depth
//!
//! - Text escapes every character that any encoding uses as structure (`%` `~` `,` `(` `)`
//!   `[` `]` and the template separators), so a text value never looks like structure.
//! - Every encoding is *balanced*: brackets come in pairs, and a `,` appears only inside
//!   them. So inside `[...]` and `(...)` the items are told apart by the commas outside
//!   any inner brackets, whatever the items are.
//! - A tuple or array has as many items as its type says. A `Vec` of `n ≥ 1` items writes
//!   `n - 1` commas; `n = 0` and `n = 1` both write none, so the empty `Vec` is `[]` and
//!   one item that writes nothing is `[%]` (no item ever writes a lone `%`).
//! - `None` is `~` alone, and a `Some` whose encoding starts with `~` gets one more, so
//!   `None` (`~`), `Some(None)` (`~~`) and `Some(Some(x))` never meet.
//! - A derived enum starts with its variant's name, which contains no structure character,
//!   followed by `(` or nothing.
//!
//! `tests/keys.rs` checks this exhaustively: every value of every impl above, over an
//! alphabet that contains the reserved characters, the empty string, `~` and `%`, nested
//! three levels deep, and no two values of one type share a key text.
//!
//! In a key template, two placeholders are separated by text containing a character that
//! no encoding writes (`:` `|` `{` `}` `<` `>` `*` `?` `\` or a space), or a `,` with no
//! bracket beside it; the `#[cached]` attribute checks this at compile time.
//!
//! ## Encodings that changed, and why the layout is still `c1`
//!
//! Keys are a persisted format: old and new instances share Redis during a rolling deploy.
//! Every encoding that was already injective is byte-identical to what it was. One changed:
//!
//! - **A `Vec` or slice of exactly one item that writes nothing** (`vec![""]`,
//!   `vec![Some(String::new())]`, `vec![vec![""]]` inside another sequence...) was `[]`,
//!   the same as the empty `Vec`: the two shared one entry. It is now `[%]`.
//!
//! The layout version stays `c1` because no key changed meaning: every key that old and new
//! instances both write names the same argument values in both. A new instance writes
//! `vec![""]` under `[%]`, which an old instance never reads; an old instance may still
//! write `vec![""]`'s value under `[]` until it is replaced, and a new instance can read
//! that entry for `vec![]` — the collision as it was before, bounded by the entry's TTL (or
//! ended at once by a [`Cache::purge`](crate::Cache::purge) after the deploy). Bumping the
//! layout instead would have made every key of every service a miss during the deploy, and
//! doubled what Redis holds until the old entries expire, to fix a value that is rare.
//!
//! ## `Serialize` types
//!
//! A placeholder (or a parameter of a key without template) whose type is not a
//! [`KeyPart`] but is `serde::Serialize` (a query struct, an enum, `SmartString`, a newtype
//! around `uuid` 0.8's `Uuid`) is written by [`write_serialized`], which describes the text.
//! A type that is both is written by its `KeyPart`, so the keys of the types above never
//! change. The text follows the serialized data: it is the same in every process and build,
//! and two values share it only when they serialize to the same data (a struct's or enum's
//! type name, and a map's entry order, are not part of it). So the key of a value changes
//! when its serialization does: renaming a field or a variant, a `#[serde(...)]` attribute
//! that changes what is written, a field added, or `#[derive(KeyPart)]` added to the type.
//!
//! ## Dates and times
//!
//! `chrono`'s `NaiveDate`, `NaiveTime`, `NaiveDateTime` and `DateTime<Tz>`, and `time`'s
//! `Date`, `Time`, `PrimitiveDateTime` and `OffsetDateTime` are written the same way
//! (ISO 8601, then escaped like text): `2024-05-17`, `13%3A05%3A00.250`,
//! `2024-05-17T13%3A05%3A00`, `2024-05-17T13%3A05%3A00Z`, `2024-05-17T15%3A05%3A00+02%3A00`.
//! The fraction of a second has 0, 3, 6 or 9 digits, as few as show it exactly; a year
//! outside 0..=9999 carries a sign; an offset is `Z` when it is zero, and shows seconds
//! when it has any. A date-time with an offset keeps its local time and its offset, so two
//! values that are the same instant in different offsets have different keys (a function
//! may show the local time).
//!
//! # Storage layout
//!
//! Every key the cache stores (in L1 and in Redis) is laid out as
//!
//! ```text
//! <namespace>:c1:k:<key>             an unscoped key
//! <namespace>:c1:s:<scope>:<key>     a key in a scope
//! ```
//!
//! and, beside the values,
//!
//! ```text
//! <namespace>:c1:v:<group>           a group version (`Cache::version`, `Cache::bump_version`)
//! <namespace>:c1:t:<tag>             the keys that depend on a tag (`#[cached(tags = ...)]`)
//! <namespace>:c1:bus                 the invalidation bus's pub/sub channel
//! <namespace>:c1:bus:s<i>:{<tag>}     its 16 sharded channels, with `BusChannels::Sharded`
//! ```
//!
//! `c1` is the layout version, so a later layout can live beside this one during a rolling
//! deploy. The namespace and the scope name are escaped with the encoding above, so no pair
//! of (scope, key) can collide with another, whatever the names.

mod foreign;
mod serialized;
#[doc(hidden)]
pub mod typed;

pub use serialized::write_serialized;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

/// Characters that [`KeyPart`] escapes inside text values, as `%XX`.
///
/// Besides these, control characters and the space are escaped too.
pub const RESERVED: &[char] = &[
    '%', ':', '|', ',', '~', '(', ')', '[', ']', '{', '}', '<', '>', '*', '?', '\\',
];

/// The version of the storage key layout; part of every stored key.
pub const LAYOUT_VERSION: &str = "c1";

/// A value that can be part of a cache key.
///
/// Implemented for integers, floats, `bool`, `char`, strings, `Option`, slices, `Vec`,
/// arrays, tuples, sets and maps of key parts, references and smart pointers to them, and
/// (behind the cargo features of the same names) `uuid::Uuid` and the date and time types
/// of `chrono` and `time`. The encoding of each is described in the [module
/// documentation](self).
///
/// A placeholder need not be a `KeyPart`: any `serde::Serialize` type is written through
/// [`write_serialized`]. For your own structs and enums, deriving `KeyPart` instead gives
/// shorter keys (a one-field struct writes its field, so `UserId(42)` is `42`), injective
/// like the rest.
///
/// ```
/// use cachemacro::KeyPart;
///
/// #[derive(KeyPart)]
/// struct UserId(u64);
///
/// #[derive(KeyPart)]
/// enum Region { Eu, Us { state: String } }
///
/// let mut key = String::new();
/// (UserId(42), Region::Us { state: "ny".into() }).write_key_part(&mut key);
/// assert_eq!(key, "(42,Us(ny))");
/// ```
///
/// # Implementing it by hand
///
/// Write the value's parts in a fixed order, text through [`write_text`] and other values
/// through their own `KeyPart`. Two rules keep keys injective when your type is nested in
/// a `Vec`, a tuple or a template:
///
/// - two different values must write different text;
/// - the text must not contain a [`RESERVED`] character, except where a [`write_text`] or
///   `KeyPart` call wrote it, or as one `(...)` group around parts separated by `,`.
///
/// ```
/// use cachemacro::{KeyPart, write_text};
///
/// struct TenantId { number: u32, region: String }
///
/// impl KeyPart for TenantId {
///     fn write_key_part(&self, out: &mut String) {
///         // A u32 never contains `-`, so the first `-` always ends the number.
///         self.number.write_key_part(out);
///         out.push('-');
///         write_text(&self.region, out);
///     }
/// }
///
/// let mut key = String::new();
/// TenantId { number: 7, region: "eu:west".into() }.write_key_part(&mut key);
/// assert_eq!(key, "7-eu%3Awest");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this value is used in a cache key, but `{Self}` does not implement `KeyPart`",
    note = "integers, floats, bool, char, strings, Option, Vec, slices, tuples, sets and maps of these are key parts; add `#[derive(cachemacro::KeyPart)]` to your own type, or keep this value out of the key"
)]
pub trait KeyPart {
    /// Appends this value's encoding to `out`.
    fn write_key_part(&self, out: &mut String);
}

/// Appends `text` to `out`, escaping every [`RESERVED`] character, control character and
/// space as `%XX`.
///
/// ```
/// let mut out = String::new();
/// cachemacro::write_text("a:b c", &mut out);
/// assert_eq!(out, "a%3Ab%20c");
/// ```
pub fn write_text(text: &str, out: &mut String) {
    out.reserve(text.len());
    for c in text.chars() {
        if c.is_control() || c == ' ' || RESERVED.contains(&c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// What a key part writes when it cannot write its value (see [`write_serialized`]): a
/// control character, which [`write_text`] and every key part escape, so no value's key
/// holds it.
pub(crate) const UNKEYABLE: char = '\0';

/// Whether a key holds the mark of a part that could not be written: the call must run
/// without the cache, since two values would share the key.
pub fn is_unkeyable(key: &str) -> bool {
    key.contains(UNKEYABLE)
}

/// Returns `text` escaped as by [`write_text`].
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    write_text(text, &mut out);
    out
}

macro_rules! integer_key_part {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            #[inline]
            fn write_key_part(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}

integer_key_part!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl KeyPart for bool {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl KeyPart for str {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        write_text(self, out);
    }
}

impl KeyPart for String {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        write_text(self, out);
    }
}

impl KeyPart for char {
    fn write_key_part(&self, out: &mut String) {
        let mut buf = [0u8; 4];
        write_text(self.encode_utf8(&mut buf), out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        (**self).write_key_part(out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for &mut T {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        (**self).write_key_part(out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for Box<T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        (**self).write_key_part(out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for Arc<T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        (**self).write_key_part(out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for Rc<T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        (**self).write_key_part(out);
    }
}

impl<T: KeyPart + ToOwned + ?Sized> KeyPart for Cow<'_, T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        self.as_ref().write_key_part(out);
    }
}

impl<T: KeyPart> KeyPart for Option<T> {
    fn write_key_part(&self, out: &mut String) {
        match self {
            None => out.push('~'),
            Some(value) => {
                // `~` alone means None; an inner value that itself starts with `~` (a nested
                // Option) gets one more `~`, so `Some(None)` (`~~`) differs from `None` (`~`).
                let start = out.len();
                value.write_key_part(out);
                if out[start..].starts_with('~') {
                    out.insert(start, '~');
                }
            }
        }
    }
}

/// `[a,b,c]`: the items, separated by `,`.
fn write_items<T: KeyPart>(items: &[T], out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_key_part(out);
    }
    out.push(']');
}

/// `[]`, written from `start`, is the empty sequence. One item that writes nothing (`""`,
/// `Some("")`) would write `[]` too: it is written `[%]` instead. No item writes a lone `%`
/// (text writes `%` only as the start of `%XX`), so `[%]` means nothing else.
fn mark_lone_empty(out: &mut String, start: usize, items: usize) {
    if items == 1 && out.len() == start + 2 {
        out.insert(start + 1, '%');
    }
}

impl<T: KeyPart> KeyPart for [T] {
    fn write_key_part(&self, out: &mut String) {
        let start = out.len();
        write_items(self, out);
        mark_lone_empty(out, start, self.len());
    }
}

impl<T: KeyPart, const N: usize> KeyPart for [T; N] {
    /// Like a slice, without the `[%]` mark: an array's length is part of its type, so `[]`
    /// is never ambiguous for one array type, and array keys stay what they always were.
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        write_items(self.as_slice(), out);
    }
}

impl<T: KeyPart> KeyPart for Vec<T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        self.as_slice().write_key_part(out);
    }
}

macro_rules! float_key_part {
    ($($t:ty),*) => {$(
        /// The shortest decimal that reads back as the same value (`0.1`, `0.30000000000000004`,
        /// `1e300`), so distinct values write distinct keys: `0.1 + 0.2` and `0.3` are two
        /// keys, and so are `0.0` and `-0.0`. Every NaN writes `NaN`, one key (NaN is not
        /// equal to itself, but a cache must answer the same call the same way); the
        /// infinities write `inf` and `-inf`.
        impl KeyPart for $t {
            fn write_key_part(&self, out: &mut String) {
                if self.is_nan() {
                    out.push_str("NaN");
                } else {
                    // `Debug` is the shortest round-trip form, with an exponent for the very
                    // large and small. Writing to a String cannot fail.
                    let _ = write!(out, "{self:?}");
                }
            }
        }
    )*};
}

float_key_part!(f32, f64);

/// Writes each of `items` into its own text, then the texts in sorted order as a sequence:
/// a set or a map writes one key whatever order it iterates in (a `HashSet` iterates in a
/// different order in every process).
fn write_unordered<'a, T: KeyPart + 'a>(items: impl Iterator<Item = T>, out: &mut String) {
    let mut texts: Vec<String> = items
        .map(|item| {
            let mut text = String::new();
            item.write_key_part(&mut text);
            text
        })
        .collect();
    texts.sort_unstable();
    let start = out.len();
    out.push('[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text);
    }
    out.push(']');
    mark_lone_empty(out, start, texts.len());
}

impl<T: KeyPart, S> KeyPart for std::collections::HashSet<T, S> {
    /// The elements' keys in sorted order, as a sequence (`[1,2,3]`): equal sets write one
    /// key whatever order they iterate in.
    fn write_key_part(&self, out: &mut String) {
        write_unordered(self.iter(), out);
    }
}

impl<T: KeyPart> KeyPart for std::collections::BTreeSet<T> {
    /// As a `HashSet`: the elements' keys in sorted order.
    fn write_key_part(&self, out: &mut String) {
        write_unordered(self.iter(), out);
    }
}

impl<K: KeyPart, V: KeyPart, S> KeyPart for std::collections::HashMap<K, V, S> {
    /// The entries as `(key,value)` pairs, in sorted order: equal maps write one key
    /// whatever order they iterate in.
    fn write_key_part(&self, out: &mut String) {
        write_unordered(self.iter(), out);
    }
}

impl<K: KeyPart, V: KeyPart> KeyPart for std::collections::BTreeMap<K, V> {
    /// As a `HashMap`: the `(key,value)` pairs in sorted order.
    fn write_key_part(&self, out: &mut String) {
        write_unordered(self.iter(), out);
    }
}

macro_rules! tuple_key_part {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: KeyPart),+> KeyPart for ($($name,)+) {
            #[allow(non_snake_case)]
            fn write_key_part(&self, out: &mut String) {
                let ($($name,)+) = self;
                out.push('(');
                let mut _first = true;
                $(
                    if !_first { out.push(','); }
                    _first = false;
                    $name.write_key_part(out);
                )+
                out.push(')');
            }
        }
    )*};
}

tuple_key_part!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H)
);

/// The key of an entry in a scope: what the companion `key(..)` of a
/// `#[cached(scope = ...)]` function returns.
///
/// A scoped entry is reached through its scope, so this is not a `&str`: passing it to
/// [`Cache::remove`](crate::Cache::remove), which reaches unscoped keys only, does not
/// compile. Reach the entry through its scope instead:
///
/// ```
/// use cachemacro::{cached, Cache};
/// # static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Cache::in_memory);
///
/// #[cached(key = "<id>", scope = "products", cache = CACHE)]
/// async fn product(id: u64) -> String {
///     format!("product {id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro::Error> {
/// product(3).await;
/// let key = product::key(3);
/// assert_eq!((key.scope(), key.key()), ("products", "3"));
/// CACHE.scope(key.scope()).remove(key.key()).await?; // the same as product::remove_cached(3)
/// assert!(!CACHE.scope("products").contains_local("3"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopedKey {
    scope: String,
    key: String,
}

impl ScopedKey {
    /// The key `key` in the scope named `scope`.
    pub fn new(scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            key: key.into(),
        }
    }

    /// The scope's name, as [`Cache::scope`](crate::Cache::scope) takes it.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The key inside the scope, as [`Scope::remove`](crate::Scope::remove) takes it.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Where a key lives: unscoped, or inside a named scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    Unscoped,
    Scope(&'a str),
}

impl<'a> Place<'a> {
    /// The place of a key in `scope`, or unscoped.
    pub(crate) fn of(scope: Option<&'a str>) -> Self {
        scope.map_or(Place::Unscoped, Place::Scope)
    }
}

/// Builds storage keys (see the [module documentation](self)) for one namespace.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// `<namespace>:c1:`
    root: Arc<str>,
}

impl Layout {
    pub(crate) fn new(namespace: &str) -> Self {
        let mut root = escape(namespace);
        root.push(':');
        root.push_str(LAYOUT_VERSION);
        root.push(':');
        Self { root: root.into() }
    }

    /// The prefix shared by every key of this namespace.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The key of the version counter of `group`.
    pub(crate) fn version_key(&self, group: &str) -> String {
        let mut out = String::with_capacity(self.root.len() + 2 + group.len());
        out.push_str(&self.root);
        out.push_str("v:");
        write_text(group, &mut out);
        out
    }

    /// The key of the set of storage keys that depend on `tag`.
    pub(crate) fn tag_key(&self, tag: &str) -> String {
        let mut out = String::with_capacity(self.root.len() + 2 + tag.len());
        out.push_str(&self.root);
        out.push_str("t:");
        out.push_str(tag);
        out
    }

    /// The prefix shared by every key of `place`.
    pub(crate) fn prefix(&self, place: Place<'_>) -> String {
        let mut out = String::with_capacity(self.root.len() + 16);
        self.write_prefix(place, &mut out);
        out
    }

    /// Appends the prefix shared by every key of `place` to `out`.
    pub(crate) fn write_prefix(&self, place: Place<'_>, out: &mut String) {
        out.push_str(&self.root);
        match place {
            Place::Unscoped => out.push_str("k:"),
            Place::Scope(name) => {
                out.push_str("s:");
                write_text(name, out);
                out.push(':');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T: KeyPart + ?Sized>(v: &T) -> String {
        let mut s = String::new();
        v.write_key_part(&mut s);
        s
    }

    #[test]
    fn text_escapes_separators_but_stays_readable() {
        assert_eq!(enc("alice@example.com"), "alice@example.com");
        assert_eq!(enc("a-b_c.d/é"), "a-b_c.d/é");
        assert_eq!(enc("x:y"), "x%3Ay");
        assert_eq!(enc("50%"), "50%25");
        assert_eq!(enc("a*b?"), "a%2Ab%3F");
        assert_eq!(enc("tab\there"), "tab%09here");
    }

    #[test]
    fn options_nest_injectively() {
        let none: Option<Option<u8>> = None;
        let some_none: Option<Option<u8>> = Some(None);
        let some_some: Option<Option<u8>> = Some(Some(1));
        assert_eq!(enc(&none), "~");
        assert_eq!(enc(&some_none), "~~");
        assert_eq!(enc(&some_some), "1");
        assert_eq!(enc(&Some("~")), "%7E");
    }

    #[test]
    fn sequences_and_tuples_are_delimited() {
        assert_eq!(enc(&vec![1, 2, 3]), "[1,2,3]");
        assert_eq!(enc(&vec!["a,b".to_string()]), "[a%2Cb]");
        assert_eq!(enc(&vec![vec![1], vec![]]), "[[1],[]]");
        assert_eq!(enc(&(1u8, "x", Some(true))), "(1,x,true)");
        assert_ne!(enc(&vec!["a", "b"]), enc(&vec!["a,b"]));
    }

    #[test]
    fn layout_separates_scopes_from_unscoped_keys() {
        let l = Layout::new("shop");
        let key = |place, key: &str| l.prefix(place) + key;
        assert_eq!(key(Place::Unscoped, "user:1"), "shop:c1:k:user:1");
        assert_eq!(key(Place::Scope("users"), "1"), "shop:c1:s:users:1");
        assert_ne!(key(Place::Scope("a:b"), "c"), key(Place::Scope("a"), "b:c"));
        assert_eq!(Layout::new("a:1").root(), "a%3A1:c1:");
    }
}
