//! Validation: the attribute's arguments against the function they decorate. Everything
//! the macro can check from tokens is checked here, every mistake is collected, and the
//! result is the model `expand` generates from. (What only the type checker knows, such as
//! whether a parameter's type is a `KeyPart`, is checked by the generated code: `checks`.)

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{FnArg, GenericParam, Ident, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::args::{Args, Batch, Named, Ttl};
use crate::context::Context;
use crate::errors::Errors;
use crate::template::{self, Piece};

/// A parameter bound to a name.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// A parsed template: the literal, for spans, and its pieces.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) pieces: Vec<Piece>,
}

impl Template {
    /// The parameters its placeholders name.
    fn roots(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Hole(hole) => Some(hole.root.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The text of a template without placeholders.
    pub(crate) fn static_text(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Hole(_) => return None,
            }
        }
        Some(out)
    }
}

/// Whether the function's body can go on in a task of its own, after the callers have their
/// answer (what `soft_timeout` and `refresh_ahead` need).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detach {
    /// The arguments ask for it: the body must be able to (`Send`, checked by the compiler).
    Required,
    /// The function owns everything it takes: the compiler tells whether the body is
    /// `Send` (then the cache's defaults for background work apply).
    Probe,
    /// It borrows (a reference, a lifetime, `&self`, a type parameter): never.
    Never,
}

/// How the return value is cached, as the arguments declare it.
pub(crate) enum Declared {
    /// From the return type, as the type checker sees it: `Result` caches `Ok`, `Option`
    /// caches `Some`, anything else every value.
    Auto,
    /// `result = true`: the return type must be a `Result`; `Ok` values are cached.
    Result(Span),
    /// `option = true`: the return type must be an `Option`; `Some` values are cached.
    Option(Span),
    /// `cache_none = true`: the return type must be an `Option`; every value is cached.
    CacheNone(Span),
    /// `result = false` or `option = false`: every value is cached.
    Every,
}

/// What the generic parameters of the function contribute to its key.
pub(crate) enum TypeArg {
    Type(Ident),
    Const(Ident),
}

impl TypeArg {
    /// The parameter's name.
    pub(crate) fn ident(&self) -> &Ident {
        match self {
            TypeArg::Type(ident) | TypeArg::Const(ident) => ident,
        }
    }
}

/// What kind of function is cached, which decides where its companion lives.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A function of a module: the companion is a module named after it.
    Free,
    /// A `&self` method of an inherent `impl`: companion methods beside it.
    Method,
    /// An associated function without `self` of an inherent `impl`: companion associated
    /// functions beside it.
    Associated,
}

/// A validated `#[cached]` function.
pub(crate) struct Model {
    pub(crate) func: ItemFn,
    pub(crate) args: Args,
    pub(crate) kind: Kind,
    pub(crate) params: Vec<Param>,
    pub(crate) key: Option<Template>,
    pub(crate) scope: Option<Template>,
    /// The scope is a group's: its name is followed by the group's version.
    pub(crate) grouped: bool,
    pub(crate) tags: Vec<Template>,
    /// The parameters the key reads (through the key or the scope template, or every one
    /// not ignored when there is no key template), in the function's order.
    pub(crate) keyed: Vec<usize>,
    /// The parameters the scope template reads, in the function's order.
    pub(crate) scoped: Vec<usize>,
    /// Parameters out of the key template and not ignored: their type must not be a key
    /// part (checked by the generated code).
    pub(crate) left_out: Vec<usize>,
    pub(crate) declared: Declared,
    /// The type and const parameters, written after the key.
    pub(crate) type_args: Vec<TypeArg>,
    pub(crate) detach: Detach,
    pub(crate) batch: Option<BatchModel>,
}

/// A batch function: `batch(id in ids)`.
pub(crate) struct BatchModel {
    /// The element's name in the templates.
    pub(crate) element: Ident,
    /// The index of the collection parameter.
    pub(crate) collection: usize,
    /// The element type.
    pub(crate) element_ty: Type,
    /// The owned collection the body gets its missing elements in.
    pub(crate) owned: Type,
    /// Whether the parameter is a reference to it.
    pub(crate) reference: bool,
}

/// The error for an item that is not a function with a body.
pub(crate) fn not_a_function(item: TokenStream, err: syn::Error) -> syn::Error {
    if let Ok(decl) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        if decl.default.is_none() {
            return syn::Error::new_spanned(
                decl.sig,
                "`#[cached]` needs the function's body, and a method declared in a trait has none: \
                 put `#[cached]` on a method of an inherent `impl` block (or on a free function) and call it from the trait's `impl`",
            );
        }
    }
    if syn::parse2::<syn::Item>(item).is_ok() {
        return syn::Error::new(
            Span::call_site(),
            "`#[cached]` goes on an `async fn`: a free function, or a `&self` method of an inherent `impl` block",
        );
    }
    err
}

/// Checks a tag declared with `tags!` and named in `tags = [...]`: a path, called with the
/// function's parameters (or the batch's element), or fields of them. Whether the tag
/// exists and takes those types is the compiler's to say, at the call the expansion writes.
fn check_typed_tag(call: &syn::ExprCall, params: &[Param], args: &Args, errors: &mut Errors) {
    if !matches!(&*call.func, syn::Expr::Path(path) if path.qself.is_none()) {
        errors.spanned(
            &call.func,
            "a tag here is a tag declared with `cachemacro::tags!`, named by its path, as in `tags = [user(user_id)]`",
        );
        return;
    }
    let element = args.batch.as_ref().map(|b| b.value.element.to_string());
    for arg in &call.args {
        // Input: `user_id` or `user.id`. Output: its root, `user_id` or `user`.
        let mut root = arg;
        while let syn::Expr::Field(field) = root {
            root = &field.base;
        }
        let name = match root {
            syn::Expr::Path(path) if path.qself.is_none() => {
                path.path.get_ident().map(ToString::to_string)
            }
            _ => None,
        };
        let known = name.as_deref().is_some_and(|name| {
            params.iter().any(|p| p.ident == name) || element.as_deref() == Some(name)
        });
        if !known {
            let names: Vec<String> = params.iter().map(|p| format!("`{}`", p.ident)).collect();
            errors.spanned(
                arg,
                format!(
                    "a tag's argument is a parameter of the function, or a field of one (parameters: {})",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ),
            );
        }
    }
}

/// Checks `func`, declared in `context`, against the arguments in `tokens`, reporting
/// every mistake at once.
pub(crate) fn validate(tokens: TokenStream, func: ItemFn, context: Context) -> syn::Result<Model> {
    if let Some(error) = async_trait_method(&func) {
        return Err(error);
    }
    let mut errors = Errors::default();
    let args = Args::parse(tokens, &mut errors)?;
    // Names a receiver or a pattern binds: already reported, so placeholders naming them
    // are not reported again.
    let mut reported = HashSet::new();
    let mut method = false;
    let params = params(&func, &mut method, &mut reported, &mut errors);
    if method {
        // `<self.field>` is a placeholder of a `&self` method.
        reported.insert("self".to_owned());
    }
    return_type(&func, &mut errors);
    let kind = kind(&func, method, &context, &mut errors);
    if let Some(batch) = &args.batch {
        // `<id>` names the element in the templates.
        reported.insert(batch.value.element.to_string());
    }

    let fn_name = &func.sig.ident;
    let parse =
        |lit: &LitStr, what: &str, errors: &mut Errors| match template::parse(&lit.value(), what) {
            Ok(pieces) => {
                let t = Template {
                    lit: lit.clone(),
                    pieces,
                };
                check_holes(&t, &params, &reported, fn_name, errors);
                Some(t)
            }
            Err(message) => {
                errors.spanned(lit, message);
                None
            }
        };
    let key = (args.key.as_ref()).and_then(|lit| parse(lit, "key template", &mut errors));
    // An empty scope was reported by `args`.
    let scope = args
        .scope
        .as_ref()
        .and_then(|lit| parse(lit, "scope template", &mut errors));
    // A group is the scope `<group>@v<version>`: the scope's machinery (its parameters,
    // `scope()`, `Scope::clear`) serves it, and a bump moves every entry to a new scope.
    let group = args
        .group
        .as_ref()
        .and_then(|lit| parse(lit, "group template", &mut errors));
    if let (Some(_), Some(lit)) = (&args.scope, &args.group) {
        errors.spanned(
            lit,
            "a function in a group lives in its group's scope (`<group>@v<version>`): give it a `scope` or a `group`, not both",
        );
    }
    let grouped = group.is_some();
    let scope = scope.or(group);
    let tags: Vec<Template> = (args.tags.iter())
        .filter_map(|lit| parse(lit, "tag template", &mut errors))
        .collect();
    for call in &args.typed_tags {
        check_typed_tag(call, &params, &args, &mut errors);
    }

    // Which parameters the key reads.
    let index = |name: &str| params.iter().position(|p| p.ident == name);
    let mut in_templates: Vec<usize> = key
        .iter()
        .chain(&scope)
        .flat_map(Template::roots)
        .filter_map(index)
        .collect();
    in_templates.sort_unstable();
    in_templates.dedup();
    let mut scoped: Vec<usize> = scope
        .iter()
        .flat_map(Template::roots)
        .filter_map(index)
        .collect();
    scoped.sort_unstable();
    scoped.dedup();

    let ignored = check_ignore(&args, &params, &in_templates, &reported, &func, &mut errors);
    let keyed: Vec<usize> = if args.key.is_some() {
        in_templates.clone()
    } else {
        // Without a key template every parameter is part of the key, unless ignored.
        (0..params.len()).filter(|i| !ignored.contains(i)).collect()
    };
    let batch = args
        .batch
        .as_ref()
        .and_then(|b| batch_model(b, &args, &params, key.as_ref(), scope.as_ref(), &mut errors));
    let left_out: Vec<usize> = if args.key.is_some() {
        (0..params.len())
            .filter(|i| !in_templates.contains(i) && !ignored.contains(i))
            // The batch's collection is not in the key: its elements are.
            .filter(|&i| batch.as_ref().is_none_or(|b| b.collection != i))
            .collect()
    } else {
        Vec::new()
    };
    check_opaque_left_out(&func, &params, &left_out, &mut errors);

    let declared = declared(&args, &mut errors);
    let type_args = func
        .sig
        .generics
        .params
        .iter()
        .filter_map(|gp| match gp {
            GenericParam::Type(t) => Some(TypeArg::Type(t.ident.clone())),
            GenericParam::Const(c) => Some(TypeArg::Const(c.ident.clone())),
            GenericParam::Lifetime(_) => None,
        })
        .collect();

    let detach = if batch.is_some() {
        Detach::Never
    } else {
        detach(&args, &func, &params, method, &mut errors)
    };

    errors.finish()?;
    Ok(Model {
        func,
        args,
        kind,
        params,
        key,
        scope,
        grouped,
        tags,
        keyed,
        scoped,
        left_out,
        declared,
        type_args,
        detach,
        batch,
    })
}

/// Checks `batch(id in ids)`: `ids` is a collection parameter, the key template names the
/// element `<id>`, and the arguments that do not apply to a batch are absent.
fn batch_model(
    batch: &Named<Batch>,
    args: &Args,
    params: &[Param],
    key: Option<&Template>,
    scope: Option<&Template>,
    errors: &mut Errors,
) -> Option<BatchModel> {
    let Batch {
        element,
        collection,
    } = &batch.value;
    let Some(index) = params.iter().position(|p| &p.ident == collection) else {
        errors.spanned(
            collection,
            format!("`batch({element} in {collection})` names no parameter `{collection}`: name the parameter that holds the elements"),
        );
        return None;
    };
    if params.iter().any(|p| &p.ident == element) {
        errors.spanned(
            element,
            format!("`{element}` is a parameter already: name the element differently, as in `batch(id in ids)`"),
        );
    }
    match key {
        None if args.key.is_none() => errors.at(
            batch.span,
            format!("a `batch` function needs a key template naming the element, as in `key = \"user:<{element}>\"`"),
        ),
        Some(key) if !key.roots().any(|root| element == root) => errors.spanned(
            &key.lit,
            format!("the key template must name the element `<{element}>`: each element is cached under its own key"),
        ),
        Some(key) if key.roots().any(|root| collection == root) => errors.spanned(
            &key.lit,
            format!("the key template names the collection `<{collection}>`: a batch caches each element under its own key, so name the element `<{element}>` instead"),
        ),
        _ => {}
    }
    if scope.is_some_and(|s| s.roots().any(|root| element == root)) {
        errors.at(
            batch.span,
            format!("the scope template of a `batch` function cannot name the element `<{element}>`: one scope holds the whole batch"),
        );
    }
    let unsupported = [
        ("soft_timeout", args.soft_timeout.as_ref().map(|n| n.span)),
        ("hard_timeout", args.hard_timeout.as_ref().map(|n| n.span)),
        ("refresh_ahead", args.refresh_ahead.as_ref().map(|n| n.span)),
        ("fleet_single_flight", args.fleet.as_ref().map(|n| n.span)),
        ("result", args.result.map(|f| f.span)),
        ("option", args.option.map(|f| f.span)),
    ];
    for (name, span) in unsupported {
        if let Some(span) = span {
            errors.at(
                span,
                format!("`{name}` does not apply to a `batch` function, whose body loads many elements at once: set it on the single-item function that shares the entries"),
            );
        }
    }
    let ty = &params[index].ty;
    let Some((element_ty, owned)) = collection_type(ty) else {
        errors.spanned(
            ty,
            format!("the `batch` parameter `{collection}` must be a collection of the elements: `Vec<K>`, `&[K]`, `HashSet<K>`, `BTreeSet<K>` or `VecDeque<K>` (or a reference to one)"),
        );
        return None;
    };
    Some(BatchModel {
        element: element.clone(),
        collection: index,
        element_ty,
        owned,
        reference: matches!(ty, Type::Reference(_)),
    })
}

/// The element type of a collection type, and the owned collection a batch rebuilds for
/// the body: `Vec<K>`, `&[K]` (a `Vec<K>`), `HashSet<K>`, `BTreeSet<K>`, `VecDeque<K>`, and
/// references to them.
fn collection_type(ty: &Type) -> Option<(Type, Type)> {
    match ty {
        Type::Reference(reference) => match &*reference.elem {
            Type::Slice(slice) => {
                let element = (*slice.elem).clone();
                Some((
                    element.clone(),
                    syn::parse_quote!(::std::vec::Vec<#element>),
                ))
            }
            other => collection_type(other),
        },
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            let known = ["Vec", "HashSet", "BTreeSet", "VecDeque", "IndexSet"];
            if !known.contains(&last.ident.to_string().as_str()) {
                return None;
            }
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let element = args.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })?;
            Some((element, ty.clone()))
        }
        _ => None,
    }
}

/// Whether the body can run in a task of its own: the function must own all it takes.
/// `soft_timeout` and `refresh_ahead` need it, so there it is an error when it cannot.
fn detach(
    args: &Args,
    func: &ItemFn,
    params: &[Param],
    method: bool,
    errors: &mut Errors,
) -> Detach {
    let blocker = if method {
        Some("a `&self` method borrows `self`".to_owned())
    } else if let Some(gp) = func.sig.generics.params.first() {
        Some(format!(
            "the generic parameter `{}` may borrow",
            gp.to_token_stream()
        ))
    } else {
        params
            .iter()
            .find(|p| borrows(p.ty.to_token_stream()))
            .map(|p| {
                let ty = p.ty.to_token_stream().to_string().replace("& ", "&");
                format!("the parameter `{}: {ty}` borrows", p.ident)
            })
    };
    let wanted = [
        args.soft_timeout.as_ref().map(|n| ("soft_timeout", n.span)),
        args.refresh_ahead
            .as_ref()
            .map(|n| ("refresh_ahead", n.span)),
    ];
    let mut required = false;
    for (name, span) in wanted.into_iter().flatten() {
        required = true;
        if let Some(blocker) = &blocker {
            errors.at(
                span,
                format!(
                    "`{name}` lets a load go on in the background after the callers have their answer, so the function must own what it takes, and {blocker}: take owned arguments (`String`, not `&str`), or drop `{name}`"
                ),
            );
        }
    }
    if let (Some(soft), Some(hard)) = (&args.soft_timeout, &args.hard_timeout) {
        if let (Ttl::Millis(soft_ms), Ttl::Millis(hard_ms)) = (&soft.value, &hard.value) {
            if soft_ms > hard_ms {
                errors.at(
                    soft.span,
                    "the soft timeout must not be longer than the hard timeout: past the hard timeout the reload counts as failed",
                );
            }
        }
    }
    match (required, blocker) {
        (true, _) => Detach::Required,
        (false, None) => Detach::Probe,
        (false, Some(_)) => Detach::Never,
    }
}

/// Whether a parameter type may borrow: a reference, a lifetime other than `'static`,
/// `impl Trait` (which may capture one) or `Self`.
fn borrows(tokens: TokenStream) -> bool {
    let mut after_quote = false;
    for tt in tokens {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '&' => return true,
            TokenTree::Punct(p) => after_quote = p.as_char() == '\'',
            TokenTree::Ident(ident) => {
                if after_quote && ident != "static" {
                    return true;
                }
                if ident == "impl" || ident == "Self" {
                    return true;
                }
                after_quote = false;
            }
            TokenTree::Group(g) => {
                if borrows(g.stream()) {
                    return true;
                }
                after_quote = false;
            }
            TokenTree::Literal(_) => after_quote = false,
        }
    }
    false
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
            FnArg::Typed(pat_type) if pat_type.attrs.iter().any(is_cfg) => {
                collect_names(pat_type.pat.to_token_stream(), reported);
                let attr = pat_type.attrs.iter().find(|a| is_cfg(a)).expect("found");
                errors.spanned(
                    attr,
                    "`#[cached]` cannot take a parameter under `#[cfg]`: the key, the companion functions (`key`, `remove_cached`, `refresh`...) and their calls of the function take every parameter. Declare the function twice, each under its own `#[cfg]`, or keep the parameter in every configuration (`ignore` it if the result does not depend on it)",
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

/// `#[cfg(..)]`, or a `#[cfg_attr(..)]` that may expand to one: a parameter that exists in
/// some configurations only.
fn is_cfg(attr: &syn::Attribute) -> bool {
    let path = attr.path();
    path.is_ident("cfg")
        || (path.is_ident("cfg_attr")
            && attr.meta.to_token_stream().into_iter().any(|t| {
                matches!(&t, proc_macro2::TokenTree::Group(g)
                    if g.stream().into_iter().any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "cfg" || i == "cfg_attr")))
            }))
}

/// The kind of function, from its receiver and where it is declared. Trait definitions and
/// trait `impl`s cannot hold the companion: that is an error saying what to do instead.
fn kind(func: &ItemFn, method: bool, context: &Context, errors: &mut Errors) -> Kind {
    let name = &func.sig.ident;
    match context {
        Context::TraitImpl(trait_name) => errors.spanned(
            name,
            format!(
                "`#[cached]` cannot go on a method of a trait implementation (`impl {trait_name} for ...`): \
                 the functions it adds beside `{name}` (`{name}_key`, `{name}_remove_cached`, `{name}_remove_local`) \
                 cannot be members of `{trait_name}`. Put the cached function in an inherent `impl` block \
                 (or a module), and call it from this method"
            ),
        ),
        Context::Trait(trait_name) => errors.spanned(
            name,
            format!(
                "`#[cached]` cannot go on a method of a trait definition (`trait {trait_name}`): \
                 put it on the method of an inherent `impl` block (or a free function), and call that from `{name}`"
            ),
        ),
        _ => {}
    }
    match (method, context) {
        (true, _) => Kind::Method,
        (false, Context::InherentImpl) => Kind::Associated,
        (false, _) => Kind::Free,
    }
}

/// A method that `#[async_trait]` has already rewritten (into a function returning a boxed
/// future, with a lifetime `'async_trait`): one error saying what to do, rather than "make
/// this function `async`" (it was) and "not on a trait `impl`".
fn async_trait_method(func: &ItemFn) -> Option<syn::Error> {
    let rewritten = func
        .sig
        .generics
        .lifetimes()
        .any(|l| l.lifetime.ident == "async_trait");
    rewritten.then(|| {
        let name = &func.sig.ident;
        syn::Error::new_spanned(
            name,
            format!(
                "`#[cached]` cannot go on a method of an `#[async_trait]` trait or `impl`: `#[async_trait]` has already made `{name}` a function returning a boxed future, and a trait's methods cannot have the companion (`{name}_key`, `{name}_remove_cached`...). \
                 Put the cached function in an inherent `impl` block as an `async fn` (`#[cached(...)] async fn {name}_cached(&self, ...)`), and call it from this method: `self.{name}_cached(...).await`"
            ),
        )
    })
}

/// The return type: a value the cache can store and read back. `()` is one, returned or not
/// (`fn f()` is `fn f() -> ()`: the body runs once per key and TTL).
fn return_type(func: &ItemFn, errors: &mut Errors) {
    let ReturnType::Type(_, ty) = &func.sig.output else {
        return;
    };
    if let Type::ImplTrait(it) = &**ty {
        errors.spanned(
            it,
            "a `#[cached]` function must return a concrete type that can be cloned and serialized, not `impl Trait`",
        );
        return;
    }
    if let Some(reference) = first_reference(cached_part(ty)) {
        let shown = reference.to_token_stream().to_string().replace("& '", "&'");
        let owned = match &*reference.elem {
            Type::Path(p) if p.path.is_ident("str") => {
                "`String` (or `Cow<'static, str>`)".to_owned()
            }
            Type::Slice(slice) => format!("`Vec<{}>`", slice.elem.to_token_stream()),
            other => format!("`{}`", other.to_token_stream()),
        };
        errors.spanned(
            reference,
            format!(
                "a cached value must own its data, and `{shown}` borrows: a value read back from Redis or another process has nothing to borrow from. Return {owned} instead"
            ),
        );
    }
}

/// The part of a return type that is cached, as far as the tokens tell: `T` of a
/// `Result<T, E>` (the error is never cached) or of an `Option<T>`, else the type.
pub(crate) fn cached_part(ty: &Type) -> &Type {
    if let Type::Path(p) = ty {
        if let Some(last) = p.path.segments.last() {
            if last.ident == "Result" || last.ident == "Option" {
                if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                    if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                        return inner;
                    }
                }
            }
        }
    }
    ty
}

/// The first reference type in `ty`, at any depth (`&'static str`, `Vec<&str>`).
fn first_reference(ty: &Type) -> Option<&syn::TypeReference> {
    match ty {
        Type::Reference(r) => Some(r),
        Type::Path(p) => p.path.segments.iter().find_map(|segment| {
            let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(t) => first_reference(t),
                _ => None,
            })
        }),
        Type::Tuple(t) => t.elems.iter().find_map(first_reference),
        Type::Array(a) => first_reference(&a.elem),
        Type::Slice(s) => first_reference(&s.elem),
        Type::Paren(p) => first_reference(&p.elem),
        Type::Group(g) => first_reference(&g.elem),
        _ => None,
    }
}

/// Checks that each placeholder names a parameter.
fn check_holes(
    template: &Template,
    params: &[Param],
    reported: &HashSet<String>,
    fn_name: &Ident,
    errors: &mut Errors,
) {
    for piece in &template.pieces {
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
            &template.lit,
            format!("placeholder `{hole}` names no parameter of `{fn_name}`; {names}"),
        );
    }
}

/// Checks that no parameter left out of the key template has a type the type checker
/// cannot judge: `impl Trait` or a generic type parameter of the function (anywhere in the
/// type: `&impl AsRef<str>`, `Vec<S>`). In the body such a type is opaque, so the generated
/// check would take it for a handle, though it is data more often than not (`s: impl
/// AsRef<str>`): it is in the key or in `ignore`.
fn check_opaque_left_out(func: &ItemFn, params: &[Param], left_out: &[usize], errors: &mut Errors) {
    let generics: Vec<String> = (func.sig.generics.params.iter())
        .filter_map(|gp| match gp {
            GenericParam::Type(t) => Some(t.ident.to_string()),
            _ => None,
        })
        .collect();
    for &i in left_out {
        let Param { ident, ty } = &params[i];
        let mut names = HashSet::new();
        collect_names(ty.to_token_stream(), &mut names);
        let text = type_text(ty);
        let what = if let Type::ImplTrait(_) = ty {
            "its type is an `impl Trait`".to_owned()
        } else if names.contains("impl") {
            format!("its type `{text}` holds an `impl Trait`")
        } else if let Some(generic) = generics.iter().find(|g| names.contains(*g)) {
            if *generic == text {
                format!("its type is the generic `{generic}`")
            } else {
                format!("its type `{text}` holds the generic `{generic}`")
            }
        } else {
            continue;
        };
        let name = ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name);
        errors.spanned(
            quote::quote!(#ident: #ty),
            format!(
                "parameter `{name}` is left out of the cache key, and {what}, which may be data the result depends on: add `<{name}>` to the key template (its type must then be `serde::Serialize` or a `KeyPart`), or list it in `ignore = [{name}]`"
            ),
        );
    }
}

/// A type as a user writes it: `impl AsRef<str>`, not `impl AsRef < str >`.
fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" [", "["),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// Checks `ignore = [...]` and returns the indices of the ignored parameters.
fn check_ignore(
    args: &Args,
    params: &[Param],
    in_templates: &[usize],
    reported: &HashSet<String>,
    func: &ItemFn,
    errors: &mut Errors,
) -> Vec<usize> {
    let mut ignored = Vec::new();
    for name in &args.ignore {
        if name == "self" {
            errors.spanned(
                name,
                "`self` is never part of the key by itself: only the fields a placeholder names, as in `<self.tenant>`; remove it from `ignore`",
            );
            continue;
        }
        let Some(i) = params.iter().position(|p| p.ident == *name) else {
            if !reported.contains(&name.to_string()) {
                let fn_name = &func.sig.ident;
                let list: Vec<String> = params.iter().map(|p| format!("`{}`", p.ident)).collect();
                errors.spanned(
                    name,
                    format!(
                        "`ignore` names `{name}`, which is no parameter of `{fn_name}`{}",
                        if list.is_empty() {
                            String::new()
                        } else {
                            format!("; its parameters are {}", list.join(", "))
                        }
                    ),
                );
            }
            continue;
        };
        if ignored.contains(&i) {
            errors.spanned(name, format!("`{name}` is listed twice in `ignore`"));
        } else if in_templates.contains(&i) {
            errors.spanned(
                name,
                format!("`{name}` is in the template and in `ignore`: a parameter is either part of the key or left out of it; remove one"),
            );
        } else {
            ignored.push(i);
        }
    }
    ignored
}

/// The caching mode the arguments declare.
fn declared(args: &Args, errors: &mut Errors) -> Declared {
    match (args.result, args.option, args.cache_none) {
        (Some(_), Some(option), _) => {
            errors.at(
                option.span,
                "`result` and `option` both describe the return type: give one of them",
            );
            Declared::Auto
        }
        (Some(_), None, Some(span)) => {
            errors.at(
                span,
                "`cache_none` applies to functions that return `Option<T>`, and `result` says this one returns a `Result`",
            );
            Declared::Auto
        }
        (None, Some(option), Some(span)) => {
            errors.at(
                span,
                format!(
                    "`cache_none` and `option` both say how `None` is cached: give one of them (`cache_none = true` is `option = false`{})",
                    if option.value { "; `option = true` caches only `Some`" } else { "" }
                ),
            );
            Declared::Auto
        }
        (Some(result), None, None) if result.value => Declared::Result(result.span),
        (None, Some(option), None) if option.value => Declared::Option(option.span),
        (Some(_), None, None) | (None, Some(_), None) => Declared::Every,
        (None, None, Some(span)) => Declared::CacheNone(span),
        (None, None, None) => Declared::Auto,
    }
}

/// Every identifier and lifetime in `tokens`.
pub(crate) fn collect_names(tokens: TokenStream, out: &mut HashSet<String>) {
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
