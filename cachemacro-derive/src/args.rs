//! The arguments of `#[cached(...)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::errors::Errors;

/// The names `#[cached]` accepts, in the order error messages list them.
const KNOWN: &str = "`key`, `ttl`, `scope`, `cache`, `cache_none`, `version`, `tags`";

/// The parsed, validated arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// The key template.
    pub(crate) key: Option<LitStr>,
    /// The TTL in milliseconds.
    pub(crate) ttl_ms: Option<u64>,
    /// The scope name.
    pub(crate) scope: Option<LitStr>,
    /// An expression giving the cache.
    pub(crate) cache: Option<Expr>,
    /// Cache `None` results too; the span points at the argument.
    pub(crate) cache_none: Option<Span>,
    /// The schema version of the cached type, part of its fingerprint in Redis.
    pub(crate) version: Option<u32>,
    /// Tag templates.
    pub(crate) tags: Vec<LitStr>,
}

/// One `name = value` or bare `name`, before validation.
struct RawArg {
    name: Ident,
    value: Option<Expr>,
}

impl Parse for RawArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.call(syn::ext::IdentExt::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else if input.is_empty() || input.peek(Token![,]) {
            None
        } else {
            return Err(input.error(format!(
                "expected `=` after `{name}`, as in `key = \"user:<id>\"`"
            )));
        };
        Ok(Self { name, value })
    }
}

impl Args {
    /// Parses the argument list, pushing every mistake into `errors`.
    pub(crate) fn parse(
        tokens: proc_macro2::TokenStream,
        errors: &mut Errors,
    ) -> syn::Result<Self> {
        let raw =
            syn::parse::Parser::parse2(Punctuated::<RawArg, Token![,]>::parse_terminated, tokens)?;
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        for arg in raw {
            let name = arg.name.to_string();
            if seen.contains(&name) {
                errors.spanned(
                    &arg.name,
                    format!("duplicate argument `{name}`: give it once"),
                );
                continue;
            }
            seen.push(name.clone());
            match name.as_str() {
                "key" => args.key = string(&arg, errors, "a key template such as `key = \"user:<id>\"`"),
                "scope" => {
                    args.scope = string(&arg, errors, "a scope name such as `scope = \"users\"`");
                    if let Some(scope) = &args.scope {
                        if scope.value().is_empty() {
                            errors.spanned(scope, "the scope name must not be empty: write `scope = \"users\"`, or leave `scope` out");
                        }
                    }
                }
                "ttl" => args.ttl_ms = ttl(&arg, errors),
                "cache" => match arg.value {
                    Some(expr) => args.cache = Some(expr),
                    None => errors.spanned(
                        &arg.name,
                        "`cache` needs an expression giving the cache, such as `cache = &APP_CACHE`",
                    ),
                },
                "cache_none" => match &arg.value {
                    None => args.cache_none = Some(arg.name.span()),
                    Some(Expr::Lit(lit)) => match &lit.lit {
                        Lit::Bool(b) if b.value => args.cache_none = Some(arg.name.span()),
                        Lit::Bool(_) => {}
                        other => errors.spanned(other, "`cache_none` takes `true` or `false`"),
                    },
                    Some(other) => errors.spanned(other, "`cache_none` takes `true` or `false`"),
                },
                "tags" => match &arg.value {
                    Some(Expr::Array(array)) => {
                        for element in &array.elems {
                            match element {
                                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => args.tags.push(s.clone()),
                                other => errors.spanned(other, "each tag is a template string, as in `tags = [\"user:<user_id>\"]`"),
                            }
                        }
                    }
                    Some(other) => errors.spanned(other, "`tags` takes a list of templates, as in `tags = [\"user:<user_id>\"]`"),
                    None => errors.spanned(&arg.name, "`tags` needs a list of templates, as in `tags = [\"user:<user_id>\"]`"),
                },
                "version" => match &arg.value {
                    Some(Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. })) => match i.base10_parse::<u32>() {
                        Ok(v) => args.version = Some(v),
                        Err(e) => errors.spanned(i, format!("invalid version: {e}; write a whole number such as `version = 2`")),
                    },
                    Some(other) => errors.spanned(other, "`version` takes a whole number such as `version = 2`"),
                    None => errors.spanned(&arg.name, "`version` needs a value such as `version = 2`"),
                },
                _ => errors.spanned(
                    &arg.name,
                    format!("unknown argument `{name}`; `#[cached]` accepts {KNOWN}"),
                ),
            }
        }
        Ok(args)
    }
}

/// The string literal value of `arg`, or an error saying what was expected.
fn string(arg: &RawArg, errors: &mut Errors, expected: &str) -> Option<LitStr> {
    match &arg.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        })) => Some(s.clone()),
        Some(other) => {
            errors.spanned(
                other,
                format!("`{}` takes a string literal: {expected}", arg.name),
            );
            None
        }
        None => {
            errors.spanned(
                &arg.name,
                format!("`{}` needs a value: {expected}", arg.name),
            );
            None
        }
    }
}

const TTL_HELP: &str =
    "write a duration such as `ttl = \"30s\"`, `ttl = \"5m\"`, `ttl = \"1h 30m\"`, or a number of seconds such as `ttl = 300`";

/// The TTL in milliseconds, checked here so a bad TTL is a compile error.
fn ttl(arg: &RawArg, errors: &mut Errors) -> Option<u64> {
    let Some(value) = &arg.value else {
        errors.spanned(&arg.name, format!("`ttl` needs a value: {TTL_HELP}"));
        return None;
    };
    let (ms, span) = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match humantime::parse_duration(&s.value()) {
            Ok(d) => (u64::try_from(d.as_millis()).unwrap_or(u64::MAX), s.span()),
            Err(e) => {
                errors.spanned(s, format!("invalid ttl \"{}\": {e}; {TTL_HELP}", s.value()));
                return None;
            }
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u64>() {
            Ok(secs) => (secs.saturating_mul(1000), i.span()),
            Err(e) => {
                errors.spanned(i, format!("invalid ttl: {e}; {TTL_HELP}"));
                return None;
            }
        },
        other => {
            errors.at(other.span(), format!("invalid ttl: {TTL_HELP}"));
            return None;
        }
    };
    if ms == 0 {
        errors.at(span, "the ttl must be longer than zero: every cached value expires, so a missed invalidation heals itself");
        return None;
    }
    Some(ms)
}
