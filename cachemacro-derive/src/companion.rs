//! The companion of a cached function: its key, its scope, and its invalidation.
//!
//! A free function `get_user` gets a type `get_user` (an enum without variants) whose
//! associated functions are `key`, `remove_cached`,
//! `remove_local`, `refresh`, `with_source`, `uncached` (and `scope` when it is scoped); a
//! `&self` method gets methods beside it, `<name>_key`, `<name>_remove_cached`, ... (and
//! `<name>_scope`), since an `impl` block cannot hold a module. They take the parameters the key reads (through
//! the key or the scope template), and every type and const parameter of the function,
//! since those are part of the key too.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{GenericParam, Generics, WherePredicate};

use crate::expand::{
    fn_path, group_name, key_path, ret_tokens, scope_tokens, scope_tokens_in, KeyCode,
};
use crate::valid::{collect_names, Kind, Model, Param};

pub(crate) fn generate(model: &Model, key: &KeyCode) -> TokenStream {
    if model.kind != Kind::Free {
        // A method's default key is written from `type_name::<Self>()`; the path is unused.
        items(model, key, Some(&model.func.vis), quote!(""))
    } else {
        let name = &model.func.sig.ident;
        let vis = &model.func.vis;
        let items = items(model, key, None, key_path(model));
        let doc = format!(
            "Cache operations of the `#[cached]` function `{name}`: its key, and its invalidation here and on every instance."
        );
        // A type without values, named after the function, whose associated functions are
        // the companion: `get_user::key(..)`. Not a module: a module declared inside a
        // function's body could not see the body's items (the function itself, the types
        // of its parameters), while an `impl` sees what the function sees, wherever it is.
        quote! {
            #[doc = #doc]
            #[allow(non_camel_case_types, dead_code, clippy::all)]
            #vis enum #name {}

            #[allow(non_snake_case, dead_code, clippy::all)]
            impl #name {
                #items
            }
        }
    }
}

/// The companion functions. `method`: the function's visibility, for companions beside a
/// method or associated function, named after it; `None` for those of a companion module.
fn items(
    model: &Model,
    key: &KeyCode,
    method: Option<&syn::Visibility>,
    path: TokenStream,
) -> TokenStream {
    let name = &model.func.sig.ident;
    let keyed: Vec<&Param> = model.keyed.iter().map(|&i| &model.params[i]).collect();
    let scoped: Vec<&Param> = model.scoped.iter().map(|&i| &model.params[i]).collect();
    let inputs = |params: &[&Param]| -> Vec<TokenStream> {
        params
            .iter()
            .map(|p| {
                let ident = &p.ident;
                let ty = &p.ty;
                quote!(#ident: #ty)
            })
            .collect()
    };
    let mut key_inputs = inputs(&keyed);
    let scope_inputs = inputs(&scoped);
    if let Some(batch) = &model.batch {
        // A batch function's companions take one element where the function takes the
        // collection, as the single-item function with that parameter does.
        let (element, ty) = (&batch.element, &batch.element_ty);
        let at = model
            .keyed
            .iter()
            .filter(|&&i| i < batch.collection)
            .count();
        key_inputs.insert(at, quote!(#element: #ty));
    }
    let receiver = (model.kind == Kind::Method).then(|| quote!(&self,));
    let (key_inputs, scope_inputs, vis, names, what) = match method {
        Some(vis) => (
            quote!(#receiver #(#key_inputs),*),
            quote!(#receiver #(#scope_inputs),*),
            quote!(#[allow(clippy::all)] #vis),
            [
                format_ident!("{}_key", name),
                format_ident!("{}_scope", name),
                format_ident!("{}_remove_cached", name),
                format_ident!("{}_remove_local", name),
            ],
            if model.kind == Kind::Method {
                format!("the cached method `{name}`")
            } else {
                format!("the cached function `{name}`")
            },
        ),
        None => (
            quote!(#(#key_inputs),*),
            quote!(#(#scope_inputs),*),
            quote!(pub),
            [
                format_ident!("key"),
                format_ident!("scope"),
                format_ident!("remove_cached"),
                format_ident!("remove_local"),
            ],
            format!("`{name}`"),
        ),
    };
    let [key_fn, scope_fn, remove_fn, local_fn] = names;
    let generics = companion_generics(&model.func.sig.generics, &keyed, true);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let scope_generics = companion_generics(&model.func.sig.generics, &scoped, false);
    let (scope_impl_generics, _, scope_where_clause) = scope_generics.split_for_impl();
    let cache = match &model.args.cache {
        // Spanned as in the function's body, so that a wrong type is reported once.
        Some(expr) => quote_spanned! {expr.span()=>
            // Deref coercion takes a `Cache`, `&Cache`, `Arc<Cache>`, `LazyLock<Cache>`...
            #[allow(clippy::needless_borrow, clippy::borrow_deref_ref, clippy::explicit_auto_deref)]
            let __cachemacro_cache: &::cachemacro::__private::Cache = &#expr;
        },
        None => quote! {
            let __cachemacro_global = ::cachemacro::__private::global_for_companion();
            let __cachemacro_cache: &::cachemacro::__private::Cache = &__cachemacro_global;
        },
    };
    let (scope_let, scope) = scope_tokens(model);
    // Where the companion cannot wait: a group's version as this process knows it, read
    // from the cache (which `key` and `scope` then need too).
    let (scope_now, _) = scope_tokens_in(model, false);
    let cache_now = if model.grouped {
        cache.clone()
    } else {
        TokenStream::new()
    };
    let capacity = key.capacity;
    let plain_key = key.build(
        quote!(::cachemacro::__private::String::with_capacity(#capacity)),
        &path,
    );
    let storage_key = key.build(
        quote!(::cachemacro::__private::key_buffer(__cachemacro_cache, #scope, #capacity)),
        &path,
    );
    // Counts an invalidation for the function (`FunctionStats::invalidations_sent`), under
    // the function's path.
    let site_path = fn_path(model);
    let sent = quote! {{
        static __CACHEMACRO_SITE: ::cachemacro::__private::Site =
            ::cachemacro::__private::Site::new(#site_path);
        ::cachemacro::__private::invalidation_sent(&__CACHEMACRO_SITE);
    }};
    let calls = calls(
        model,
        &cache,
        &storage_key,
        &vis,
        method.is_some(),
        &what,
        &sent,
    );
    let many = many(model, &cache, &storage_key, &vis, method, &what, &sent);
    let share = share(model, &cache, &vis, method, &what, &site_path);
    let doc_remove = format!(
        "Removes what {what} cached for these arguments: from this process, from Redis, and from every peer's memory.\n\n\
         Returns an error when Redis could not be reached: the local copy is gone, but other instances may keep the old value until its TTL ends."
    );
    let doc_local = format!(
        "Removes this process's in-memory copy of what {what} cached for these arguments; Redis and peers are untouched."
    );
    let key_and_scope = if model.scope.is_some() {
        let doc_key = format!(
            "Where {what} caches these arguments: the scope's name and the key inside it.\n\n\
             Reach the entry through its scope: `cache.scope(key.scope()).remove(key.key())`."
        );
        let doc_scope = format!(
            "The name of the scope {what} caches these arguments in, as `Cache::scope` takes it: `cache.scope(&...).clear()` clears every entry of that scope."
        );
        quote! {
            #[doc = #doc_key]
            #vis fn #key_fn #impl_generics (#key_inputs) -> ::cachemacro::__private::ScopedKey #where_clause {
                #cache_now
                #scope_now
                ::cachemacro::__private::ScopedKey::new(
                    ::cachemacro::__private::Option::unwrap_or_default(#scope),
                    #plain_key,
                )
            }

            #[doc = #doc_scope]
            #vis fn #scope_fn #scope_impl_generics (#scope_inputs) -> ::cachemacro::__private::String #scope_where_clause {
                #cache_now
                #scope_now
                ::cachemacro::__private::String::from(
                    ::cachemacro::__private::Option::unwrap_or_default(#scope),
                )
            }
        }
    } else {
        let doc_key = format!(
            "The key {what} caches these arguments under (before the namespace is added), as `Cache::remove` takes it."
        );
        quote! {
            #[doc = #doc_key]
            #vis fn #key_fn #impl_generics (#key_inputs) -> ::cachemacro::__private::String #where_clause {
                #plain_key
            }
        }
    };
    let bump = group_name(model).map(|group| {
        let bump_fn = match method {
            Some(_) => format_ident!("{}_bump_group", name),
            None => format_ident!("bump_group"),
        };
        let doc = format!(
            "Retires every entry of the group {what} caches these arguments in: moves the group to a new version (`Cache::bump_version`), here at once and on every instance when the bus message arrives; returns the new version."
        );
        quote! {
            #[doc = #doc]
            #vis async fn #bump_fn #scope_impl_generics (#scope_inputs)
                -> ::cachemacro::__private::Result<u64, ::cachemacro::__private::Error> #scope_where_clause
            {
                #cache
                __cachemacro_cache.bump_version(#group).await
            }
        }
    });
    quote! {
        #key_and_scope

        #bump

        #[doc = #doc_remove]
        #vis async fn #remove_fn #impl_generics (#key_inputs)
            -> ::cachemacro::__private::Result<(), ::cachemacro::__private::Error> #where_clause
        {
            #cache
            #scope_let
            let __cachemacro_key = #storage_key;
            #sent
            ::cachemacro::__private::remove(__cachemacro_cache, __cachemacro_key).await
        }

        #[doc = #doc_local]
        #vis fn #local_fn #impl_generics (#key_inputs) #where_clause {
            #cache
            #scope_now
            let __cachemacro_key = #storage_key;
            ::cachemacro::__private::remove_local(__cachemacro_cache, __cachemacro_key)
        }

        #calls

        #many

        #share
    }
}

/// `local_entry_count` and `clear_local`, for a function with a share of L1 of its own
/// (`l1_capacity = N`).
fn share(
    model: &Model,
    cache: &TokenStream,
    vis: &TokenStream,
    method: Option<&syn::Visibility>,
    what: &str,
    site_path: &TokenStream,
) -> TokenStream {
    let Some(capacity) = model.args.l1_capacity else {
        return TokenStream::new();
    };
    let name = &model.func.sig.ident;
    let (count_fn, clear_fn) = if method.is_some() {
        (
            format_ident!("{}_local_entry_count", name),
            format_ident!("{}_clear_local", name),
        )
    } else {
        (
            format_ident!("local_entry_count"),
            format_ident!("clear_local"),
        )
    };
    let receiver = (model.kind == Kind::Method).then(|| quote!(&self));
    let doc_count = format!(
        "How many entries {what} holds in this process's memory: its own share of L1, at most {capacity} (`l1_capacity`)."
    );
    let doc_clear = format!(
        "Drops every entry {what} holds in this process's memory (its share of L1); Redis and peers are untouched."
    );
    quote! {
        #[doc = #doc_count]
        #vis fn #count_fn (#receiver) -> u64 {
            #cache
            ::cachemacro::__private::share_entry_count(__cachemacro_cache, #site_path)
        }

        #[doc = #doc_clear]
        #vis fn #clear_fn (#receiver) {
            #cache
            ::cachemacro::__private::clear_share(__cachemacro_cache, #site_path)
        }
    }
}

/// `remove_cached_many`, for a batch function: every element's entry, in one round trip.
fn many(
    model: &Model,
    cache: &TokenStream,
    storage_key: &TokenStream,
    vis: &TokenStream,
    method: Option<&syn::Visibility>,
    what: &str,
    sent: &TokenStream,
) -> TokenStream {
    let Some(batch) = &model.batch else {
        return TokenStream::new();
    };
    let name = &model.func.sig.ident;
    let many_fn = if method.is_some() {
        format_ident!("{}_remove_cached_many", name)
    } else {
        format_ident!("remove_cached_many")
    };
    let (element, ty) = (&batch.element, &batch.element_ty);
    let mut inputs: Vec<TokenStream> = model
        .keyed
        .iter()
        .map(|&i| {
            let p = &model.params[i];
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: #ty)
        })
        .collect();
    // The elements where the function takes the collection.
    let at = model
        .keyed
        .iter()
        .filter(|&&i| i < batch.collection)
        .count();
    inputs.insert(at, quote!(__cachemacro_elements: &[#ty]));
    let receiver = (model.kind == Kind::Method).then(|| quote!(&self,));
    let (scope_let, _) = scope_tokens(model);
    let doc = format!(
        "Removes what {what} cached for each of these elements, here, in Redis (one round trip) and on every peer."
    );
    quote! {
        #[doc = #doc]
        #vis async fn #many_fn (#receiver #(#inputs),*)
            -> ::cachemacro::__private::Result<(), ::cachemacro::__private::Error>
        {
            #cache
            #scope_let
            let mut __cachemacro_keys = ::cachemacro::__private::Vec::with_capacity(__cachemacro_elements.len());
            for #element in __cachemacro_elements {
                __cachemacro_keys.push(#storage_key);
                #sent
            }
            ::cachemacro::__private::batch::remove_many(__cachemacro_cache, __cachemacro_keys).await
        }
    }
}

/// `refresh`, `with_source` and `uncached`: the function called through its cache in
/// another way. They take every parameter of the function, as it does.
fn calls(
    model: &Model,
    cache: &TokenStream,
    storage_key: &TokenStream,
    vis: &TokenStream,
    method: bool,
    what: &str,
    sent: &TokenStream,
) -> TokenStream {
    let name = &model.func.sig.ident;
    let refresh = model.batch.is_none();
    let (refresh_fn, uncached_fn, source_fn) = if method {
        (
            format_ident!("{}_refresh", name),
            format_ident!("{}_uncached", name),
            format_ident!("{}_with_source", name),
        )
    } else {
        (
            format_ident!("refresh"),
            format_ident!("uncached"),
            format_ident!("with_source"),
        )
    };
    let sig = &model.func.sig;
    let generics = &sig.generics;
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let params: Vec<TokenStream> = model
        .params
        .iter()
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: #ty)
        })
        .collect();
    let args: Vec<&syn::Ident> = model.params.iter().map(|p| &p.ident).collect();
    let receiver = (model.kind == Kind::Method).then(|| quote!(&self,));
    // Type and const arguments, unless a parameter is `impl Trait` (which forbids them).
    let explicit = !model.params.iter().any(|p| {
        p.ty.to_token_stream()
            .into_iter()
            .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
    });
    let turbofish = if explicit && !model.type_args.is_empty() {
        let names = model.type_args.iter().map(|a| a.ident());
        quote!(::<#(#names),*>)
    } else {
        TokenStream::new()
    };
    let (ret, _) = ret_tokens(sig);
    // A free function is called through a helper whose parameters are named by position: in
    // the companion's functions, a parameter named like the function (`team: u64` of
    // `fn team`) hides it, and no path reaches a function declared in a body.
    let mut helper = TokenStream::new();
    let call = match model.kind {
        Kind::Method => quote!(self.#name #turbofish (#(#args),*)),
        Kind::Associated => quote!(Self::#name #turbofish (#(#args),*)),
        Kind::Free => {
            let positions: Vec<syn::Ident> = (0..model.params.len())
                .map(|i| format_ident!("__cachemacro_{}", i))
                .collect();
            let types = model.params.iter().map(|p| &p.ty);
            helper = quote! {
                async fn __cachemacro_call #impl_generics (#(#positions: #types),*) -> #ret #where_clause {
                    #name #turbofish (#(#positions),*).await
                }
            };
            quote!(Self::__cachemacro_call #turbofish (#(#args),*))
        }
    };
    let (scope_let, _) = scope_tokens(model);
    let doc_refresh = format!(
        "Reloads what {what} caches for these arguments, stores it and returns it: removes the entry (here, in Redis and on every peer, like `remove_cached`), then calls the function, which loads afresh. For write paths that would rather warm the cache than leave it cold.\n\n\
         Returns an error, without calling the function, when the removal could not reach Redis."
    );
    let doc_source = format!(
        "Calls {what} as a caller would, and says where its value came from: `Source::L1`, `Source::L2`, `Source::Joined` (a concurrent call's load), `Source::Loaded` (the body ran) or `Source::Stale`. `cached`'s `with_cached_flag`."
    );
    let doc_uncached = format!(
        "Calls {what} without the cache: the body runs and nothing is read or stored (cached functions it calls are not cached either)."
    );
    // One per function, like `refresh`: a batch's elements each come from somewhere.
    let with_source = refresh.then(|| {
        quote! {
            #[doc = #doc_source]
            #vis async fn #source_fn #impl_generics (#receiver #(#params),*)
                -> (#ret, ::cachemacro::__private::Source) #where_clause
            {
                ::cachemacro::__private::with_source(#call).await
            }
        }
    });
    let refresh = refresh.then(|| quote! {
        #[doc = #doc_refresh]
        #vis async fn #refresh_fn #impl_generics (#receiver #(#params),*)
            -> ::cachemacro::__private::Result<#ret, ::cachemacro::__private::Error> #where_clause
        {
            {
                #cache
                #scope_let
                let __cachemacro_key = #storage_key;
                #sent
                ::cachemacro::__private::remove(__cachemacro_cache, __cachemacro_key).await?;
            }
            ::cachemacro::__private::Ok(#call.await)
        }
    });
    quote! {
        #helper

        #refresh

        #with_source

        #[doc = #doc_uncached]
        #vis async fn #uncached_fn #impl_generics (#receiver #(#params),*) -> #ret #where_clause {
            ::cachemacro::__private::without_cache(#call).await
        }
    }
}

/// The generic parameters (and where predicates) a companion function needs: those its
/// parameters use, and with `all_types` every type and const parameter (they are part of
/// the key).
fn companion_generics(generics: &Generics, used: &[&Param], all_types: bool) -> Generics {
    let mut names = HashSet::new();
    for p in used {
        collect_names(p.ty.to_token_stream(), &mut names);
    }
    let param_name = |gp: &GenericParam| match gp {
        GenericParam::Type(t) => t.ident.to_string(),
        GenericParam::Lifetime(l) => l.lifetime.to_string(),
        GenericParam::Const(c) => c.ident.to_string(),
    };
    for gp in generics.params.iter().filter(|_| all_types) {
        if !matches!(gp, GenericParam::Lifetime(_)) {
            names.insert(param_name(gp));
        }
    }
    // Bounds can mention further parameters (`T: Into<U>`, `T: 'a`): include those too.
    loop {
        let before = names.len();
        for gp in &generics.params {
            if names.contains(&param_name(gp)) {
                collect_names(gp.to_token_stream(), &mut names);
            }
        }
        if let Some(wc) = &generics.where_clause {
            for pred in &wc.predicates {
                if predicate_subject(pred).is_some_and(|s| mentions(&s, &names)) {
                    collect_names(pred.to_token_stream(), &mut names);
                }
            }
        }
        if names.len() == before {
            break;
        }
    }
    let mut out = Generics {
        params: generics
            .params
            .iter()
            .filter(|gp| names.contains(&param_name(gp)))
            .cloned()
            .collect(),
        ..Generics::default()
    };
    if let Some(wc) = &generics.where_clause {
        let mut wc = wc.clone();
        wc.predicates = wc
            .predicates
            .into_iter()
            .filter(|pred| predicate_subject(pred).is_some_and(|s| mentions(&s, &names)))
            .collect();
        if !wc.predicates.is_empty() {
            out.where_clause = Some(wc);
        }
    }
    if !out.params.is_empty() {
        out.lt_token = Some(Default::default());
        out.gt_token = Some(Default::default());
    }
    out
}

fn predicate_subject(pred: &WherePredicate) -> Option<TokenStream> {
    match pred {
        WherePredicate::Type(t) => Some(t.bounded_ty.to_token_stream()),
        WherePredicate::Lifetime(l) => Some(l.lifetime.to_token_stream()),
        _ => None,
    }
}

fn mentions(tokens: &TokenStream, names: &HashSet<String>) -> bool {
    let mut found = HashSet::new();
    collect_names(tokens.clone(), &mut found);
    found.iter().any(|n| names.contains(n))
}
