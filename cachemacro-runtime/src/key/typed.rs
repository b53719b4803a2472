//! A key's values as themselves, for the typed front of L1 (`l1::front`): a hit there
//! hashes and compares the arguments, not the key text they would write.
//!
//! [`TypedKey`] is implemented for the argument types whose equality is exactly "writes the
//! same key text" within one function: integers, `bool`, `char`, strings, and `Option`s,
//! `Vec`s, slices and tuples of them, through references and `Box`/`Arc` (and, with the
//! `uuid` feature, `Uuid`). A key value of any other `KeyPart` type (a derived one, a date)
//! is taken as the key text it writes (`__private::front::ByKeyText`).
//!
//! `hash_key` on a borrowed value and [`OwnedKey::hash_owned`] on its owned copy write the
//! same sequence to the hasher, so a lookup by the borrowed arguments finds the entry stored
//! under their copy; `matches` is `==` across the two.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An owned copy of a [`TypedKey`]: what a front entry is stored under.
pub trait OwnedKey: Eq + Send + Sync + 'static {
    /// Feeds the value to `state`, exactly as [`TypedKey::hash_key`] feeds its borrowed form.
    fn hash_owned<H: Hasher>(&self, state: &mut H);
}

/// The values a key is written from, compared and hashed as themselves.
pub trait TypedKey {
    /// The owned copy stored in the front.
    type Owned: OwnedKey;
    /// Copies the value.
    fn to_owned_key(&self) -> Self::Owned;
    /// Whether `owned` is a copy of this value.
    fn matches(&self, owned: &Self::Owned) -> bool;
    /// Feeds the value to `state` as [`OwnedKey::hash_owned`] feeds its copy.
    fn hash_key<H: Hasher>(&self, state: &mut H);
}

macro_rules! copy_key {
    ($($t:ty),*) => {$(
        impl OwnedKey for $t {
            #[inline]
            fn hash_owned<H: Hasher>(&self, state: &mut H) {
                Hash::hash(self, state);
            }
        }
        impl TypedKey for $t {
            type Owned = $t;
            #[inline]
            fn to_owned_key(&self) -> $t {
                *self
            }
            #[inline]
            fn matches(&self, owned: &$t) -> bool {
                self == owned
            }
            #[inline]
            fn hash_key<H: Hasher>(&self, state: &mut H) {
                Hash::hash(self, state);
            }
        }
    )*};
}

copy_key!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char);

#[cfg(feature = "uuid")]
copy_key!(uuid::Uuid);

impl OwnedKey for String {
    #[inline]
    fn hash_owned<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash_key(state);
    }
}

impl TypedKey for str {
    type Owned = String;
    #[inline]
    fn to_owned_key(&self) -> String {
        self.to_owned()
    }
    #[inline]
    fn matches(&self, owned: &String) -> bool {
        self == owned
    }
    #[inline]
    fn hash_key<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

/// A type that derefs to a `TypedKey` is keyed as what it derefs to.
macro_rules! deref_key {
    ($([$($generics:tt)*] $p:ty => $target:ty),*) => {$(
        impl<$($generics)*> TypedKey for $p {
            type Owned = <$target as TypedKey>::Owned;
            #[inline]
            fn to_owned_key(&self) -> Self::Owned {
                (**self).to_owned_key()
            }
            #[inline]
            fn matches(&self, owned: &Self::Owned) -> bool {
                // Qualified: `str` has an inherent `matches`.
                TypedKey::matches(&**self, owned)
            }
            #[inline]
            fn hash_key<H: Hasher>(&self, state: &mut H) {
                (**self).hash_key(state);
            }
        }
    )*};
}

deref_key!(
    [T: TypedKey + ?Sized] &T => T,
    [T: TypedKey + ?Sized] Box<T> => T,
    [T: TypedKey + ?Sized] Arc<T> => T,
    [] String => str,
    [T: TypedKey] Vec<T> => [T]
);

impl<O: OwnedKey> OwnedKey for Option<O> {
    #[inline]
    fn hash_owned<H: Hasher>(&self, state: &mut H) {
        match self {
            None => state.write_u8(0),
            Some(value) => {
                state.write_u8(1);
                value.hash_owned(state);
            }
        }
    }
}

impl<T: TypedKey> TypedKey for Option<T> {
    type Owned = Option<T::Owned>;
    #[inline]
    fn to_owned_key(&self) -> Self::Owned {
        self.as_ref().map(T::to_owned_key)
    }
    #[inline]
    fn matches(&self, owned: &Self::Owned) -> bool {
        match (self, owned) {
            (None, None) => true,
            (Some(value), Some(owned)) => value.matches(owned),
            _ => false,
        }
    }
    #[inline]
    fn hash_key<H: Hasher>(&self, state: &mut H) {
        match self {
            None => state.write_u8(0),
            Some(value) => {
                state.write_u8(1);
                value.hash_key(state);
            }
        }
    }
}

impl<O: OwnedKey> OwnedKey for Vec<O> {
    fn hash_owned<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for item in self {
            item.hash_owned(state);
        }
    }
}

impl<T: TypedKey> TypedKey for [T] {
    type Owned = Vec<T::Owned>;
    fn to_owned_key(&self) -> Self::Owned {
        self.iter().map(T::to_owned_key).collect()
    }
    fn matches(&self, owned: &Self::Owned) -> bool {
        self.len() == owned.len() && self.iter().zip(owned).all(|(a, b)| a.matches(b))
    }
    fn hash_key<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for item in self {
            item.hash_key(state);
        }
    }
}

macro_rules! tuple_key {
    ($(($($t:ident $i:tt),+))*) => {$(
        impl<$($t: OwnedKey),+> OwnedKey for ($($t,)+) {
            #[inline]
            fn hash_owned<S: Hasher>(&self, state: &mut S) {
                $(self.$i.hash_owned(state);)+
            }
        }
        impl<$($t: TypedKey),+> TypedKey for ($($t,)+) {
            type Owned = ($($t::Owned,)+);
            #[inline]
            fn to_owned_key(&self) -> Self::Owned {
                ($(self.$i.to_owned_key(),)+)
            }
            #[inline]
            fn matches(&self, owned: &Self::Owned) -> bool {
                $(self.$i.matches(&owned.$i))&&+
            }
            #[inline]
            fn hash_key<S: Hasher>(&self, state: &mut S) {
                $(self.$i.hash_key(state);)+
            }
        }
    )*};
}

tuple_key! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}

/// The empty key: a function whose key reads no argument.
impl OwnedKey for () {
    #[inline]
    fn hash_owned<H: Hasher>(&self, _state: &mut H) {}
}

impl TypedKey for () {
    type Owned = ();
    #[inline]
    fn to_owned_key(&self) {}
    #[inline]
    fn matches(&self, _owned: &()) -> bool {
        true
    }
    #[inline]
    fn hash_key<H: Hasher>(&self, _state: &mut H) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    type Fixed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

    fn hash_of_key<K: TypedKey + ?Sized>(key: &K) -> u64 {
        let mut state = Fixed::default().build_hasher();
        key.hash_key(&mut state);
        state.finish()
    }

    fn hash_of_owned<O: OwnedKey>(owned: &O) -> u64 {
        let mut state = Fixed::default().build_hasher();
        owned.hash_owned(&mut state);
        state.finish()
    }

    fn round_trip<K: TypedKey + ?Sized>(key: &K) {
        let owned = key.to_owned_key();
        assert!(key.matches(&owned));
        assert_eq!(hash_of_key(key), hash_of_owned(&owned));
    }

    #[test]
    fn a_borrowed_key_hashes_and_compares_as_its_copy() {
        round_trip(&42u64);
        round_trip("alice");
        round_trip(&String::from("bob"));
        round_trip(&(&7u32, "x", Some(3i64)));
        round_trip(&(vec!["a".to_owned(), String::new()], None::<u8>));
        round_trip(&Box::new(Arc::new(-1i8)));
        round_trip(&());
    }

    #[test]
    fn different_values_do_not_match() {
        let owned = (1u64, "a".to_owned()).to_owned_key();
        assert!(!(2u64, "a").matches(&owned));
        assert!(!(1u64, "b").matches(&owned));
        assert!(!vec![1u8].matches(&vec![1u8, 2]));
        assert!(!Some(0u8).matches(&None));
    }
}
