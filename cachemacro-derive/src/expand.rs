//! Code generation for `#[cached]`.
//!
//! Input:
//!
//! ```text
//! #[cached(key = "user:<id>", ttl = "5m")]
//! pub async fn get_user(id: u64) -> Result<User, DbError> { body }
//! ```
//!
//! Output (abridged):
//!
//! ```text
//! pub async fn get_user(id: u64) -> Result<User, DbError> {
//!     let cache = global();
//!     let key = match lookup::<OkOnly, Result<User, DbError>>(cache, None, |out| { out.push_str("user:"); id.write_key_part(out); }) {
//!         Ok(hit) => return hit,       // L1 hit: the key was built in a reused buffer
//!         Err(key) => key,             // miss: the owned key
//!     };
//!     load::<OkOnly, Result<User, DbError>, _>(cache, key, Some(ttl), 0, async move { body }).await
//! }
//! pub mod get_user {
//!     use super::*;
//!     pub fn key(id: u64) -> String { ... }
//!     pub async fn remove_cached(id: u64) -> Result<(), Error> { ... }
//!     pub fn remove_local(id: u64) { ... }
//! }
//! ```

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Generics, Ident, ItemFn, Pat, ReturnType, Type, WherePredicate};

use crate::args::Args;
use crate::errors::Errors;
use crate::template::{self, Field, Piece};

/// A parameter bound to a name.
struct Param {
    ident: Ident,
    ty: Type,
}

/// How the return type is cached.
enum Mode {
    Always,
    OkOnly,
    SomeOnly,
}

pub(crate) fn expand(args: TokenStream, func: ItemFn) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = Args::parse(args, &mut errors)?;
    let mut reported = HashSet::new();
    let mut method = false;
    let params = params(&func, &mut method, &mut reported, &mut errors);
    if method {
        // `<self.field>` is a placeholder of a `&self` method.
        reported.insert("self".to_owned());
    }

    let mode = mode(&func, &args, &mut errors);

    // The key: the template's pieces, or the function's path and every argument.
    let mut parse = |lit: &syn::LitStr| match template::parse(&lit.value()) {
        Ok(pieces) => {
            check_holes(
                &pieces,
                &params,
                &reported,
                &func.sig.ident,
                lit,
                &mut errors,
            );
            pieces
        }
        Err(message) => {
            errors.spanned(lit, message);
            Vec::new()
        }
    };
    let pieces = args.key.as_ref().map(&mut parse).unwrap_or_default();
    let tag_pieces: Vec<Vec<Piece>> = args.tags.iter().map(&mut parse).collect();
    errors.finish()?;
    let mode = mode.unwrap_or(Mode::Always);

    let key = KeyCode::new(args.key.as_ref(), &pieces, &params, &func, method);
    let tags: Vec<KeyCode> = args
        .tags
        .iter()
        .zip(&tag_pieces)
        .map(|(lit, pieces)| KeyCode::new(Some(lit), pieces, &params, &func, method))
        .collect();
    let body = body(&func, &args, &key, &tags, &mode);
    let companion = if method {
        companion_methods(&func, &args, &key, &params)
    } else {
        companion(&func, &args, &key, &params)
    };

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
        #companion
    })
}

/// The named parameters; `method` is set for a `&self` method. Other receivers and
/// patterns are reported.
fn params(
    func: &ItemFn,
    method: &mut bool,
    reported: &mut HashSet<String>,
    errors: &mut Errors,
) -> Vec<Param> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "`#[cached]` works on `async fn`: make this function `async`",
        );
    }
    let mut out = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver)
                if receiver.reference.is_some()
                    && receiver.mutability.is_none()
                    && receiver.colon_token.is_none() =>
            {
                *method = true;
            }
            FnArg::Receiver(receiver) => {
                reported.insert("self".to_owned());
                errors.spanned(
                    receiver,
                    "`#[cached]` methods take `&self`: a cached call skips the body, so the method must not need to mutate or consume `self`",
                )
            }
            FnArg::Typed(pat_type) => match &*pat_type.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    out.push(Param {
                        ident: pat.ident.clone(),
                        ty: (*pat_type.ty).clone(),
                    })
                }
                other => {
                    collect_names(other.to_token_stream(), reported);
                    errors.spanned(
                        other,
                        "`#[cached]` needs every argument bound to a plain name: write `name: Type` and destructure inside the body",
                    )
                }
            },
        }
    }
    out
}

/// The caching mode, from the last segment of the return type's path.
fn mode(func: &ItemFn, args: &Args, errors: &mut Errors) -> Option<Mode> {
    let ty = match &func.sig.output {
        ReturnType::Default => {
            errors.spanned(
                &func.sig.ident,
                "a `#[cached]` function must return the value to cache; it returns `()`",
            );
            return None;
        }
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::ImplTrait(it) = &**ty {
        errors.spanned(
            it,
            "a `#[cached]` function must return a concrete type that can be cloned and serialized, not `impl Trait`",
        );
        return None;
    }
    let last = match &**ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    let mode = match last.as_deref() {
        Some("Result") => Mode::OkOnly,
        Some("Option") if args.cache_none.is_some() => Mode::Always,
        Some("Option") => Mode::SomeOnly,
        _ => Mode::Always,
    };
    if let (Some(span), false) = (args.cache_none, last.as_deref() == Some("Option")) {
        errors.at(
            span,
            "`cache_none` applies to functions that return `Option<T>`",
        );
    }
    Some(mode)
}

/// Checks that each placeholder names a parameter.
fn check_holes(
    pieces: &[Piece],
    params: &[Param],
    reported: &HashSet<String>,
    fn_name: &Ident,
    lit: &syn::LitStr,
    errors: &mut Errors,
) {
    for piece in pieces {
        let Piece::Hole(hole) = piece else { continue };
        // A receiver or pattern parameter binding this name was already reported.
        if params.iter().any(|p| p.ident == hole.root) || reported.contains(&hole.root) {
            continue;
        }
        let names = if params.is_empty() {
            format!("`{fn_name}` has no parameters")
        } else {
            let list: Vec<String> = params.iter().map(|p| format!("`{}`", p.ident)).collect();
            format!("the parameters of `{fn_name}` are {}", list.join(", "))
        };
        errors.spanned(
            lit,
            format!("placeholder `{hole}` names no parameter of `{fn_name}`; {names}"),
        );
    }
}

/// The generated code that writes a key into `__cachemacro_out`, and what it needs.
struct KeyCode {
    /// Statements appending the key to `__cachemacro_out: &mut String`.
    writes: TokenStream,
    /// A capacity estimate.
    capacity: usize,
    /// The parameters the key reads, in the function's order.
    used: Vec<usize>,
}

impl KeyCode {
    /// The code for `template` (`None`: the function's path and every argument).
    fn new(
        template: Option<&syn::LitStr>,
        pieces: &[Piece],
        params: &[Param],
        func: &ItemFn,
        method: bool,
    ) -> Self {
        let mut writes = TokenStream::new();
        let mut capacity = 0;
        let mut used = HashSet::new();
        let write_part = |expr: TokenStream, span: Span| {
            quote_spanned! {span=>
                ::cachemacro::__private::KeyPart::write_key_part(&#expr, __cachemacro_out);
            }
        };
        match template {
            Some(lit) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => {
                            capacity += text.len();
                            writes.extend(quote! { __cachemacro_out.push_str(#text); });
                        }
                        Piece::Hole(hole) if hole.root == "self" => {
                            // `<self.field>` in a `&self` method (checked by check_holes).
                            capacity += 8;
                            let fields = field_tokens(&hole.fields, lit.span());
                            let receiver = syn::Token![self](lit.span());
                            writes.extend(write_part(quote!(#receiver #(#fields)*), lit.span()));
                        }
                        Piece::Hole(hole) => {
                            capacity += 8;
                            let index = params
                                .iter()
                                .position(|p| p.ident == hole.root)
                                .expect("checked by check_holes");
                            used.insert(index);
                            let param = &params[index];
                            let ident = &param.ident;
                            if hole.fields.is_empty() {
                                // Spanned at the parameter's type: "cannot be part of a cache
                                // key" points at the type in the signature.
                                writes.extend(write_part(quote!(#ident), param.ty.span()));
                            } else {
                                let fields = field_tokens(&hole.fields, lit.span());
                                let ident = Ident::new(&ident.to_string(), lit.span());
                                writes.extend(write_part(quote!(#ident #(#fields)*), lit.span()));
                            }
                        }
                    }
                }
            }
            None => {
                // The function's path, then every argument: `crate::users::get_user:7:alice`.
                let name = func.sig.ident.to_string();
                capacity += 32 + name.len();
                if method {
                    // A method's path: its type's, then its name.
                    let suffix = format!("::{name}");
                    writes.extend(quote! {
                        __cachemacro_out.push_str(::core::any::type_name::<Self>());
                        __cachemacro_out.push_str(#suffix);
                    });
                } else {
                    writes.extend(quote! {
                        __cachemacro_out.push_str(__cachemacro_path);
                    });
                }
                for (index, param) in params.iter().enumerate() {
                    used.insert(index);
                    capacity += 8;
                    let ident = &param.ident;
                    writes.extend(quote! { __cachemacro_out.push(':'); });
                    writes.extend(write_part(quote!(#ident), param.ty.span()));
                }
            }
        }
        let mut used: Vec<usize> = used.into_iter().collect();
        used.sort_unstable();
        Self {
            writes,
            capacity,
            used,
        }
    }

    /// A closure writing the key into the `&mut String` it is given.
    /// `path` is an expression giving the function's path (for keys without a template).
    fn writer(&self, path: TokenStream) -> TokenStream {
        let writes = &self.writes;
        quote! {
            |__cachemacro_out: &mut ::cachemacro::__private::String| {
                #[allow(unused_variables)]
                let __cachemacro_path: &'static str = #path;
                #writes
            }
        }
    }

    /// A block evaluating to the key as a `String`, starting from `buffer`.
    /// `path` is an expression giving the function's path (for keys without a template).
    fn build(&self, buffer: TokenStream, path: TokenStream) -> TokenStream {
        let writes = &self.writes;
        quote! {{
            #[allow(unused_variables)]
            let __cachemacro_path: &'static str = #path;
            let mut __cachemacro_buffer: ::cachemacro::__private::String = #buffer;
            {
                let __cachemacro_out = &mut __cachemacro_buffer;
                #writes
            }
            __cachemacro_buffer
        }}
    }
}

/// `.name` / `.0` accessors for a placeholder's fields, spanned at the template.
fn field_tokens(fields: &[Field], span: Span) -> Vec<TokenStream> {
    fields
        .iter()
        .map(|f| match f {
            Field::Named(n) => {
                let n = Ident::new(n, span);
                quote_spanned!(span=> .#n)
            }
            Field::Index(i) => {
                let i = syn::Index { index: *i, span };
                quote_spanned!(span=> .#i)
            }
        })
        .collect()
}

fn ttl_tokens(args: &Args) -> TokenStream {
    match args.ttl_ms {
        Some(ms) => quote! {
            ::cachemacro::__private::Some(::cachemacro::__private::Duration::from_millis(#ms))
        },
        None => quote!(::cachemacro::__private::None),
    }
}

fn scope_tokens(args: &Args) -> TokenStream {
    match &args.scope {
        Some(scope) => quote!(::cachemacro::__private::Some(#scope)),
        None => quote!(::cachemacro::__private::None),
    }
}

/// `let __cachemacro_cache: &Cache = ...;`
fn cache_binding(args: &Args) -> TokenStream {
    let (expr, span) = match &args.cache {
        Some(expr) => (expr.to_token_stream(), expr.span()),
        None => (quote!(::cachemacro::__private::global()), Span::call_site()),
    };
    let as_cache = quote_spanned! {span=>
        ::cachemacro::__private::AsCache::as_cache(&__cachemacro_cache_value)
    };
    quote! {
        let __cachemacro_cache_value = #expr;
        let __cachemacro_cache: &::cachemacro::__private::Cache = #as_cache;
    }
}

/// The new body of the cached function.
fn body(func: &ItemFn, args: &Args, key: &KeyCode, tags: &[KeyCode], mode: &Mode) -> TokenStream {
    let (ret, ret_span) = match &func.sig.output {
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
        ReturnType::Default => (quote!(()), Span::call_site()),
    };
    let mode = match mode {
        Mode::Always => quote_spanned!(ret_span=> ::cachemacro::__private::Always),
        Mode::OkOnly => quote_spanned!(ret_span=> ::cachemacro::__private::OkOnly),
        Mode::SomeOnly => quote_spanned!(ret_span=> ::cachemacro::__private::SomeOnly),
    };
    let cache = cache_binding(args);
    let scope = scope_tokens(args);
    let ttl = ttl_tokens(args);
    let version = args.version.unwrap_or(0);
    let name = func.sig.ident.to_string();
    let path = quote!(::core::concat!(::core::module_path!(), "::", #name));
    let writer = key.writer(path.clone());
    // The tags, written only on a miss.
    let tags = if tags.is_empty() {
        quote!(::cachemacro::__private::Vec::new())
    } else {
        let count = tags.len();
        let tags = tags.iter().map(|tag| {
            let writer = tag.writer(path.clone());
            quote! {{
                let mut __cachemacro_tag = ::cachemacro::__private::String::new();
                (#writer)(&mut __cachemacro_tag);
                __cachemacro_tag
            }}
        });
        quote! {{
            let mut __cachemacro_tags = ::cachemacro::__private::Vec::with_capacity(#count);
            #( __cachemacro_tags.push(#tags); )*
            __cachemacro_tags
        }}
    };
    let stmts = &func.block.stmts;
    // `if false { return <value of the declared type> }` pins the async block's output to the
    // declared return type, so a body of the wrong type is reported at the body's expression.
    let pin_return = quote_spanned! {ret_span=>
        #[allow(unknown_lints, unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop, clippy::let_with_type_underscore, clippy::needless_return)]
        if false {
            let __cachemacro_fake_return: #ret = loop {};
            return __cachemacro_fake_return;
        }
    };
    let call = quote_spanned! {ret_span=>
        let __cachemacro_key = match ::cachemacro::__private::lookup::<#mode, #ret>(
            __cachemacro_cache,
            #scope,
            #writer,
        ) {
            ::cachemacro::__private::Ok(__cachemacro_value) => return __cachemacro_value,
            ::cachemacro::__private::Err(__cachemacro_key) => __cachemacro_key,
        };
        ::cachemacro::__private::load::<#mode, #ret, _>(
            __cachemacro_cache,
            __cachemacro_key,
            #ttl,
            #version,
            #tags,
            async move {
                #pin_return
                #(#stmts)*
            },
        )
        .await
    };
    quote! {
        #cache
        #call
    }
}

/// The companion module of a free function: `key`, `remove_cached`, `remove_local`.
fn companion(func: &ItemFn, args: &Args, key: &KeyCode, params: &[Param]) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    // Inside the module, `module_path!()` is the function's own path.
    let items = companion_items(
        func,
        args,
        key,
        params,
        None,
        quote!(::core::module_path!()),
    );
    let doc = format!(
        "Cache operations of the `#[cached]` function `{name}`: its key, and its invalidation here and on every instance."
    );
    quote! {
        #[doc = #doc]
        #[allow(non_snake_case, clippy::all)]
        #vis mod #name {
            #[allow(unused_imports)]
            use super::*;

            #items
        }
    }
}

/// The companion of a `&self` method: methods beside it, `<name>_key`, `<name>_remove_cached`
/// and `<name>_remove_local`, since an `impl` block cannot hold a module.
fn companion_methods(func: &ItemFn, args: &Args, key: &KeyCode, params: &[Param]) -> TokenStream {
    // A method's default key is written from `type_name::<Self>()`; the path is unused.
    companion_items(func, args, key, params, Some(&func.vis), quote!(""))
}

/// The three companion functions. `method`: the method's visibility, for methods taking
/// `&self` and named after the method; `None` for the functions of a companion module.
fn companion_items(
    func: &ItemFn,
    args: &Args,
    key: &KeyCode,
    params: &[Param],
    method: Option<&syn::Visibility>,
    path: TokenStream,
) -> TokenStream {
    let name = &func.sig.ident;
    let used: Vec<&Param> = key.used.iter().map(|&i| &params[i]).collect();
    let inputs = used.iter().map(|p| {
        let ident = &p.ident;
        let ty = &p.ty;
        quote!(#ident: #ty)
    });
    let (inputs, vis, names, what) = match method {
        Some(vis) => (
            quote!(&self #(, #inputs)*),
            quote!(#[allow(clippy::all)] #vis),
            [
                format_ident!("{}_key", name),
                format_ident!("{}_remove_cached", name),
                format_ident!("{}_remove_local", name),
            ],
            format!("the cached method `{name}`"),
        ),
        None => (
            quote!(#(#inputs),*),
            quote!(pub),
            [
                format_ident!("key"),
                format_ident!("remove_cached"),
                format_ident!("remove_local"),
            ],
            format!("`{name}`"),
        ),
    };
    let [key_fn, remove_fn, local_fn] = names;
    let generics = companion_generics(&func.sig.generics, &used);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let cache = cache_binding(args);
    let scope = scope_tokens(args);
    let capacity = key.capacity;
    let plain_key = key.build(
        quote!(::cachemacro::__private::String::with_capacity(#capacity)),
        path.clone(),
    );
    let storage_key = key.build(
        quote!(::cachemacro::__private::key_buffer(__cachemacro_cache, #scope, #capacity)),
        path,
    );
    let doc_key = format!(
        "The key {what} caches these arguments under (before namespace and scope are added)."
    );
    let doc_remove = format!(
        "Removes what {what} cached for these arguments: from this process, from Redis, and from every peer's memory.\n\n\
         Returns an error when Redis could not be reached: the local copy is gone, but other instances may keep the old value until its TTL ends."
    );
    let doc_local = format!(
        "Removes this process's in-memory copy of what {what} cached for these arguments; Redis and peers are untouched."
    );
    quote! {
        #[doc = #doc_key]
        #vis fn #key_fn #impl_generics (#inputs) -> ::cachemacro::__private::String #where_clause {
            #plain_key
        }

        #[doc = #doc_remove]
        #vis async fn #remove_fn #impl_generics (#inputs)
            -> ::cachemacro::__private::Result<(), ::cachemacro::__private::Error> #where_clause
        {
            #cache
            let __cachemacro_key = #storage_key;
            ::cachemacro::__private::remove(__cachemacro_cache, __cachemacro_key).await
        }

        #[doc = #doc_local]
        #vis fn #local_fn #impl_generics (#inputs) #where_clause {
            #cache
            let __cachemacro_key = #storage_key;
            ::cachemacro::__private::remove_local(__cachemacro_cache, __cachemacro_key)
        }
    }
}

/// The generic parameters (and where predicates) that the companion's parameters mention.
fn companion_generics(generics: &Generics, used: &[&Param]) -> Generics {
    let mut names = HashSet::new();
    for p in used {
        collect_names(p.ty.to_token_stream(), &mut names);
    }
    let param_name = |gp: &GenericParam| match gp {
        GenericParam::Type(t) => t.ident.to_string(),
        GenericParam::Lifetime(l) => l.lifetime.to_string(),
        GenericParam::Const(c) => c.ident.to_string(),
    };
    // Bounds can mention further parameters (`T: Into<U>`): include those too.
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

/// Every identifier and lifetime in `tokens`.
fn collect_names(tokens: TokenStream, out: &mut HashSet<String>) {
    let mut after_quote = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(ident) => {
                if after_quote {
                    out.insert(format!("'{ident}"));
                } else {
                    out.insert(ident.to_string());
                }
                after_quote = false;
            }
            TokenTree::Punct(p) => after_quote = p.as_char() == '\'',
            TokenTree::Group(g) => {
                collect_names(g.stream(), out);
                after_quote = false;
            }
            TokenTree::Literal(_) => after_quote = false,
        }
    }
}
