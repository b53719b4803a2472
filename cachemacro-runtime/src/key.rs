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
//! | `char`, `str`, `String` | the text, with every [reserved](RESERVED) byte written `%XX` (hex, upper case) |
//! | `Option<T>` | `None` is `~`; `Some(x)` is the encoding of `x` (prefixed with `~` when that itself starts with `~`) |
//! | slices, `Vec<T>`, arrays | `[a,b,c]` |
//! | tuples | `(a,b)` |
//! | `&T`, `Box<T>`, `Arc<T>`, `Rc<T>`, `Cow<T>` | the encoding of `T` |
//!
//! Text stays readable (`alice@example.com` is written as is) while the characters that
//! separate key parts (`:` `|` `,` brackets), glob characters (`*` `?`) and white space are
//! escaped, so a namespace purge by pattern never matches by accident.
//!
//! Floating-point numbers are deliberately not key parts (`0.1 + 0.2`, `-0.0` and `NaN` make
//! surprising keys); convert them explicitly, or implement [`KeyPart`] for a newtype.
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
//! ```
//!
//! `c1` is the layout version, so a later layout can live beside this one during a rolling
//! deploy. The namespace and the scope name are escaped with the encoding above, so no pair
//! of (scope, key) can collide with another, whatever the names.

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
/// Implemented for integers, `bool`, `char`, strings, `Option`, slices, `Vec`, arrays and
/// tuples of key parts, and references and smart pointers to them. The encoding of each is
/// described in the [module documentation](self).
///
/// Implement it for your own types by writing their parts in a fixed order; use
/// [`write_text`] for free-form text so that the escaping stays injective:
///
/// ```
/// use cachemacro_runtime::{KeyPart, write_text};
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
    note = "integers, bool, char, strings, Option, Vec, slices and tuples of these are key parts; implement `cachemacro::KeyPart` for your own type, or leave this parameter out of the key template"
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
/// cachemacro_runtime::write_text("a:b c", &mut out);
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

impl<T: KeyPart> KeyPart for [T] {
    fn write_key_part(&self, out: &mut String) {
        out.push('[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            item.write_key_part(out);
        }
        out.push(']');
    }
}

impl<T: KeyPart, const N: usize> KeyPart for [T; N] {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        self.as_slice().write_key_part(out);
    }
}

impl<T: KeyPart> KeyPart for Vec<T> {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        self.as_slice().write_key_part(out);
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

/// Where a key lives: unscoped, or inside a named scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    Unscoped,
    Scope(&'a str),
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
