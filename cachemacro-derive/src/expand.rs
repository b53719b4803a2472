//! Code generation for `#[cached]`, from a validated model.
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
//!     // compile-time checks (checks.rs): parameters left out of the key, declared modes
//!     let cache: Option<&Cache> = global_unless_bypassed();      // None inside without_cache
//!     let via = /* OkOnly, chosen by the type checker; or a stand-in when User cannot be cached */;
//!     /* check: User can be cached */
//!     let miss = match cache {
//!         Some(cache) => match via.lookup(cache, None, |out| { out.push_str("user:"); id.write_key_part(out); }) {
//!             Ok(hit) => return hit,                               // an L1 hit
//!             Err(key) => Some(Miss::new(cache, key, Some(ttl), tags)),
//!         },
//!         None => None,
//!     };
//!     via.run(miss, version, async move { body }).await           // load, or run the body uncached
//! }
//! pub mod get_user {                                               // companion.rs
//!     pub fn key(id: u64) -> String { ... }
//!     pub async fn remove_cached(id: u64) -> Result<(), Error> { ... }
//!     pub fn remove_local(id: u64) { ... }
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, ReturnType};

use crate::args::{Fleet, Ttl};
use crate::checks::{self, Shape};
use crate::companion;
use crate::template::{Field, Piece};
use crate::valid::{Declared, Detach, Kind, Model, Template, TypeArg};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let key = KeyCode::key(model);
    let body = body(model, &key);
    let companion = companion::generate(model, &key);
    let ItemFn {
        attrs, vis, sig, ..
    } = &model.func;
    let mut sig = sig.clone();
    if separate_body(model) {
        // The body, `mut` bindings included, is a function of its own (see `body_tokens`):
        // here the parameters are only read.
        for input in &mut sig.inputs {
            if let syn::FnArg::Typed(typed) = input {
                if let syn::Pat::Ident(ident) = &mut *typed.pat {
                    ident.mutability = None;
                }
            }
        }
    }
    let marker = path_marker(model).map(|marker| {
        quote! {
            #[allow(non_camel_case_types, dead_code)]
            struct #marker;
        }
    });
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
        #marker
        #companion
    }
}

/// The marker type declared beside a free function without key template, whose
/// `type_name` says where the function is declared (see `key_path`).
fn path_marker(model: &Model) -> Option<Ident> {
    (model.kind == Kind::Free && model.key.is_none()).then(|| {
        let name = model.func.sig.ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name);
        Ident::new(&format!("__cachemacro_path_of_{name}"), Span::call_site())
    })
}

/// The path a key without template starts with: the function's (`app::users::get_user`),
/// and, for a function declared inside another function's body, the path of that function
/// too (`app::tests::it_works::get_user`): `module_path!()` stops at the module, and two
/// functions of one name in two bodies of one module must not share keys. Found from the
/// `type_name` of a marker declared beside the function; a module-level function's path is
/// `fn_path`'s, as it always was.
pub(crate) fn key_path(model: &Model) -> TokenStream {
    let Some(marker) = path_marker(model) else {
        return fn_path(model);
    };
    let name = model.func.sig.ident.to_string();
    let marker_name = marker.to_string();
    let in_module = fn_path(model);
    quote! {{
        static __CACHEMACRO_PATH: ::cachemacro::__private::FnPath = ::cachemacro::__private::FnPath::new();
        __CACHEMACRO_PATH.get(
            ::core::module_path!(),
            ::core::any::type_name::<#marker>(),
            #marker_name,
            #name,
            #in_module,
        )
    }}
}

/// Generated code that appends a key (or a scope name, or a tag) to `__cachemacro_out`.
pub(crate) struct KeyCode {
    /// Statements appending to `__cachemacro_out: &mut String`.
    pub(crate) writes: TokenStream,
    /// A capacity estimate.
    pub(crate) capacity: usize,
}

impl KeyCode {
    /// The function's key: its template, or its path and every parameter not ignored; then
    /// its type arguments, if it has any.
    pub(crate) fn key(model: &Model) -> Self {
        let mut code = match &model.key {
            Some(template) => Self::template(model, template),
            None => Self::default_key(model),
        };
        code.type_args(model);
        code
    }

    /// The code for a template's pieces.
    pub(crate) fn template(model: &Model, template: &Template) -> Self {
        let lit = &template.lit;
        let mut writes = TokenStream::new();
        let mut capacity = 0;
        for piece in &template.pieces {
            match piece {
                Piece::Text(text) => {
                    capacity += text.len();
                    writes.extend(quote! { __cachemacro_out.push_str(#text); });
                }
                Piece::Hole(hole) if hole.root == "self" => {
                    // `<self.field>` in a `&self` method.
                    capacity += 8;
                    let fields = field_tokens(&hole.fields, lit.span());
                    let receiver = syn::Token![self](lit.span());
                    writes.extend(write_part(quote!(#receiver #(#fields)*), lit.span()));
                }
                Piece::Hole(hole)
                    if model.batch.as_ref().is_some_and(|b| b.element == hole.root) =>
                {
                    // The batch's element, bound by the key writer; spanned at its type in
                    // the signature, as a parameter is.
                    capacity += 8;
                    let batch = model.batch.as_ref().expect("checked by the guard");
                    if hole.fields.is_empty() {
                        let span = batch.element_ty.span();
                        let element = Ident::new(
                            &batch.element.to_string(),
                            span.resolved_at(batch.element.span()),
                        );
                        writes.extend(write_part(quote!(#element), span));
                    } else {
                        let fields = field_tokens(&hole.fields, lit.span());
                        let element = Ident::new(
                            &batch.element.to_string(),
                            lit.span().resolved_at(batch.element.span()),
                        );
                        writes.extend(write_part(quote!(#element #(#fields)*), lit.span()));
                    }
                }
                Piece::Hole(hole) => {
                    capacity += 8;
                    let param = model
                        .params
                        .iter()
                        .find(|p| p.ident == hole.root)
                        .expect("checked by valid::check_holes");
                    let ident = &param.ident;
                    if hole.fields.is_empty() {
                        // Spanned at the parameter's type: "cannot be part of a cache key"
                        // points at the type in the signature.
                        writes.extend(write_part(quote!(#ident), param.ty.span()));
                    } else {
                        let fields = field_tokens(&hole.fields, lit.span());
                        // At the template, resolved as the parameter (see `hole_values`).
                        let ident =
                            Ident::new(&ident.to_string(), lit.span().resolved_at(ident.span()));
                        writes.extend(write_part(quote!(#ident #(#fields)*), lit.span()));
                    }
                }
            }
        }
        Self { writes, capacity }
    }

    /// The parts of a batch's key template that name its element, `<id>` or `<p.x>`: what
    /// tells one element's key from another's, so how the body's pairs are matched to the
    /// elements.
    pub(crate) fn element(model: &Model, template: &Template) -> TokenStream {
        let batch = model.batch.as_ref().expect("a batch function");
        let lit = &template.lit;
        let mut writes = TokenStream::new();
        for piece in &template.pieces {
            let Piece::Hole(hole) = piece else { continue };
            if batch.element != hole.root {
                continue;
            }
            let span = batch.element_ty.span().resolved_at(Span::mixed_site());
            let element = Ident::new("__cachemacro_element", span);
            if hole.fields.is_empty() {
                writes.extend(write_part(quote!(*#element), batch.element_ty.span()));
            } else {
                let fields = field_tokens(&hole.fields, lit.span());
                writes.extend(write_part(quote!(#element #(#fields)*), lit.span()));
            }
            writes.extend(quote! { __cachemacro_out.push(':'); });
        }
        writes
    }

    /// The key without template: the function's path, then every parameter not ignored:
    /// `crate::users::get_user:7:alice`. A parameter whose type is not a key part writes
    /// nothing here: `checks::in_default_key` reports it.
    fn default_key(model: &Model) -> Self {
        let mut writes = TokenStream::new();
        let name = model.func.sig.ident.to_string();
        let mut capacity = 32 + name.len();
        if model.kind != Kind::Free {
            // A method's or associated function's path: its type's, then its name.
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
        for &i in &model.keyed {
            let ident = &model.params[i].ident;
            capacity += 8;
            writes.extend(quote! {
                __cachemacro_out.push(':');
                {
                    #[allow(unused_imports)]
                    use ::cachemacro::__private::check::{IsKeyPart as _, IsSerialize as _, NotKeyPart as _};
                    (&&&::cachemacro::__private::check::Param(&#ident)).__cachemacro_write(__cachemacro_out);
                }
            });
        }
        Self { writes, capacity }
    }

    /// Appends the type and const arguments, `<name,name>`: `load::<A>(1)` and
    /// `load::<B>(1)` must not share an entry. Type names are escaped as text, so no `<`
    /// appears inside and the suffix is told apart from the template's output.
    fn type_args(&mut self, model: &Model) {
        if model.type_args.is_empty() {
            return;
        }
        self.capacity += 32;
        self.writes.extend(quote!(__cachemacro_out.push('<');));
        for (i, arg) in model.type_args.iter().enumerate() {
            if i > 0 {
                self.writes.extend(quote!(__cachemacro_out.push(',');));
            }
            self.writes.extend(match arg {
                TypeArg::Type(t) => quote! {
                    ::cachemacro::__private::write_text(::core::any::type_name::<#t>(), __cachemacro_out);
                },
                TypeArg::Const(c) => quote! {
                    ::cachemacro::__private::KeyPart::write_key_part(&#c, __cachemacro_out);
                },
            });
        }
        self.writes.extend(quote!(__cachemacro_out.push('>');));
    }

    /// A closure writing the key into the `&mut String` it is given.
    /// `path` is an expression giving the function's path (for keys without a template).
    pub(crate) fn writer(&self, path: &TokenStream) -> TokenStream {
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
    pub(crate) fn build(&self, buffer: TokenStream, path: &TokenStream) -> TokenStream {
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

pub(crate) fn write_part(expr: TokenStream, span: Span) -> TokenStream {
    // The writer's buffer resolved where it is defined: a template from a `macro_rules!`
    // carries the hygiene of the macro's caller, not the attribute's.
    let out = Ident::new("__cachemacro_out", span.resolved_at(Span::call_site()));
    // Its `KeyPart` when it has one, else its `Serialize` text, else a compile error
    // (`__private::part`).
    quote_spanned! {span=>
        ::cachemacro::__private::KeyPart::write_key_part(
            &{
                #[allow(unused_imports)]
                use ::cachemacro::__private::part::{BySerde as _, ItsOwn as _, Neither as _};
                let __cachemacro_part = (&&&::cachemacro::__private::part::Part(&#expr)).__cachemacro_part();
                ::cachemacro::__private::part::IsKeyPart::__cachemacro_check(&#expr, &__cachemacro_part);
                __cachemacro_part
            },
            #out,
        );
    }
}

/// `.name` / `.0` accessors for a placeholder's fields, spanned at the template, and
/// resolved as macro-generated code: when a field is misspelled (`<q.tenat>`), rustc
/// reports the unknown field without suggesting an edit of the template literal (its
/// suggestion, `key = tenant`, would replace the whole string).
pub(crate) fn field_tokens(fields: &[Field], span: Span) -> Vec<TokenStream> {
    let span = span.resolved_at(Span::mixed_site());
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

/// `Option<Duration>`: the TTL of a miss.
pub(crate) fn ttl_tokens(model: &Model) -> TokenStream {
    duration_tokens(model.args.ttl.as_ref())
}

/// An `Option<Duration>` for a duration argument.
fn duration_tokens(duration: Option<&Ttl>) -> TokenStream {
    match duration {
        Some(Ttl::Millis(ms)) => quote! {
            ::cachemacro::__private::Some(::cachemacro::__private::Duration::from_millis(#ms))
        },
        Some(Ttl::Expr(expr)) => {
            let duration = checks::ttl_expr(expr);
            quote!(::cachemacro::__private::Some(#duration))
        }
        None => quote!(::cachemacro::__private::None),
    }
}

/// The function's `Resilience`: what its loads do when the source is slow or failing.
pub(crate) fn resilience_tokens(model: &Model) -> TokenStream {
    let args = &model.args;
    let stale_for = duration_tokens(args.stale_for.as_ref().map(|n| &n.value));
    let soft = duration_tokens(args.soft_timeout.as_ref().map(|n| &n.value));
    let hard = duration_tokens(args.hard_timeout.as_ref().map(|n| &n.value));
    let throttle = duration_tokens(args.fail_safe_throttle.as_ref().map(|n| &n.value));
    let refresh = match &args.refresh_ahead {
        Some(n) => {
            let fraction = n.value;
            quote!(::cachemacro::__private::Some(#fraction))
        }
        None => quote!(::cachemacro::__private::None),
    };
    let fleet = match args.fleet.as_ref().map(|n| &n.value) {
        None => quote!(::cachemacro::__private::None),
        Some(Fleet::Off) => quote!(::cachemacro::__private::Some(
            ::cachemacro::__private::Fleet::Off
        )),
        Some(Fleet::On) => quote!(::cachemacro::__private::Some(
            ::cachemacro::__private::Fleet::On
        )),
        Some(Fleet::Wait(wait)) => {
            let wait = duration_tokens(Some(wait));
            quote!(::cachemacro::__private::Option::map(#wait, ::cachemacro::__private::Fleet::Wait))
        }
    };
    quote! {
        ::cachemacro::__private::Resilience {
            stale_for: #stale_for,
            soft_timeout: #soft,
            hard_timeout: #hard,
            refresh_ahead: #refresh,
            fail_safe_throttle: #throttle,
            fleet: #fleet,
        }
    }
}

/// The body, as the load takes it: one that can go on in a task of its own when the
/// function owns what it takes and its future is `Send`.
fn body_tokens(model: &Model, body: TokenStream) -> TokenStream {
    match model.detach {
        Detach::Required => quote!(::cachemacro::__private::detach(#body)),
        // The body becomes an `async fn` of its own, so that whether its future is `Send`
        // can be asked from here: the future of an `async` block is not known to be `Send`
        // or not inside the function that defines it, and the probe would always pick the
        // `Send` side (a compile error for a body holding an `Rc` across an `.await`).
        Detach::Probe if separate_body(model) => {
            let func = &model.func;
            let inputs = &func.sig.inputs;
            let output = &func.sig.output;
            let stmts = &func.block.stmts;
            let args = model.params.iter().map(|p| &p.ident);
            quote! {{
                #[allow(unused_imports)]
                use ::cachemacro::__private::{BodyDetachable as _, BodyHere as _};
                // A parameter only the key reads is used, as far as the user is concerned.
                #[allow(unused_variables, clippy::too_many_arguments, clippy::needless_pass_by_value)]
                async fn __cachemacro_body(#inputs) #output {
                    #(#stmts)*
                }
                let __cachemacro_body = __cachemacro_body(#(#args),*);
                (&::cachemacro::__private::BodyProbe::of(&__cachemacro_body)).body(__cachemacro_body)
            }}
        }
        Detach::Probe | Detach::Never => quote!(::cachemacro::__private::Here(#body)),
    }
}

/// Whether the body becomes an `async fn` of its own (see `body_tokens`): not when it names
/// `Self` (an associated function), which a nested function cannot, nor when it calls the
/// function itself (memoized recursion): the nested function's future would then depend
/// on the outer one's, and whether it is `Send` on itself, which rustc rejects as a cycle.
/// There the body stays an `async` block, detached when it is `Send`, and a body that is
/// not `Send` does not compile.
fn separate_body(model: &Model) -> bool {
    let func = &model.func;
    let name = func.sig.ident.to_string();
    model.batch.is_none()
        && model.detach == Detach::Probe
        && !mentions(func.to_token_stream(), &["Self"])
        && !mentions(func.block.to_token_stream(), &[&name])
}

/// Whether `tokens` hold one of the identifiers `idents`.
fn mentions(tokens: TokenStream, idents: &[&str]) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => idents.iter().any(|name| i == name),
        proc_macro2::TokenTree::Group(g) => mentions(g.stream(), idents),
        _ => false,
    })
}

/// The scope name for one call: statements that compute it, and an `Option<&str>`.
pub(crate) fn scope_tokens(model: &Model) -> (TokenStream, TokenStream) {
    scope_tokens_in(model, true)
}

/// The name of a grouped function's group for these arguments, as a `&str` expression.
pub(crate) fn group_name(model: &Model) -> Option<TokenStream> {
    if !model.grouped {
        return None;
    }
    let template = model.scope.as_ref()?;
    Some(match template.static_text() {
        Some(name) => quote!(#name),
        None => {
            let build = template_string(model, template);
            quote!(&#build)
        }
    })
}

/// A `String` expression: `template` written from the arguments (a scope's or a group's
/// name).
fn template_string(model: &Model, template: &Template) -> TokenStream {
    let code = KeyCode::template(model, template);
    let capacity = code.capacity;
    code.build(
        quote!(::cachemacro::__private::String::with_capacity(#capacity)),
        &quote!(""),
    )
}

/// [`scope_tokens`]; for a group's scope, with the group's version read as
/// `Cache::version` does (`asynchronous`, where the statements can `.await`) or the last one
/// this process knows. Either way `__cachemacro_cache` must be in scope.
pub(crate) fn scope_tokens_in(model: &Model, asynchronous: bool) -> (TokenStream, TokenStream) {
    if let Some(group) = group_name(model) {
        let scope = if asynchronous {
            quote!(::cachemacro::__private::group_scope(__cachemacro_cache, #group).await)
        } else {
            quote!(::cachemacro::__private::group_scope_now(__cachemacro_cache, #group))
        };
        return (
            quote! { let __cachemacro_scope: ::cachemacro::__private::String = #scope; },
            quote!(::cachemacro::__private::Some(__cachemacro_scope.as_str())),
        );
    }
    match &model.scope {
        None => (TokenStream::new(), quote!(::cachemacro::__private::None)),
        Some(template) => match template.static_text() {
            Some(name) => (
                TokenStream::new(),
                quote!(::cachemacro::__private::Some(#name)),
            ),
            None => {
                let build = template_string(model, template);
                (
                    quote! { let __cachemacro_scope: ::cachemacro::__private::String = #build; },
                    quote!(::cachemacro::__private::Some(__cachemacro_scope.as_str())),
                )
            }
        },
    }
}

/// How the hit path finds the function's typed front of L1: statements binding the values
/// the key is written from, as a tuple of references (each taken as itself or as its key
/// text, whichever its type allows), and an expression asking the type checker whether
/// that tuple can key a front (`ByArgs`) or not (`ByText`: more than 8 values).
///
/// No front when the key holds type names (a generic function's type arguments, a method's
/// `Self` in a default key): the function's one `static` serves every instantiation, and
/// the arguments alone would not tell them apart.
fn front_tokens(model: &Model) -> (TokenStream, TokenStream) {
    let by_text = quote!(::cachemacro::__private::front::ByText);
    // A group's version is no argument: a front keyed by the arguments would outlive a bump.
    if !model.type_args.is_empty() || model.grouped {
        return (TokenStream::new(), by_text);
    }
    let values: Vec<TokenStream> = match &model.key {
        Some(template) => {
            let mut values = hole_values(model, template);
            if let Some(scope) = &model.scope {
                values.extend(hole_values(model, scope));
            }
            values
        }
        None if model.kind != Kind::Free => return (TokenStream::new(), by_text),
        None => model
            .keyed
            .iter()
            .map(|&i| {
                let ident = &model.params[i].ident;
                quote!(&#ident)
            })
            .collect(),
    };
    // Each value as itself when it can be (`ByValue`), else as its key text (`ByKeyText`).
    let parts = values.iter().map(|value| {
        quote! {{
            #[allow(unused_imports)]
            use ::cachemacro::__private::front::{PartNone as _, PartSerialized as _, PartText as _, PartTyped as _};
            (&&&&::cachemacro::__private::front::PartProbe(#value)).__cachemacro_part()
        }}
    });
    (
        quote! { let __cachemacro_key_values = (#(#parts,)*); },
        quote! {{
            #[allow(unused_imports)]
            use ::cachemacro::__private::front::{Typed as _, Untyped as _};
            (&::cachemacro::__private::front::KeyProbe(&__cachemacro_key_values)).__cachemacro_front()
        }},
    )
}

/// `&param.field` for each placeholder of `template`, in order.
fn hole_values(model: &Model, template: &Template) -> Vec<TokenStream> {
    let span = template.lit.span();
    template
        .pieces
        .iter()
        .filter_map(|piece| match piece {
            Piece::Hole(hole) => Some(hole),
            Piece::Text(_) => None,
        })
        .map(|hole| {
            let fields = field_tokens(&hole.fields, span);
            if hole.root == "self" {
                let receiver = syn::Token![self](span);
                quote!(&#receiver #(#fields)*)
            } else {
                let param = model
                    .params
                    .iter()
                    .find(|p| p.ident == hole.root)
                    .expect("checked by valid::check_holes");
                // Located at the template (errors point there), resolved as the parameter
                // is: a template a `macro_rules!` passes in still names the parameter the
                // macro wrote, whatever its hygiene.
                let ident = Ident::new(
                    &param.ident.to_string(),
                    span.resolved_at(param.ident.span()),
                );
                quote!(&#ident #(#fields)*)
            }
        })
        .collect()
}

/// The expression giving the function's path, for keys without a template.
pub(crate) fn fn_path(model: &Model) -> TokenStream {
    let name = model.func.sig.ident.to_string();
    quote!(::core::concat!(::core::module_path!(), "::", #name))
}

/// A `Vec<String>` of the function's tags, written from their templates.
pub(crate) fn tags_tokens(model: &Model, path: &TokenStream) -> TokenStream {
    let count = model.tags.len() + model.args.typed_tags.len();
    // A tag declared with `tags!`: its `tag` function, called with references to the
    // arguments, each spanned at itself so that a wrong type points there.
    let typed = model.args.typed_tags.iter().map(|call| {
        let func = &call.func;
        let args = call
            .args
            .iter()
            .map(|arg| quote_spanned!(arg.span()=> &(#arg)));
        quote_spanned!(call.func.span()=> #func::tag(#(#args),*))
    });
    let tags = model.tags.iter().map(|tag| {
        let writer = KeyCode::template(model, tag).writer(path);
        quote! {{
            let mut __cachemacro_tag = ::cachemacro::__private::String::new();
            (#writer)(&mut __cachemacro_tag);
            __cachemacro_tag
        }}
    });
    quote! {{
        #[allow(unused_mut)]
        let mut __cachemacro_tags = ::cachemacro::__private::Vec::with_capacity(#count);
        #( __cachemacro_tags.push(#tags); )*
        #( __cachemacro_tags.push(#typed); )*
        __cachemacro_tags
    }}
}

/// The function's `static __CACHEMACRO_SITE` (its counters, see `FunctionStats`) and the
/// call's span, `let __cachemacro_span`: named after the function, target `cachemacro`,
/// level DEBUG, with the fields the runtime records (`key`, `outcome`, `load_ms`).
pub(crate) fn site_and_span(model: &Model) -> (TokenStream, TokenStream) {
    let path = fn_path(model);
    let name = syn::LitStr::new(&model.func.sig.ident.to_string(), Span::call_site());
    let site = match model.args.l1_capacity {
        None => quote! {
            static __CACHEMACRO_SITE: ::cachemacro::__private::Site =
                ::cachemacro::__private::Site::new(#path);
        },
        Some(capacity) => quote! {
            static __CACHEMACRO_SITE: ::cachemacro::__private::Site =
                ::cachemacro::__private::Site::with_l1_capacity(#path, #capacity);
        },
    };
    let span = quote! {
        let __cachemacro_span = ::cachemacro::__private::tracing::debug_span!(
            target: "cachemacro",
            #name,
            function = #path,
            key = ::cachemacro::__private::tracing::field::Empty,
            outcome = ::cachemacro::__private::tracing::field::Empty,
            load_ms = ::cachemacro::__private::tracing::field::Empty,
        );
    };
    (site, span)
}

/// `if false { return <value of the declared type> }` pins the async block's output to the
/// declared return type, so a body of the wrong type is reported at the body's expression.
pub(crate) fn pin_return(ret: &TokenStream, ret_span: Span) -> TokenStream {
    quote_spanned! {ret_span=>
        #[allow(unknown_lints, unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop, clippy::let_with_type_underscore, clippy::needless_return)]
        if false {
            let __cachemacro_fake_return: #ret = loop {};
            return __cachemacro_fake_return;
        }
    }
}

/// `let __cachemacro_cache: Option<&Cache> = ...;`: the function's cache, unless caching
/// is bypassed here.
pub(crate) fn cache_tokens(model: &Model) -> TokenStream {
    match &model.args.cache {
        Some(expr) => {
            let span = expr.span();
            quote_spanned! {span=>
                // Deref coercion takes a `Cache`, `&Cache`, `Arc<Cache>`, `LazyLock<Cache>`...
            #[allow(clippy::needless_borrow, clippy::borrow_deref_ref, clippy::explicit_auto_deref)]
            let __cachemacro_cache: &::cachemacro::__private::Cache = &#expr;
                let __cachemacro_cache = ::cachemacro::__private::unless_bypassed(__cachemacro_cache);
            }
        }
        None => quote! {
            let __cachemacro_global = ::cachemacro::__private::global_unless_bypassed();
            let __cachemacro_cache = ::cachemacro::__private::Option::as_deref(&__cachemacro_global);
        },
    }
}

/// The function's return type (`()` when it declares none), and where to point errors
/// about it.
pub(crate) fn ret_tokens(sig: &syn::Signature) -> (TokenStream, Span) {
    match &sig.output {
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
        ReturnType::Default => (quote!(()), Span::call_site()),
    }
}

/// The checks that the parameters can be what the key makes of them: with a template, that
/// the ones left out of it cannot be key parts (else they must be named or ignored);
/// without, that every one in the default key is a key part.
pub(crate) fn param_checks(model: &Model) -> TokenStream {
    let mut checks = TokenStream::new();
    if model.key.is_some() {
        for &i in &model.left_out {
            checks.extend(checks::left_out(&model.params[i]));
        }
    } else {
        for &i in &model.keyed {
            checks.extend(checks::in_default_key(&model.params[i]));
        }
    }
    checks
}

/// The new body of the cached function.
fn body(model: &Model, key: &KeyCode) -> TokenStream {
    if model.batch.is_some() {
        return crate::batch::body(model, key);
    }
    let func = &model.func;
    let (ret, ret_span) = ret_tokens(&func.sig);

    // Compile-time checks.
    let mut checks = param_checks(model);
    let ret_ty = match &func.sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => None,
    };
    let probe = quote_spanned!(ret_span=> ::cachemacro::__private::select::Probe::<#ret>::new());
    let mode = match (&model.declared, ret_ty) {
        (Declared::Auto, _) => quote_spanned!(ret_span=> (&#probe).__cachemacro_auto()),
        (Declared::Every, _) => quote_spanned!(ret_span=> ::cachemacro::__private::Always),
        (Declared::Result(span), Some(ty)) => {
            checks.extend(checks::declared_shape(ty, *span, Shape::Result));
            quote_spanned!(ret_span=> (&#probe).__cachemacro_result())
        }
        (Declared::Option(span), Some(ty)) => {
            checks.extend(checks::declared_shape(ty, *span, Shape::Option));
            quote_spanned!(ret_span=> (&#probe).__cachemacro_option())
        }
        (Declared::CacheNone(span), Some(ty)) => {
            checks.extend(checks::declared_shape(ty, *span, Shape::CacheNone));
            quote_spanned!(ret_span=> (&#probe).__cachemacro_cache_none())
        }
        (_, None) => quote_spanned!(ret_span=> ::cachemacro::__private::Always),
    };
    let via = quote_spanned! {ret_span=>
        #[allow(unused_imports)]
        let __cachemacro_via = {
            use ::cachemacro::__private::select::{
                AutoOption as _, AutoPlain as _, AutoResult as _, ViaCache as _, ViaNothing as _,
            };
            let __cachemacro_mode = #mode;
            (&::cachemacro::__private::select::Dispatch::new(__cachemacro_mode, #probe))
                .__cachemacro_dispatch()
        };
    };
    // A value behind an `Arc` or `Rc` (as far as the tokens show) gets the fix that applies.
    let shared = ret_ty.is_some_and(|ty| {
        crate::valid::cached_part(ty)
            .to_token_stream()
            .into_iter()
            .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "Arc" || i == "Rc"))
    });
    let cacheable = checks::cacheable(ret_span, shared);
    let cache = cache_tokens(model);
    let (scope_let, scope) = scope_tokens(model);
    let ttl = ttl_tokens(model);
    let version = model.args.version.unwrap_or(0);
    let path = key_path(model);
    let writer = key.writer(&path);
    // The tags, written only on a miss.
    let tags = if model.tags.is_empty() && model.args.typed_tags.is_empty() {
        quote!(::cachemacro::__private::Vec::new())
    } else {
        tags_tokens(model, &path)
    };
    let stmts = &func.block.stmts;
    let resilience = resilience_tokens(model);
    let pin_return = pin_return(&ret, ret_span);
    let body = body_tokens(
        model,
        quote! {
            async move {
                #pin_return
                #(#stmts)*
            }
        },
    );
    let (site, span) = site_and_span(model);
    let (front_let, front) = front_tokens(model);
    let call = quote_spanned! {ret_span=>
        let __cachemacro_miss = match __cachemacro_cache {
            ::cachemacro::__private::Some(__cachemacro_cache) => {
                #scope_let
                #site
                #span
                #front_let
                match __cachemacro_via.lookup(
                    __cachemacro_cache,
                    #scope,
                    #writer,
                    &__CACHEMACRO_SITE,
                    &__cachemacro_span,
                    #front,
                ) {
                    ::cachemacro::__private::Ok(__cachemacro_value) => return __cachemacro_value,
                    ::cachemacro::__private::Err(__cachemacro_looked) => {
                        ::cachemacro::__private::Some(::cachemacro::__private::Miss::new(
                            __cachemacro_cache,
                            __cachemacro_looked,
                            #ttl,
                            #tags,
                            #resilience,
                            ::cachemacro::__private::Call::new(&__CACHEMACRO_SITE, __cachemacro_span),
                        ))
                    }
                }
            }
            ::cachemacro::__private::None => ::cachemacro::__private::None,
        };
        __cachemacro_via
            .run(
                __cachemacro_miss,
                #version,
                // `Some` when the return type can be cloned: callers waiting on a load
                // that fails share its result instead of loading again.
                {
                    #[allow(unused_imports)]
                    use ::cachemacro::__private::{ShareByClone as _, ShareNot as _};
                    (&::cachemacro::__private::ShareProbe::<#ret>::new()).share()
                },
                #body,
            )
            .await
    };
    quote! {
        #checks
        #cache
        #via
        #cacheable
        #call
    }
}
