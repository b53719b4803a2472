//! The `#[cached]` attribute and `#[derive(KeyPart)]` of
//! [cachemacro](https://docs.rs/cachemacro). Use them through the `cachemacro` crate, which
//! documents them.
//!
//! Stages, as in thiserror-impl: `args` parses the attribute's arguments, `template` parses
//! key templates, `context` finds where the function is declared (module, `impl`, trait),
//! `valid` checks the arguments against the function and builds the model,
//! `expand` generates the function (with `checks`: the compile-time checks the type system
//! makes) and `companion` its companion functions. Every mistake found is reported at once,
//! and the user's function is emitted unchanged beside the errors so that one mistake gives
//! one error.

mod args;
mod batch;
mod checks;
mod companion;
mod context;
mod errors;
mod expand;
mod key_part;
mod tag_decl;
mod template;
mod valid;

use proc_macro::TokenStream;

/// (The `#[cached]` attribute comes from the `cachemacro-derive` crate: use it through
/// `cachemacro`.)
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let func = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => return with_error(original, valid::not_a_function(item.into(), err)),
    };
    let context = context::of_call_site();
    match valid::validate(args.into(), func, context).map(|model| expand::expand(&model)) {
        Ok(tokens) => tokens.into(),
        Err(err) => with_error(original, err),
    }
}

/// (`tags!` comes from the `cachemacro-derive` crate: use it through `cachemacro`.)
#[proc_macro]
pub fn tags(input: TokenStream) -> TokenStream {
    tag_decl::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// (The derive comes from the `cachemacro-derive` crate: use it through `cachemacro`.)
#[proc_macro_derive(KeyPart)]
pub fn derive_key_part(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    key_part::derive(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The user's item, untouched, followed by the errors.
fn with_error(original: proc_macro2::TokenStream, err: syn::Error) -> TokenStream {
    let mut out = original;
    out.extend(err.into_compile_error());
    out.into()
}
