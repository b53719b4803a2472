//! Any `serde::Serialize` value as key text: [`write_serialized`] (the encoding is
//! described there).

use crate::throttle::warn_throttled;
use std::fmt::{self, Display, Write as _};

use serde::ser::{self, Serialize};

use super::{write_text, KeyPart};

/// Appends the key text of any `Serialize` value to `out`: `#[cached]` writes a placeholder
/// of a type that is not a [`KeyPart`] this way.
///
/// Such a placeholder (a `#[derive(Serialize)]` query struct, `SmartString`, a newtype
/// around `uuid` 0.8's `Uuid`) is written through this serializer. What it writes is a function of the serialized data
/// alone, the same in every process and every build, and two different serializations never
/// write one text. Each kind of data starts with its own character, so that a reader (and
/// the test that checks this) can tell them apart without knowing the type:
///
/// | serde data | text |
/// |---|---|
/// | `bool` | `true`, `false` |
/// | integers | decimal: `42`, `-7` |
/// | floats | as [`KeyPart`] writes them: `0.5`, `1e300`, `-0.0`, `NaN`, `inf` |
/// | `str`, `char` | quoted and escaped as text (and `'` as `%27`): `'ada'`, `'a%3Ab'` |
/// | bytes | `#` and lower-case hex: `#00ff` |
/// | `None`, `Some(x)` | `~`, `~x` |
/// | unit, unit struct | `()` |
/// | newtype struct | its field's text: a wrapper writes what it wraps |
/// | sequence | `[a,b]` |
/// | tuple, tuple struct | `(a,b)` |
/// | struct | `(field=a,other=b)`; one with no field serialized `(=)` |
/// | map | `[key=value,...]` in sorted order; empty `[=]` |
/// | enum variant | its name: `Active`, `Id(42)`, `Range(1,9)`, `Rect(w=1,h=2)` |
///
/// Names (fields, variants) are escaped as text, and `'` and `=` too. A variant name that
/// could be read as something else (empty, not starting with a letter or `_`, or `true`,
/// `false`, `NaN`, `inf`) is written after a `$`.
///
/// What is not written: the names of types (a struct's, an enum's, a newtype's), variant
/// indexes, and the order of a map's entries (a `HashMap` iterates in a different order in
/// every process; its entries are written sorted). A number is written by its value, not its
/// width. Everything else is, so the key of a value changes when its serialization does:
/// renaming a field or a variant, `#[serde(rename)]`, `skip`, `flatten`, `tag`, `untagged`,
/// or a new field.
///
/// A sequence is written in the order it serializes in: a `HashSet` (which serializes as a
/// sequence, in an order of its own) inside a `Serialize` type may write equal sets as two
/// keys. That costs a miss, never a wrong value; a `BTreeSet` writes one key.
///
/// Use it in a hand-written `KeyPart` for a part that is `Serialize`:
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Filter { status: String, page: u32 }
///
/// let mut key = String::new();
/// cachemacro::key::write_serialized(&Filter { status: "open".into(), page: 2 }, &mut key);
/// assert_eq!(key, "(status='open',page=2)");
/// ```
///
/// When the value's `Serialize` implementation fails (a `Path` that is not UTF-8, a
/// poisoned `Mutex`), no key would tell that value apart from another: it writes a mark no
/// key part writes (see [`is_unkeyable`](crate::key::is_unkeyable)), and a `#[cached]`
/// call whose key holds it runs its body without the cache (logged, rate-limited), rather
/// than panic or share an entry between two values.
pub fn write_serialized<T: Serialize + ?Sized>(value: &T, out: &mut String) {
    let start = out.len();
    if let Err(error) = value.serialize(Writer { out: &mut *out }) {
        out.truncate(start);
        out.push(crate::key::UNKEYABLE);
        warn_throttled!(
            r#type = std::any::type_name::<T>(),
            %error,
            "cache: a value cannot be written as a cache key (its `Serialize` implementation failed): the call runs without the cache; key on a field of it instead"
        );
    }
}

/// The error of a `Serialize` implementation that failed.
#[derive(Debug)]
struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<M: Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

/// `'text'`: escaped as text, and `'` as `%27`, so that the closing quote is the first `'`.
fn write_quoted(text: &str, out: &mut String) {
    out.push('\'');
    write_escaped_with(text, '\'', out);
    out.push('\'');
}

/// Escaped as text, and `extra` (not a reserved character) as `%XX` too.
fn write_escaped_with(text: &str, extra: char, out: &mut String) {
    let mut parts = text.split(extra);
    if let Some(first) = parts.next() {
        write_text(first, out);
    }
    for part in parts {
        // Writing to a String cannot fail.
        let _ = write!(out, "%{:02X}", extra as u32);
        write_text(part, out);
    }
}

/// A field's or a variant's name: escaped as text, and `'` and `=` as `%27` and `%3D`, so
/// that the `=` after a field's name is the first one.
fn write_name(name: &str, out: &mut String) {
    for (i, part) in name.split('=').enumerate() {
        if i > 0 {
            out.push_str("%3D");
        }
        write_escaped_with(part, '\'', out);
    }
}

/// A variant's name; after a `$` when it could be read as a number, a `bool`, a float or
/// nothing.
fn write_variant(name: &str, out: &mut String) {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c == '_' || c.is_alphabetic())
        && !matches!(name, "true" | "false" | "NaN" | "inf");
    if !plain {
        out.push('$');
    }
    write_name(name, out);
}

/// The serializer: appends to `out`.
struct Writer<'a> {
    out: &'a mut String,
}

impl<'a> Writer<'a> {
    fn number(self, n: impl KeyPart) -> Result<(), Error> {
        n.write_key_part(self.out);
        Ok(())
    }

    /// Opens a compound written between `open` and `close`.
    fn open(self, open: char, close: char, kind: Kind) -> Compound<'a> {
        self.out.push(open);
        Compound {
            out: self.out,
            close,
            kind,
            items: 0,
            entries: Vec::new(),
            key: None,
        }
    }
}

/// What a compound writes between its brackets.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `a,b`: a sequence, a tuple, a tuple variant's fields.
    Items,
    /// `name=a,other=b`: a struct's or a struct variant's fields; `=` when there are none.
    Fields,
    /// `key=value`, sorted; `=` when there are none.
    Map,
}

/// A sequence, tuple, struct, map or variant being written.
struct Compound<'a> {
    out: &'a mut String,
    close: char,
    kind: Kind,
    items: usize,
    /// A map's entries, each `key=value`, sorted when the map ends.
    entries: Vec<String>,
    /// A map's key, written before its value arrives.
    key: Option<String>,
}

impl Compound<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.items > 0 {
            self.out.push(',');
        }
        self.items += 1;
        value.serialize(Writer { out: self.out })
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        if self.items > 0 {
            self.out.push(',');
        }
        self.items += 1;
        write_name(name, self.out);
        self.out.push('=');
        value.serialize(Writer { out: self.out })
    }

    fn end(self) -> Result<(), Error> {
        match self.kind {
            Kind::Items => {}
            Kind::Fields if self.items == 0 => self.out.push('='),
            Kind::Fields => {}
            Kind::Map if self.entries.is_empty() => self.out.push('='),
            Kind::Map => {
                let mut entries = self.entries;
                entries.sort_unstable();
                self.out.push_str(&entries.join(","));
            }
        }
        self.out.push(self.close);
        Ok(())
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_quoted(v.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_quoted(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push('#');
        for b in v {
            let _ = write!(self.out, "{b:02x}");
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push('~');
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push('~');
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push_str("()");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_variant(variant, self.out);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_variant(variant, self.out);
        self.out.push('(');
        value.serialize(Writer { out: self.out })?;
        self.out.push(')');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.open('[', ']', Kind::Items))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, Error> {
        Ok(self.open('(', ')', Kind::Items))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(self.open('(', ')', Kind::Items))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        write_variant(variant, self.out);
        Ok(self.open('(', ')', Kind::Items))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.open('[', ']', Kind::Map))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        Ok(self.open('(', ')', Kind::Fields))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        write_variant(variant, self.out);
        Ok(self.open('(', ')', Kind::Fields))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let mut text = String::new();
        key.serialize(Writer { out: &mut text })?;
        text.push('=');
        self.key = Some(text);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let mut entry = self
            .key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("a map value without its key"))?;
        value.serialize(Writer { out: &mut entry })?;
        self.entries.push(entry);
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(name, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(name, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn enc<T: Serialize + ?Sized>(v: &T) -> String {
        let mut s = String::new();
        write_serialized(v, &mut s);
        s
    }

    #[derive(serde::Serialize)]
    struct Filter {
        status: String,
        page: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Range(u8, u8),
        Rect {
            w: u8,
            h: u8,
        },
        #[serde(rename = "true")]
        Renamed,
    }

    #[test]
    fn structs_write_their_fields_by_name() {
        let f = Filter {
            status: "open:all".into(),
            page: 2,
            owner: None,
        };
        assert_eq!(enc(&f), "(status='open%3Aall',page=2)");
        let f = Filter {
            owner: Some("it's".into()),
            ..f
        };
        assert_eq!(enc(&f), "(status='open%3Aall',page=2,owner=~'it%27s')");
    }

    #[test]
    fn variants_write_their_names() {
        assert_eq!(enc(&Shape::Empty), "Empty");
        assert_eq!(enc(&Shape::Circle(0.5)), "Circle(0.5)");
        assert_eq!(enc(&Shape::Range(1, 9)), "Range(1,9)");
        assert_eq!(enc(&Shape::Rect { w: 1, h: 2 }), "Rect(w=1,h=2)");
        assert_eq!(enc(&Shape::Renamed), "$true");
        assert_eq!(enc(&true), "true");
    }

    #[test]
    fn maps_write_one_key_whatever_their_order() {
        let map: HashMap<String, u32> = (0..20).map(|i| (format!("k{i}"), i)).collect();
        let tree: BTreeMap<String, u32> = map.clone().into_iter().collect();
        assert_eq!(enc(&map), enc(&tree));
        assert_eq!(enc(&BTreeMap::<u8, u8>::new()), "[=]");
        assert_eq!(enc(&BTreeMap::from([(1u8, 'x')])), "[1='x']");
    }

    #[test]
    fn scalars_and_containers() {
        assert_eq!(enc("a b"), "'a%20b'");
        assert_eq!(enc(&'\''), "'%27'");
        assert_eq!(enc(&serde_bytes_like(&[0, 255])), "#00ff");
        assert_eq!(enc(&Some(None::<u8>)), "~~");
        assert_eq!(enc(&vec![(1u8, "x")]), "[(1,'x')]");
        assert_eq!(enc(&()), "()");
        assert_eq!(enc(&u128::MAX), u128::MAX.to_string());
    }

    /// Bytes, as `serde_bytes` serializes them.
    fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }

    #[test]
    fn a_failing_serialize_writes_the_unkeyable_mark() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        let key = enc(&Fails);
        assert!(crate::key::is_unkeyable(&key), "{key:?}");
        assert!(!crate::key::is_unkeyable(&enc(&"a\0b")));
        assert!(!crate::key::is_unkeyable(&enc(&"\u{0}")));
    }
}
