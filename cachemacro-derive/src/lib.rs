//! The `#[cached]` attribute of [cachemacro](https://docs.rs/cachemacro). Use it through the
//! `cachemacro` crate, which documents it.
//!
//! Stages: `args` parses the attribute's arguments, `template` parses key templates and
//! checks them against the function's parameters, `expand` generates the code. Every
//! mistake found is reported at once, and the user's function is emitted unchanged beside
//! the errors so that one mistake gives one error.

mod args;
mod errors;
mod expand;
mod template;

use proc_macro::TokenStream;

/// Makes an `async fn` read through the cache. See the `cachemacro` crate for the guide.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let func = match syn::parse::<syn::ItemFn>(item) {
        Ok(func) => func,
        Err(err) => return with_error(original, err),
    };
    match expand::expand(args.into(), func) {
        Ok(tokens) => tokens.into(),
        Err(err) => with_error(original, err),
    }
}

/// The user's item, untouched, followed by the errors.
fn with_error(original: proc_macro2::TokenStream, err: syn::Error) -> TokenStream {
    let mut out = original;
    out.extend(err.into_compile_error());
    out.into()
}
