//! `#[derive(KeyPart)]`: an injective key encoding for the user's structs and enums.
//!
//! Input:
//!
//! ```text
//! #[derive(KeyPart)]
//! enum Filter { All, Owner(u64), Range { from: u32, to: u32 } }
//! ```
//!
//! Output (abridged):
//!
//! ```text
//! impl KeyPart for Filter {
//!     fn write_key_part(&self, out: &mut String) {
//!         match self {
//!             Filter::All => out.push_str("All"),
//!             Filter::Owner(f0) => { out.push_str("Owner("); f0.write_key_part(out); out.push(')'); }
//!             Filter::Range { from, to } => { out.push_str("Range("); ...; out.push(','); ...; out.push(')'); }
//!         }
//!     }
//! }
//! ```
//!
//! A struct with one field writes that field (`UserId(42)` is `42`, as `user:<id>` would
//! show a bare id); with several, a tuple `(a,b)`; with none, `()`. An enum writes the
//! variant's name, then its fields as a tuple when it has any. Variant names contain no
//! character that an encoding uses as structure, and each field encoding is balanced, so
//! the result is injective and balanced too (see the runtime's `key` module).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericParam, Ident};

pub(crate) fn derive(input: DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let body = match &input.data {
        Data::Struct(data) => {
            let bindings = bindings(&data.fields);
            let pattern = pattern(quote!(#name), &data.fields, &bindings);
            let write = write_fields(&bindings, data.fields.len() != 1);
            quote! {
                let #pattern = self;
                #write
            }
        }
        Data::Enum(data) if data.variants.is_empty() => quote!(match *self {}),
        Data::Enum(data) => {
            let arms = data.variants.iter().map(|variant| {
                let ident = &variant.ident;
                let label = ident.unraw().to_string();
                let bindings = bindings(&variant.fields);
                let pattern = pattern(quote!(#name::#ident), &variant.fields, &bindings);
                let fields = if bindings.is_empty() {
                    TokenStream::new()
                } else {
                    write_fields(&bindings, true)
                };
                quote! {
                    #pattern => {
                        __cachemacro_out.push_str(#label);
                        #fields
                    }
                }
            });
            quote! {
                match self {
                    #(#arms)*
                }
            }
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "`KeyPart` cannot be derived for a union: the active field is unknown; implement `KeyPart` by hand",
            ))
        }
    };

    // Each type parameter must be a key part itself (what serde does for `Serialize`).
    let mut generics = input.generics.clone();
    let bounds: Vec<TokenStream> = input
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(ty) => {
                let ident = &ty.ident;
                Some(quote!(#ident: ::cachemacro::__private::KeyPart))
            }
            _ => None,
        })
        .collect();
    if !bounds.is_empty() {
        let where_clause = generics.make_where_clause();
        for bound in bounds {
            where_clause.predicates.push(syn::parse2(bound)?);
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::cachemacro::__private::KeyPart for #name #ty_generics #where_clause {
            fn write_key_part(&self, __cachemacro_out: &mut ::cachemacro::__private::String) {
                #body
            }
        }
    })
}

/// One binding per field: `__cachemacro_f0`, `__cachemacro_f1`, ...
fn bindings(fields: &Fields) -> Vec<(Ident, Span)> {
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| (format_ident!("__cachemacro_f{}", i), field.ty.span()))
        .collect()
}

/// `Path { a: __cachemacro_f0, .. }`, `Path(__cachemacro_f0, ..)` or `Path`.
fn pattern(path: TokenStream, fields: &Fields, bindings: &[(Ident, Span)]) -> TokenStream {
    let names = bindings.iter().map(|(b, _)| b);
    match fields {
        Fields::Named(named) => {
            let members = named.named.iter().map(|f| &f.ident);
            quote!(#path { #(#members: #names),* })
        }
        Fields::Unnamed(_) => quote!(#path(#(#names),*)),
        Fields::Unit => path,
    }
}

/// The fields, as a tuple `(a,b)` when `tuple`, else the single field as it is.
fn write_fields(bindings: &[(Ident, Span)], tuple: bool) -> TokenStream {
    let writes = bindings.iter().enumerate().map(|(i, (binding, span))| {
        let comma = (i > 0).then(|| quote!(__cachemacro_out.push(',');));
        // Spanned at the field's type, so "cannot be part of a cache key" points at it.
        let binding = Ident::new(&binding.to_string(), *span);
        let write = quote_spanned! {*span=>
            ::cachemacro::__private::KeyPart::write_key_part(#binding, __cachemacro_out);
        };
        quote!(#comma #write)
    });
    if tuple {
        quote! {
            __cachemacro_out.push('(');
            #(#writes)*
            __cachemacro_out.push(')');
        }
    } else {
        quote!(#(#writes)*)
    }
}
