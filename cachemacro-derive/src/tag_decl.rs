//! `tags!`: tags declared once, with typed parameters.
//!
//! Input:
//!
//! ```text
//! tags! {
//!     /// Everything built from one user's profile.
//!     pub user(id: u64) = "user:<id>";
//! }
//! ```
//!
//! Output (abridged):
//!
//! ```text
//! /// Everything built from one user's profile.
//! pub enum user {}
//! impl user {
//!     pub fn tag(id: &u64) -> String { /* "user:" + id as a key part */ }
//!     pub async fn invalidate(id: &u64) -> Result<u64, Error> { global().invalidate_tag(..) }
//!     pub async fn invalidate_in(cache: &Cache, id: &u64) -> Result<u64, Error> { .. }
//! }
//! ```
//!
//! `#[cached(tags = [user(user_id)])]` then calls `user::tag(&user_id)`: a misspelt tag is
//! an unresolved name, and an argument of the wrong type a type error, both at the call.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Token, Type, Visibility};

use crate::errors::Errors;
use crate::expand::{field_tokens, write_part};
use crate::template::{self, Piece};

/// One declaration: `<attrs> <vis> name(param: Type, ...) = "template";`.
struct Decl {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    params: Vec<(Ident, Type)>,
    template: LitStr,
}

/// Every declaration of one `tags!`.
struct Decls(Vec<Decl>);

impl Parse for Decls {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut decls = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            let name: Ident = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            let params =
                Punctuated::<(Ident, Type), Token![,]>::parse_terminated_with(&content, |input| {
                    let ident: Ident = input.parse()?;
                    input.parse::<Token![:]>()?;
                    let ty: Type = input.parse()?;
                    Ok((ident, ty))
                })?;
            input.parse::<Token![=]>()?;
            let template: LitStr = input.parse()?;
            input.parse::<Token![;]>()?;
            decls.push(Decl {
                attrs,
                vis,
                name,
                params: params.into_iter().collect(),
                template,
            });
        }
        Ok(Decls(decls))
    }
}

/// Expands `tags! { ... }`.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let Decls(decls) = syn::parse2(input)?;
    let mut errors = Errors::default();
    let mut out = TokenStream::new();
    for decl in &decls {
        if let Some(tokens) = one(decl, &mut errors) {
            out.extend(tokens);
        }
    }
    errors.finish()?;
    Ok(out)
}

fn one(decl: &Decl, errors: &mut Errors) -> Option<TokenStream> {
    let Decl {
        attrs,
        vis,
        name,
        params,
        template,
    } = decl;
    let pieces = match template::parse(&template.value(), "tag template") {
        Ok(pieces) => pieces,
        Err(message) => {
            errors.spanned(template, message);
            return None;
        }
    };
    // Every placeholder names a parameter, and every parameter is in the template: a
    // parameter left out would make tags that differ by it the same tag.
    let mut ok = true;
    for piece in &pieces {
        if let Piece::Hole(hole) = piece {
            if !params.iter().any(|(p, _)| *p == hole.root) {
                let known: Vec<String> = params.iter().map(|(p, _)| format!("`{p}`")).collect();
                errors.spanned(
                    template,
                    format!(
                        "`{}` names no parameter of tag `{name}` (its parameters: {})",
                        hole.written,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                ok = false;
            }
        }
    }
    for (param, _) in params {
        let used = pieces
            .iter()
            .any(|p| matches!(p, Piece::Hole(hole) if *param == hole.root));
        if !used {
            errors.spanned(
                param,
                format!("tag parameter `{param}` is not in the template: add `<{param}>` to it, or remove the parameter"),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let mut writes = TokenStream::new();
    for piece in &pieces {
        match piece {
            Piece::Text(text) => writes.extend(quote! { __cachemacro_out.push_str(#text); }),
            Piece::Hole(hole) => {
                let (param, ty) = params
                    .iter()
                    .find(|(p, _)| *p == hole.root)
                    .expect("checked above");
                let fields = field_tokens(&hole.fields, template.span());
                writes.extend(write_part(quote!((*#param) #(#fields)*), ty.span()));
            }
        }
    }
    let idents: Vec<&Ident> = params.iter().map(|(p, _)| p).collect();
    let inputs: Vec<TokenStream> = params
        .iter()
        .map(|(p, ty)| quote_spanned!(ty.span()=> #p: &#ty))
        .collect();
    let text = template.value();
    let doc_tag = format!("The text of this tag for these values: `{text}`, as `#[cached(tags = [{name}(..)])]` writes it.");
    let doc_invalidate = format!(
        "Invalidates every entry tagged `{text}` with these values, here and on every instance, in the global cache ([`Cache::invalidate_tag`](::cachemacro::Cache::invalidate_tag)); returns how many entries it removed."
    );
    let doc_in = "[`invalidate`](Self::invalidate), in `cache`.";
    let doc_type = format!(
        "The tag `{text}`, declared with [`cachemacro::tags!`](::cachemacro::tags): name it in `#[cached(tags = [{name}(..)])]` and invalidate it with `{name}::invalidate(..)`."
    );
    let invalidate_in = format_ident!("invalidate_in");
    Some(quote! {
        #[doc = #doc_type]
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #vis enum #name {}

        #[allow(dead_code)]
        impl #name {
            #[doc = #doc_tag]
            #vis fn tag(#(#inputs),*) -> ::cachemacro::__private::String {
                let mut __cachemacro_buffer = ::cachemacro::__private::String::new();
                {
                    let __cachemacro_out = &mut __cachemacro_buffer;
                    #writes
                }
                __cachemacro_buffer
            }

            #[doc = #doc_invalidate]
            #vis async fn invalidate(#(#inputs),*) -> ::cachemacro::__private::Result<u64, ::cachemacro::Error> {
                let __cachemacro_global = ::cachemacro::__private::global_for_companion();
                Self::#invalidate_in(&__cachemacro_global, #(#idents),*).await
            }

            #[doc = #doc_in]
            #vis async fn #invalidate_in(
                __cachemacro_cache: &::cachemacro::Cache,
                #(#inputs),*
            ) -> ::cachemacro::__private::Result<u64, ::cachemacro::Error> {
                __cachemacro_cache.invalidate_tag(&Self::tag(#(#idents),*)).await
            }
        }
    })
}
