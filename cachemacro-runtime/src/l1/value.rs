//! The value an L1 entry holds: any cacheable type, type-erased, kept in the entry itself
//! when it fits in [`INLINE_BYTES`], else behind an `Arc`.
//!
//! An `Arc<dyn Any>` would cost a hit one more cache line to fetch (the `Arc`'s allocation,
//! away from the slot) and two atomic updates of its count; measured side by side in the L1
//! benchmark, quick_cache holding the value itself was 15-25 % faster per hit than holding
//! it in an `Arc` (`bench/results/L1-DECISION.md`). Safe Rust cannot erase a type and keep
//! its bytes inline, so this module is the crate's one use of `unsafe`: a hand-made
//! vtable (type id, clone, drop, `&dyn Any`) over a fixed buffer, the way `std`'s `RawWaker`
//! erases a waker. Its invariant, which every `unsafe` block below relies on:
//!
//! **`data` holds exactly one live value written by [`Value::new::<T>`] for the `T` whose
//! vtable `vtable` is: a `T` itself when [`inline::<T>()`](inline), else an `Arc<T>`.**
//!
//! Which of the two is fixed by `T`'s size and alignment alone, so code that knows `T`
//! (checked against the vtable's type id) knows how to read it.

#![allow(unsafe_code)]

use std::any::{Any, TypeId};
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::sync::Arc;

/// The largest value kept inline: one cache line, which a struct of a few strings and
/// numbers fits (two `String`s and a `u64` take 56 bytes).
pub(crate) const INLINE_BYTES: usize = 64;

/// The buffer: [`INLINE_BYTES`] bytes aligned for any type of alignment up to 8.
type Buf = MaybeUninit<[u64; INLINE_BYTES / 8]>;

/// Whether a `T` is kept in the buffer itself (else an `Arc<T>` is, which always fits).
const fn inline<T>() -> bool {
    size_of::<T>() <= size_of::<Buf>() && align_of::<T>() <= align_of::<Buf>()
}

/// What the entry knows of its value's type.
struct VTable {
    /// The type's id (a function: `TypeId::of` is `const` only from Rust 1.91, above the
    /// crate's MSRV).
    type_id: fn() -> TypeId,
    /// A copy of the buffer's value, as a new buffer.
    clone: unsafe fn(&Buf) -> Buf,
    /// Drops the buffer's value in place.
    drop: unsafe fn(&mut Buf),
    /// The value as `&dyn Any` (for weighers and type names).
    as_any: unsafe fn(&Buf) -> &(dyn Any + Send + Sync),
}

/// The vtable of each type, one `'static` per type.
trait Erased {
    const VTABLE: VTable;
}

impl<T: Clone + Send + Sync + 'static> Erased for T {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<T>,
        clone: clone::<T>,
        drop: drop_in_place::<T>,
        as_any: as_any::<T>,
    };
}

/// A buffer holding `value`, which must fit it.
fn write<U>(value: U) -> Buf {
    // Known at compile time for each `U`: the check costs nothing where it holds. (Not a
    // `const` assertion: `write::<T>` is also compiled, never run, in the branches where
    // a large `T` goes behind an `Arc`.)
    assert!(size_of::<U>() <= size_of::<Buf>() && align_of::<U>() <= align_of::<Buf>());
    let mut buf = Buf::uninit();
    // SAFETY: the buffer is large and aligned enough for a `U` (asserted above) and
    // nothing was in it.
    unsafe { buf.as_mut_ptr().cast::<U>().write(value) };
    buf
}

/// The `T` in `buf`.
///
/// # Safety
/// `buf` holds a live value written for `T` (see the module's invariant).
unsafe fn value_ref<T>(buf: &Buf) -> &T {
    // SAFETY: per the caller, `buf` holds a `T` when `inline::<T>()`, else an `Arc<T>`.
    unsafe {
        if inline::<T>() {
            &*buf.as_ptr().cast::<T>()
        } else {
            &*buf.as_ptr().cast::<Arc<T>>()
        }
    }
}

/// # Safety
/// `buf` holds a live value written for `T`.
unsafe fn clone<T: Clone>(buf: &Buf) -> Buf {
    if inline::<T>() {
        // SAFETY: per the caller.
        write(T::clone(unsafe { value_ref::<T>(buf) }))
    } else {
        // SAFETY: per the caller, `buf` holds an `Arc<T>`.
        write(Arc::clone(unsafe { &*buf.as_ptr().cast::<Arc<T>>() }))
    }
}

/// # Safety
/// `buf` holds a live value written for `T`; it is dead afterwards.
unsafe fn drop_in_place<T>(buf: &mut Buf) {
    // SAFETY: per the caller, a `T` or an `Arc<T>` is there, and is dropped once.
    unsafe {
        if inline::<T>() {
            std::ptr::drop_in_place(buf.as_mut_ptr().cast::<T>());
        } else {
            std::ptr::drop_in_place(buf.as_mut_ptr().cast::<Arc<T>>());
        }
    }
}

/// # Safety
/// `buf` holds a live value written for `T`.
unsafe fn as_any<T: Send + Sync + 'static>(buf: &Buf) -> &(dyn Any + Send + Sync) {
    // SAFETY: per the caller.
    unsafe { value_ref::<T>(buf) }
}

/// A value moved out of a [`Value`], as it was stored.
enum Stored<T> {
    Inline(T),
    Shared(Arc<T>),
}

/// A value of some type, inline or in an `Arc`; see the module's docs.
pub(crate) struct Value {
    vtable: &'static VTable,
    data: Buf,
}

// SAFETY: a `Value` is only ever built from a `T: Send + Sync` (`Value::new`), and it
// gives access to that `T` only as the `T` itself, `&T` or `&dyn Any + Send + Sync`.
unsafe impl Send for Value {}
// SAFETY: as above; `&Value` reaches the `T` only through `&T` (cloning it, reading it).
unsafe impl Sync for Value {}

impl Value {
    /// Holds `value`: the `T` itself when it fits (taken out of the `Arc` when no one else
    /// holds it, else cloned), else the `Arc`.
    pub(crate) fn new<T: Clone + Send + Sync + 'static>(value: Arc<T>) -> Self {
        let data = if inline::<T>() {
            write(Arc::try_unwrap(value).unwrap_or_else(|shared| T::clone(&shared)))
        } else {
            write(value)
        };
        Self {
            vtable: &<T as Erased>::VTABLE,
            data,
        }
    }

    /// Whether the value is a `T`, by type id. (Not by comparing vtable addresses: the
    /// promoted `&VTABLE` of one type may exist once per codegen unit, and in the
    /// benchmark's build the hit path's never matched the one entries were built with.)
    #[inline]
    fn is<T: 'static>(&self) -> bool {
        (self.vtable.type_id)() == TypeId::of::<T>()
    }

    /// The value, if it is a `T`; else the type it is.
    #[inline(always)]
    pub(crate) fn take<T: Clone + Send + Sync + 'static>(self) -> Result<T, TypeId> {
        Ok(match self.into_stored::<T>()? {
            Stored::Inline(value) => value,
            Stored::Shared(shared) => {
                Arc::try_unwrap(shared).unwrap_or_else(|shared| T::clone(&shared))
            }
        })
    }

    /// The value in an `Arc`, if it is a `T`; else the type it is.
    pub(crate) fn into_arc<T: Clone + Send + Sync + 'static>(self) -> Result<Arc<T>, TypeId> {
        Ok(match self.into_stored::<T>()? {
            Stored::Inline(value) => Arc::new(value),
            Stored::Shared(shared) => shared,
        })
    }

    /// Moves the value out as it is stored, if it is a `T`; else the type it is.
    #[inline(always)]
    fn into_stored<T: 'static>(self) -> Result<Stored<T>, TypeId> {
        if !self.is::<T>() {
            return Err((self.vtable.type_id)());
        }
        // Not dropped: the value is moved out below, exactly once.
        let this = ManuallyDrop::new(self);
        // SAFETY: the vtable is `T`'s, so `data` holds a `T` or an `Arc<T>` as `inline`
        // says; `this` is never dropped, so reading it out leaves no second owner.
        unsafe {
            Ok(if inline::<T>() {
                Stored::Inline(this.data.as_ptr().cast::<T>().read())
            } else {
                Stored::Shared(this.data.as_ptr().cast::<Arc<T>>().read())
            })
        }
    }

    /// The value, to downcast.
    pub(crate) fn as_any(&self) -> &(dyn Any + Send + Sync) {
        // SAFETY: the vtable is the one of the type `data` holds.
        unsafe { (self.vtable.as_any)(&self.data) }
    }
}

impl Clone for Value {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            vtable: self.vtable,
            // SAFETY: the vtable is the one of the type `data` holds.
            data: unsafe { (self.vtable.clone)(&self.data) },
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: the vtable is the one of the type `data` holds, dropped once, here.
        unsafe { (self.vtable.drop)(&mut self.data) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its live copies.
    #[derive(Debug)]
    struct Counted<const N: usize> {
        live: Arc<AtomicUsize>,
        payload: [u8; N],
    }

    impl<const N: usize> Counted<N> {
        fn new(live: &Arc<AtomicUsize>, byte: u8) -> Self {
            live.fetch_add(1, Ordering::SeqCst);
            Self {
                live: Arc::clone(live),
                payload: [byte; N],
            }
        }
    }

    impl<const N: usize> Clone for Counted<N> {
        fn clone(&self) -> Self {
            Self::new(&self.live, self.payload.first().copied().unwrap_or(0))
        }
    }

    impl<const N: usize> Drop for Counted<N> {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Clones, takes, drops and mistypes a `Counted<N>` and checks that every copy made
    /// is dropped exactly once and reads back intact.
    fn round_trip<const N: usize>(expect_inline: bool) {
        assert_eq!(inline::<Counted<N>>(), expect_inline);
        let live = Arc::new(AtomicUsize::new(0));
        {
            let value = Value::new(Arc::new(Counted::<N>::new(&live, 7)));
            assert_eq!(
                live.load(Ordering::SeqCst),
                1,
                "moved out of a lone Arc, not cloned"
            );
            let copy = value.clone();
            let taken = copy.take::<Counted<N>>().expect("the right type");
            assert!(taken.payload.iter().all(|&b| b == 7));
            assert!(
                value.clone().take::<String>().is_err(),
                "another type is refused"
            );
            let any = value.as_any().downcast_ref::<Counted<N>>().expect("as any");
            assert_eq!(any.payload.len(), N);
            let shared = value.clone().into_arc::<Counted<N>>().expect("as an Arc");
            assert!(shared.payload.iter().all(|&b| b == 7));
            drop((taken, shared));
            let kept = Arc::new(Counted::<N>::new(&live, 9));
            let held = Value::new(Arc::clone(&kept));
            drop(kept);
            assert_eq!(
                held.take::<Counted<N>>()
                    .expect("same type")
                    .payload
                    .first(),
                Some(&9).filter(|_| N > 0)
            );
        }
        assert_eq!(live.load(Ordering::SeqCst), 0, "every copy dropped once");
    }

    #[test]
    fn small_values_are_inline_large_ones_shared_and_none_leaks_or_drops_twice() {
        round_trip::<0>(true);
        round_trip::<8>(true);
        round_trip::<{ INLINE_BYTES - 8 }>(true);
        round_trip::<{ INLINE_BYTES - 7 }>(false);
        round_trip::<4096>(false);
    }

    #[test]
    fn values_of_larger_alignment_go_behind_an_arc() {
        #[derive(Clone, PartialEq, Debug)]
        #[repr(align(64))]
        struct Aligned(u8);
        assert!(!inline::<Aligned>());
        let value = Value::new(Arc::new(Aligned(3)));
        assert_eq!(value.take::<Aligned>(), Ok(Aligned(3)));
        assert!(inline::<String>() && inline::<(u64, String, String)>());
    }

    #[test]
    fn strings_and_vectors_round_trip() {
        let value = Value::new(Arc::new(vec![String::from("a"), String::from("b")]));
        let copies: Vec<Vec<String>> = (0..3)
            .map(|_| value.clone().take::<Vec<String>>().expect("a Vec"))
            .collect();
        drop(value);
        assert!(copies.iter().all(|c| c == &["a", "b"]));
    }
}
