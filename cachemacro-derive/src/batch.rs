//! Code generation for a batch function, `#[cached(key = "user:<id>", batch(id in ids))]`.
//!
//! Input:
//!
//! ```text
//! #[cached(key = "user:<id>", batch(id in ids))]
//! async fn get_users(ids: Vec<u64>) -> Result<HashMap<u64, User>, DbError> { body }
//! ```
//!
//! Output (abridged):
//!
//! ```text
//! async fn get_users(ids: Vec<u64>) -> Result<HashMap<u64, User>, DbError> {
//!     let cache: Option<&Cache> = global_unless_bypassed();
//!     match cache {
//!         Some(cache) => {
//!             let items = batch::elements(&ids);                         // cloned
//!             let begun = batch::begin::<Result<..>, u64, NotCached>(cache, None, items,
//!                 |id, out| { out.push_str("user:"); id.write_key_part(out); }, ttl, 0, resilience).await;
//!             let missing = begun.missing();                             // neither tier had them
//!             let result = if missing.is_empty() { None } else {
//!                 let ids: Vec<u64> = missing.into_iter().collect();     // the caller's type
//!                 Some(async move { body }.await)
//!             };
//!             begun.finish(result).await                                 // store, merge, return
//!         }
//!         None => async move { body }.await,                             // caching bypassed
//!     }
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::expand::{
    cache_tokens, key_path, param_checks, pin_return, resilience_tokens, ret_tokens, scope_tokens,
    site_and_span, tags_tokens, ttl_tokens, KeyCode,
};
use crate::valid::Model;

/// The new body of a batch function.
pub(crate) fn body(model: &Model, key: &KeyCode) -> TokenStream {
    let batch = model.batch.as_ref().expect("a batch function");
    let func = &model.func;
    let (ret, ret_span) = ret_tokens(&func.sig);
    // A batch function always has a key template.
    let checks = param_checks(model);
    let cache = cache_tokens(model);
    let (scope_let, scope) = scope_tokens(model);
    let ttl = ttl_tokens(model);
    let version = model.args.version.unwrap_or(0);
    let resilience = resilience_tokens(model);
    let path = key_path(model);
    let writes = &key.writes;
    let element = &batch.element;
    let element_ty = &batch.element_ty;
    let param = &model.params[batch.collection];
    let collection = &param.ident;
    let collection_ty = &param.ty;
    let owned = &batch.owned;
    let elements_of = if batch.reference {
        quote!(#collection)
    } else {
        quote!(&#collection)
    };
    // The missing elements, in the caller's collection type.
    let rebind = if batch.reference {
        quote! {
            let __cachemacro_owned: #owned =
                ::core::iter::FromIterator::from_iter(__cachemacro_missing);
            let #collection: #collection_ty = &__cachemacro_owned;
        }
    } else {
        quote! {
            let #collection: #collection_ty =
                ::core::iter::FromIterator::from_iter(__cachemacro_missing);
        }
    };
    let absence = if model.args.cache_none.is_some() {
        quote!(::cachemacro::__private::batch::CachedAsNone)
    } else {
        quote!(::cachemacro::__private::batch::NotCached)
    };
    // The element's parts of the key: how the body's pairs are matched to the elements.
    let element_writes = KeyCode::element(model, model.key.as_ref().expect("checked by valid"));
    let element_var = Ident::new("__cachemacro_element", Span::mixed_site());
    let ident = quote! {
        |#element_var: &#element_ty, __cachemacro_out: &mut ::cachemacro::__private::String| {
            #element_writes
        }
    };
    // Each element's tags, which may name the element: written only for the misses.
    let tags = {
        let tags = tags_tokens(model, &path);
        quote! {
            |#element: &#element_ty| {
                let _ = #element;
                #tags
            }
        }
    };
    let (site, span) = site_and_span(model);
    let pin_return = pin_return(&ret, ret_span);
    let stmts = &func.block.stmts;
    quote! {
        #checks
        #cache
        match __cachemacro_cache {
            ::cachemacro::__private::Some(__cachemacro_cache) => {
                #scope_let
                #site
                #span
                let __cachemacro_items =
                    ::cachemacro::__private::batch::elements::<_, #element_ty>(#elements_of);
                let __cachemacro_begun = ::cachemacro::__private::batch::begin::<#ret, #element_ty, #absence>(
                    __cachemacro_cache,
                    #scope,
                    __cachemacro_items,
                    |#element: &#element_ty, __cachemacro_out: &mut ::cachemacro::__private::String| {
                        #[allow(unused_variables)]
                        let __cachemacro_path: &'static str = #path;
                        #writes
                    },
                    #ident,
                    #tags,
                    #ttl,
                    #version,
                    #resilience,
                    ::cachemacro::__private::Call::new(&__CACHEMACRO_SITE, __cachemacro_span.clone()),
                )
                .await;
                let __cachemacro_missing = __cachemacro_begun.missing();
                let __cachemacro_result = if __cachemacro_missing.is_empty() {
                    ::cachemacro::__private::None
                } else {
                    #rebind
                    ::cachemacro::__private::Some(::cachemacro::__private::tracing::Instrument::instrument(
                        ::cachemacro::__private::batch::body(async move {
                            #pin_return
                            #(#stmts)*
                        }),
                        ::core::clone::Clone::clone(&__cachemacro_span),
                    ).await)
                };
                ::cachemacro::__private::tracing::Instrument::instrument(
                    __cachemacro_begun.finish(__cachemacro_result),
                    __cachemacro_span,
                )
                .await
            }
            ::cachemacro::__private::None => ::cachemacro::__private::batch::body(async move {
                #pin_return
                #(#stmts)*
            }).await,
        }
    }
}
