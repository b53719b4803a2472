//! The checks only the type checker can make, generated into the function's body: they
//! compile to nothing, or fail with a message of their own.
//!
//! The macro sees tokens, not types: it cannot tell whether `tenant: &str` can be part of a
//! key, whether `ApiResult<User>` is a `Result`, or whether `Report` can be serialized. So
//! the generated code asks the type checker, by *autoref specialization* (see the runtime's
//! `__private` module): a method call resolves to the impl with the bound when the bound
//! holds and to the fallback otherwise, and returns one of two local marker types. A trait
//! defined right here, implemented for the marker that is fine, turns the other one into
//! an error.
//!
//! Why a local trait: its `#[diagnostic::on_unimplemented]` message is written by the macro,
//! so it can name the parameter (`tenant`) and both fixes, and no path of the runtime
//! appears in the error. The check's spans point at the parameter, or at the argument that
//! asked for it. This works for any type the body can see: `&str`, `&Db`, `State<App>`,
//! aliases. An `impl Trait` or a generic parameter is opaque there (a generic `T` counts as
//! a key part only when its bounds say `T: KeyPart`, and as `Serialize` only when they say
//! so), so a parameter of such a type left out of the key is rejected by `valid` instead,
//! from its tokens, unless `ignore` lists it.
//!
//! The alternatives, and why not:
//!
//! - A syntactic list of key-part types (`&str`, `u64`, `Option<..>`...) misses aliases
//!   (`type TenantId = String`), newtypes with `#[derive(KeyPart)]`, `Uuid` and generics, and
//!   cannot tell `Db` (a handle) from `Tenant` (a key part): the trap would stay open.
//! - "Not implemented" in the type system through ambiguity (two impls, one bounded by
//!   `KeyPart`, as `static_assertions::assert_not_impl_any!` does) fails with "type
//!   annotations needed", which names neither the parameter nor a fix.
//! - Specialization and negative impls are not stable.
//!
//! The check compiles to nothing: the markers are zero-sized and the calls are inlined
//! away. The value is passed before the verdict, so that the type is known when the
//! compiler reports the missing impl (else the message would show `_`).

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::valid::Param;

/// Fails when `param` (left out of the key template, not ignored) has a type that is data:
/// a key part, or `serde::Serialize`. Two calls differing only in it would share one entry.
/// Only a handle (neither: `&Db`, `Arc<Client>`, `State<App>`) may stay out without a word.
///
/// Two local traits, each with its own message, and a three-way verdict: a key part fails
/// the first, data that is no key part the second, a handle neither.
pub(crate) fn left_out(param: &Param) -> TokenStream {
    let span = param.ident.span();
    let ident = &param.ident;
    let name = ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let label = format!("`{name}` is not in the key");

    let key_part_message = format!(
        "parameter `{name}` is left out of the cache key, though its type `{{T}}` can be part of it: add `<{name}>` to the key template, or list it in `ignore = [{name}]`"
    );
    let key_part_note = format!(
        "calls that differ only in `{name}` would share one cache entry; `ignore = [{name}]` says the result does not depend on it"
    );
    let data_message = format!(
        "parameter `{name}` is left out of the cache key, though its type `{{T}}` is data (`serde::Serialize`): list it in `ignore = [{name}]`, or make it part of the key"
    );
    let data_note = format!(
        "calls that differ only in `{name}` would share one cache entry; `ignore = [{name}]` says the result does not depend on it. To key on it, add `<{name}>` (or `<{name}.field>`) to the key template: a `Serialize` value is written by its serialized fields"
    );

    let key_part = Ident::new(&format!("{name}_can_be_part_of_the_key"), span);
    let data = Ident::new(&format!("{name}_is_data"), span);
    let handle = Ident::new(&format!("{name}_is_a_handle"), span);
    quote_spanned! {span=>
        #[allow(non_camel_case_types, unused_imports, clippy::all)]
        {
            #[diagnostic::on_unimplemented(message = #key_part_message, label = #label, note = #key_part_note)]
            // The value comes first: see `verdict_check`.
            trait may_be_left_out_of_the_key<T: ?Sized> {
                fn __cachemacro_check(_value: &T, _verdict: Self)
                where
                    Self: Sized,
                {
                }
            }
            #[diagnostic::on_unimplemented(message = #data_message, label = #label, note = #data_note)]
            trait data_may_be_left_out_of_the_key<T: ?Sized> {
                fn __cachemacro_check(_value: &T, _verdict: Self)
                where
                    Self: Sized,
                {
                }
            }
            #[derive(Clone, Copy)]
            struct #key_part;
            #[derive(Clone, Copy)]
            struct #data;
            #[derive(Clone, Copy)]
            struct #handle;
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized> may_be_left_out_of_the_key<T> for #data {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized> may_be_left_out_of_the_key<T> for #handle {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized> data_may_be_left_out_of_the_key<T> for #key_part {}
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized> data_may_be_left_out_of_the_key<T> for #handle {}
            use ::cachemacro::__private::check::{LeftOutData as _, LeftOutHandle as _, LeftOutKeyPart as _};
            let __cachemacro_verdict = (&&&::cachemacro::__private::check::Param(&#ident))
                .__cachemacro_left_out(#key_part, #data, #handle);
            may_be_left_out_of_the_key::__cachemacro_check(&#ident, __cachemacro_verdict);
            data_may_be_left_out_of_the_key::__cachemacro_check(&#ident, __cachemacro_verdict);
        }
    }
}

/// Fails when `param` of a function without key template (so part of its key) has a type
/// that cannot be part of a key: neither a `KeyPart` nor `Serialize`.
pub(crate) fn in_default_key(param: &Param) -> TokenStream {
    let name = param.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let message =
        format!("parameter `{name}` cannot be part of the cache key: `{{T}}` is neither `serde::Serialize` nor a `KeyPart`");
    let label = format!("`{name}` is part of the key");
    let note = format!(
        "without a `key` template every parameter is part of the key; add `ignore = [{name}]` if the result does not depend on `{name}`, or write a `key` template with the parameters that matter, such as `key = \"user:<id>\"`"
    );
    verdict_check(
        param,
        [&message, &label, &note],
        "can_be_part_of_the_key",
        [
            format!("{name}_is_a_key_part"),
            format!("{name}_is_no_key_part"),
        ],
    )
}

/// `Check::check(&value, Param(&value).verdict(Yes, No))`, where only `Yes` implements
/// `Check`.
fn verdict_check(
    param: &Param,
    [message, label, note]: [&str; 3],
    check: &str,
    [yes, no]: [String; 2],
) -> TokenStream {
    let span = param.ident.span();
    let ident = &param.ident;
    let check = Ident::new(check, span);
    let yes = Ident::new(&yes, span);
    let no = Ident::new(&no, span);
    quote_spanned! {span=>
        #[allow(non_camel_case_types, unused_imports, clippy::all)]
        {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            // The value comes first: the compiler knows `T` before it finds no impl for the
            // verdict, so the message shows the type, not `_`.
            trait #check<T: ?Sized> {
                fn __cachemacro_check(_value: &T, _verdict: Self)
                where
                    Self: Sized,
                {
                }
            }
            struct #yes;
            struct #no;
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized> #check<T> for #yes {}
            use ::cachemacro::__private::check::{IsKeyPart as _, IsSerialize as _, NotKeyPart as _};
            #check::__cachemacro_check(
                &#ident,
                (&&&::cachemacro::__private::check::Param(&#ident)).__cachemacro_verdict(#yes, #no),
            );
        }
    }
}

/// `result = true`, `option = true` or `cache_none`: the return type must be a `Result`
/// or an `Option`, through any alias.
pub(crate) fn declared_shape(ret: &Type, span: Span, shape: Shape) -> TokenStream {
    let (check, message, label, note, impl_for) = match shape {
        Shape::Result => (
            quote_spanned!(span=> returns_a_result),
            "`result = true` says this function returns a `Result`, but it returns `{Self}`",
            "not a `Result`",
            "`result = true` caches only the `Ok` values of a function returning `Result<T, E>` (or an alias of it); remove it to cache every value",
            quote_spanned!(span=> impl<T, E> returns_a_result for ::core::result::Result<T, E> {}),
        ),
        Shape::Option => (
            quote_spanned!(span=> returns_an_option),
            "`option = true` says this function returns an `Option`, but it returns `{Self}`",
            "not an `Option`",
            "`option = true` caches only the `Some` values of a function returning `Option<T>` (or an alias of it); remove it to cache every value",
            quote_spanned!(span=> impl<T> returns_an_option for ::core::option::Option<T> {}),
        ),
        Shape::CacheNone => (
            quote_spanned!(span=> returns_an_option),
            "`cache_none` applies to functions that return `Option<T>`; this one returns `{Self}`",
            "not an `Option`",
            "`cache_none = true` caches `None` results too; without an `Option`, remove it",
            quote_spanned!(span=> impl<T> returns_an_option for ::core::option::Option<T> {}),
        ),
    };
    quote_spanned! {span=>
        #[allow(non_camel_case_types, clippy::all)]
        {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            trait #check {
                fn __cachemacro_check() {}
            }
            #[diagnostic::do_not_recommend]
            #impl_for
            <#ret as #check>::__cachemacro_check();
        }
    }
}

/// The return type shapes an argument can declare.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Result,
    Option,
    CacheNone,
}

/// Fails when the cached value's type (the `Ok` type of a `Result`...) is not a
/// `CacheValue`: one error naming the type and the derives to add, instead of one per
/// missing trait in the runtime's signatures (which `__cachemacro_via` keeps quiet).
pub(crate) fn cacheable(ret_span: Span, shared: bool) -> TokenStream {
    let message = "`{V}` cannot be cached: a cached value must be `Clone`, `serde::Serialize` and `serde::Deserialize` (and `Send + Sync + 'static`)";
    let label = "the value returned here is stored in the cache";
    let note = if shared {
        // The derive is not the fix: serde implements both traits for `Arc<T>` and `Rc<T>`
        // behind its `rc` feature.
        "serde serializes `Arc<T>` (and `Rc<T>`) only with its `rc` feature: in Cargo.toml, `serde = { version = \"1\", features = [\"derive\", \"rc\"] }`, and derive `Clone, serde::Serialize, serde::Deserialize` on `T`. The cache stores the value the `Arc` points to: each hit read back from Redis or another process gets an `Arc` of its own (`Rc` is not `Send`: cache an `Arc`)"
    } else {
        "add `#[derive(Clone, serde::Serialize, serde::Deserialize)]` to `{V}`; for a type of another crate, cache a type of your own that converts from it"
    };
    quote_spanned! {ret_span=>
        #[allow(non_camel_case_types, unused_imports, clippy::all)]
        {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            // The type comes first, so that the message shows it (see `verdict_check`).
            trait can_be_cached<V: ?Sized> {
                fn __cachemacro_check(_value: ::cachemacro::__private::PhantomData<V>, _verdict: Self)
                where
                    Self: Sized,
                {
                }
            }
            struct cacheable;
            struct missing_clone_serialize_or_deserialize;
            #[diagnostic::do_not_recommend]
            impl<V: ?Sized> can_be_cached<V> for cacheable {}
            use ::cachemacro::__private::select::{Cacheable as _, NotCacheable as _};
            let __cachemacro_probe = __cachemacro_via.value_probe();
            can_be_cached::__cachemacro_check(
                __cachemacro_probe.phantom(),
                (&__cachemacro_probe).__cachemacro_verdict(cacheable, missing_clone_serialize_or_deserialize),
            );
        }
    }
}

/// An expression giving the `Duration` of `ttl = <expr>`, or an error saying what to write.
pub(crate) fn ttl_expr(expr: &syn::Expr) -> TokenStream {
    let span = expr.span();
    let message = "`ttl = ...` takes a `Duration`, not `{Self}`";
    let label = "expected a `std::time::Duration`";
    let note = "write an expression giving a `Duration` (`Duration::from_secs(300)`, `USER_TTL`), or a literal: `ttl = \"5m\"`, `ttl = 300` (seconds)";
    quote_spanned! {span=>
        {
            #[allow(non_camel_case_types, clippy::all)]
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            trait ttl_is_a_duration {
                fn __cachemacro_ttl(self) -> ::cachemacro::__private::Duration;
            }
            #[diagnostic::do_not_recommend]
            impl ttl_is_a_duration for ::cachemacro::__private::Duration {
                fn __cachemacro_ttl(self) -> ::cachemacro::__private::Duration {
                    self
                }
            }
            #[diagnostic::do_not_recommend]
            impl ttl_is_a_duration for &::cachemacro::__private::Duration {
                fn __cachemacro_ttl(self) -> ::cachemacro::__private::Duration {
                    *self
                }
            }
            ttl_is_a_duration::__cachemacro_ttl(#expr)
        }
    }
}
