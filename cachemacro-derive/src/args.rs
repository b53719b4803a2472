//! The arguments of `#[cached(...)]`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::errors::Errors;

/// The names `#[cached]` accepts, in the order error messages list them.
const KNOWN: &str =
    "`key`, `ttl`, `scope`, `group`, `cache`, `ignore`, `result`, `option`, `cache_none`, `version`, `tags`, \
     `stale_for`, `soft_timeout`, `hard_timeout`, `refresh_ahead`, `fail_safe_throttle`, `fleet_single_flight`, `batch`, \
     `l1_capacity`";

/// The parsed, validated arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// The key template.
    pub(crate) key: Option<LitStr>,
    /// The TTL.
    pub(crate) ttl: Option<Ttl>,
    /// The scope template.
    pub(crate) scope: Option<LitStr>,
    /// The group template: one `bump_version` of the group retires every entry in it.
    pub(crate) group: Option<LitStr>,
    /// An expression giving the cache.
    pub(crate) cache: Option<Expr>,
    /// Parameters deliberately left out of the key.
    pub(crate) ignore: Vec<Ident>,
    /// `result = true/false`: the return type is (or is not to be treated as) a `Result`.
    pub(crate) result: Option<Flag>,
    /// `option = true/false`: the return type is (or is not to be treated as) an `Option`.
    pub(crate) option: Option<Flag>,
    /// Cache `None` results too; the span points at the argument.
    pub(crate) cache_none: Option<Span>,
    /// The schema version of the cached type, part of its fingerprint in Redis.
    pub(crate) version: Option<u32>,
    /// Tag templates.
    pub(crate) tags: Vec<LitStr>,
    /// Tags declared with `tags!`, named with their arguments: `user(user_id)`.
    pub(crate) typed_tags: Vec<syn::ExprCall>,
    /// How long past its TTL an entry is kept, to serve when a reload fails.
    pub(crate) stale_for: Option<Named<Ttl>>,
    /// How long callers wait for a reload before they get the stale value.
    pub(crate) soft_timeout: Option<Named<Ttl>>,
    /// How long a reload may take before it counts as failed.
    pub(crate) hard_timeout: Option<Named<Ttl>>,
    /// The fraction of the TTL after which a hit refreshes the value in the background.
    pub(crate) refresh_ahead: Option<Named<f64>>,
    /// How long a stale value is served as if fresh after a failed reload.
    pub(crate) fail_safe_throttle: Option<Named<Ttl>>,
    /// Fleet-wide single flight.
    pub(crate) fleet: Option<Named<Fleet>>,
    /// `batch(id in ids)`: a batch function, cached per element.
    pub(crate) batch: Option<Named<Batch>>,
    /// `l1_capacity = N`: the function's own share of L1, in entries.
    pub(crate) l1_capacity: Option<u64>,
}

/// `batch(id in ids)`: the element's name in the key template, and the collection
/// parameter.
pub(crate) struct Batch {
    pub(crate) element: Ident,
    pub(crate) collection: Ident,
}

/// An argument's value, with the span of its name for messages.
pub(crate) struct Named<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// `fleet_single_flight`: off, on with the cache's wait, or on with a wait of its own.
pub(crate) enum Fleet {
    Off,
    On,
    Wait(Ttl),
}

/// A `ttl` argument.
pub(crate) enum Ttl {
    /// A literal (`"5m"`, `300`), checked here: the TTL in milliseconds.
    Millis(u64),
    /// Any other expression, which must give a `Duration`.
    Expr(Expr),
}

/// A `name = true` / `name = false` argument.
#[derive(Clone, Copy)]
pub(crate) struct Flag {
    pub(crate) value: bool,
    /// The argument's name, for messages.
    pub(crate) span: Span,
}

/// `expr` without the invisible groups a `macro_rules!` wraps its fragments in: a template
/// passed as `$key:literal` (or `$key:expr`) reaches the attribute as a group around the
/// literal.
fn ungroup(expr: Expr) -> Expr {
    match expr {
        Expr::Group(group) => ungroup(*group.expr),
        other => other,
    }
}

/// [`ungroup`], borrowed.
fn ungroup_ref(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup_ref(&group.expr),
        other => other,
    }
}

/// One `name = value`, `name(...)` or bare `name`, before validation.
struct RawArg {
    name: Ident,
    value: Option<Expr>,
    /// What `name(...)` holds.
    group: Option<proc_macro2::TokenStream>,
}

impl Parse for RawArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.call(syn::ext::IdentExt::parse_any)?;
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            return Ok(Self {
                name,
                value: None,
                group: Some(content.parse()?),
            });
        }
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(ungroup(input.parse()?))
        } else if input.is_empty() || input.peek(Token![,]) {
            None
        } else {
            return Err(input.error(format!(
                "expected `=` after `{name}`, as in `key = \"user:<id>\"`"
            )));
        };
        Ok(Self {
            name,
            value,
            group: None,
        })
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
                    args.scope = string(&arg, errors, "a scope name such as `scope = \"users\"` or `scope = \"tenant-<tenant>\"`");
                    if let Some(scope) = &args.scope {
                        if scope.value().is_empty() {
                            errors.spanned(scope, "the scope name must not be empty: write `scope = \"users\"`, or leave `scope` out");
                        }
                    }
                }
                "group" => {
                    args.group = string(&arg, errors, "a group name such as `group = \"articles\"` or `group = \"feed:<user_id>\"`");
                    if let Some(group) = &args.group {
                        if group.value().is_empty() {
                            errors.spanned(group, "the group name must not be empty: write `group = \"articles\"`, or leave `group` out");
                        }
                    }
                }
                "ttl" => args.ttl = duration(&arg, errors, TTL_HELP),
                "stale_for" => args.stale_for = named(&arg, duration(&arg, errors, "write a duration such as `stale_for = \"1h\"` or an expression giving a `Duration`")),
                "soft_timeout" => args.soft_timeout = named(&arg, duration(&arg, errors, "write a duration such as `soft_timeout = \"100ms\"` or an expression giving a `Duration`")),
                "hard_timeout" => args.hard_timeout = named(&arg, duration(&arg, errors, "write a duration such as `hard_timeout = \"2s\"` or an expression giving a `Duration`")),
                "fail_safe_throttle" => args.fail_safe_throttle = named(&arg, duration(&arg, errors, "write a duration such as `fail_safe_throttle = \"30s\"` or an expression giving a `Duration`")),
                "refresh_ahead" => args.refresh_ahead = named(&arg, fraction(&arg, errors)),
                "fleet_single_flight" => args.fleet = named(&arg, fleet(&arg, errors)),
                "batch" => args.batch = named(&arg, batch(&arg, errors)),
                "cache" => match arg.value {
                    Some(expr) => args.cache = Some(expr),
                    None => errors.spanned(
                        &arg.name,
                        "`cache` needs an expression giving the cache, such as `cache = &APP_CACHE`",
                    ),
                },
                "cache_none" => {
                    if let Some(Flag { value: true, span }) = flag(&arg, errors) {
                        args.cache_none = Some(span);
                    }
                }
                "result" => args.result = flag(&arg, errors),
                "option" => args.option = flag(&arg, errors),
                "ignore" => args.ignore = ignore(&arg, errors),
                "tags" => match &arg.value {
                    Some(Expr::Array(array)) => {
                        for element in &array.elems {
                            match ungroup_ref(element) {
                                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => args.tags.push(s.clone()),
                                Expr::Call(call) => args.typed_tags.push(call.clone()),
                                other => errors.spanned(other, "each tag is a template string, as in `tags = [\"user:<user_id>\"]`, or a tag declared with `cachemacro::tags!` and its arguments, as in `tags = [user(user_id)]`"),
                            }
                        }
                    }
                    Some(other) => errors.spanned(other, "`tags` takes a list of templates, as in `tags = [\"user:<user_id>\"]`"),
                    None => errors.spanned(&arg.name, "`tags` needs a list of templates, as in `tags = [\"user:<user_id>\"]`"),
                },
                "l1_capacity" => match &arg.value {
                    Some(Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. })) => match i.base10_parse::<u64>() {
                        Ok(0) => errors.spanned(i, "`l1_capacity` must be at least 1: leave it out to share L1 with the other functions"),
                        Ok(n) => args.l1_capacity = Some(n),
                        Err(e) => errors.spanned(i, format!("invalid l1_capacity: {e}; write a whole number of entries such as `l1_capacity = 1000`")),
                    },
                    Some(other) => errors.spanned(other, "`l1_capacity` takes a whole number of entries such as `l1_capacity = 1000`"),
                    None => errors.spanned(&arg.name, "`l1_capacity` needs a number of entries such as `l1_capacity = 1000`"),
                },
                "version" => match &arg.value {
                    Some(Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. })) => match i.base10_parse::<u32>() {
                        Ok(v) => args.version = Some(v),
                        Err(e) => errors.spanned(i, format!("invalid version: {e}; write a whole number such as `version = 2`")),
                    },
                    Some(other) => errors.spanned(other, "`version` takes a whole number such as `version = 2`"),
                    None => errors.spanned(&arg.name, "`version` needs a value such as `version = 2`"),
                },
                _ => match from_cached_crate(&name, &arg) {
                    Some(equivalent) => errors.spanned(&arg.name, equivalent),
                    None => errors.spanned(
                        &arg.name,
                        format!("unknown argument `{name}`; `#[cached]` accepts {KNOWN}"),
                    ),
                },
            }
        }
        if let (Some(key), true) = (&args.key, seen.iter().any(|n| n == "convert")) {
            errors.spanned(
                key,
                "with `convert`, `cached`'s `key` names the key's type; here `key` is the key itself, a template of the parameters: `key = \"user:<id>\"`",
            );
        }
        Ok(args)
    }
}

/// What an argument of the `cached` crate's `#[cached]`, `#[once]` or `#[io_cached]` (or of
/// a crate like it) is here: the equivalent to write, or why there is none.
fn from_cached_crate(name: &str, arg: &RawArg) -> Option<String> {
    // The value as written, for a suggestion that keeps it: `time = 60` -> `ttl = 60`.
    let value = arg
        .value
        .as_ref()
        .map_or_else(|| "300".to_owned(), |v| v.to_token_stream().to_string());
    Some(match name {
        "time" | "ttl_secs" => format!(
            "`{name}` is `ttl` here: write `ttl = {value}` (seconds), or a duration such as `ttl = \"5m\"`; without it, entries live 5 minutes"
        ),
        "size" | "max_size" | "capacity" => format!(
            "`{name}` is `l1_capacity` here: `l1_capacity = {value}` gives this function its own share of the in-process cache (L1), of that many entries; without it, the function shares one bounded L1 with the others (`CacheBuilder::l1_capacity`), evicted by S3-FIFO rather than LRU"
        ),
        "unbound" => "`unbound` has no equivalent: the in-process cache (L1) is bounded (`CacheBuilder::l1_capacity`), and every entry has a TTL (`ttl = ...`, 5 minutes by default); remove `unbound`".to_owned(),
        "time_refresh" => "`time_refresh` has no equivalent: a hit does not extend an entry's TTL, which counts from the load. To refresh a value that is read often before it expires, write `refresh_ahead = 0.8` (a hit past 80% of the TTL reloads it in the background)".to_owned(),
        "sync_writes" => "`sync_writes` is what happens here already: concurrent misses of one key share one load in this process (and across instances with `fleet_single_flight = true`); remove `sync_writes`".to_owned(),
        "with_cached_flag" => "`with_cached_flag` is the companion `with_source` here: `get_user::with_source(args).await` returns the value and where it came from (`Source::L1`, `L2`, `Joined`, `Loaded` or `Stale`), and the function keeps its return type; remove `with_cached_flag`".to_owned(),
        "result_fallback" => "`result_fallback` is `stale_for` here: with `stale_for = \"1h\"`, an error (or a timeout) of the body serves the last value for up to an hour after it expired".to_owned(),
        "convert" => "`convert` has no equivalent: the key is a template of the parameters, `key = \"user:<id>\"` (placeholders reach fields, `<req.tenant>`, and take any `serde::Serialize` value); parameters the result does not depend on go in `ignore = [..]`".to_owned(),
        "name" => "`name` has no equivalent: the function's companion is named after the function (`get_user::key`, `get_user::remove_cached`...), and its counters appear under its path in `cachemacro::functions()`; remove `name`".to_owned(),
        "ty" | "create" => format!(
            "`{name}` has no equivalent: the store is the `Cache` (an in-process L1 and Redis), not a type per function; `cache = APP_CACHE` names a `Cache` of yours"
        ),
        "redis" | "disk" | "cache_prefix_block" | "map_error" | "connection_config" | "sync_to_disk_on_cache_change" | "disk_dir" => format!(
            "`{name}` (of `#[io_cached]`) has no equivalent on the function: Redis is configured once on the cache (`Cache::builder().redis(url)`), keys are prefixed by its namespace (`CacheBuilder::namespace`) or a `scope`, and the cache's own errors never reach the function (it falls back to the body); remove `{name}`"
        ),
        _ => return None,
    })
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
    "write a duration such as `ttl = \"30s\"`, `ttl = \"5m\"`, `ttl = \"1h 30m\"`, a number of seconds such as `ttl = 300`, or an expression giving a `Duration` such as `ttl = USER_TTL`";

/// `true` or `false`, or the bare name for `true`.
fn flag(arg: &RawArg, errors: &mut Errors) -> Option<Flag> {
    let span = arg.name.span();
    match &arg.value {
        None => Some(Flag { value: true, span }),
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        })) => Some(Flag {
            value: b.value,
            span,
        }),
        Some(other) => {
            errors.spanned(other, format!("`{}` takes `true` or `false`", arg.name));
            None
        }
    }
}

/// `ignore = [a, b]`: plain parameter names.
fn ignore(arg: &RawArg, errors: &mut Errors) -> Vec<Ident> {
    const HELP: &str =
        "`ignore` takes a list of parameter names, as in `ignore = [db, request_id]`";
    let elems = match &arg.value {
        Some(Expr::Array(array)) => &array.elems,
        Some(other) => {
            errors.spanned(other, HELP);
            return Vec::new();
        }
        None => {
            errors.spanned(&arg.name, HELP);
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for element in elems {
        match element {
            Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                match path.path.get_ident() {
                    Some(ident) => names.push(ident.clone()),
                    None => errors.spanned(path, HELP),
                }
            }
            other => errors.spanned(other, HELP),
        }
    }
    names
}

/// `batch(id in ids)`.
fn batch(arg: &RawArg, errors: &mut Errors) -> Option<Batch> {
    const HELP: &str =
        "`batch` names the element and the collection parameter, as in `batch(id in ids)`";
    let Some(group) = &arg.group else {
        errors.spanned(&arg.name, HELP);
        return None;
    };
    let parsed = syn::parse::Parser::parse2(
        |input: ParseStream| {
            let element: Ident = input.parse()?;
            input.parse::<Token![in]>()?;
            let collection: Ident = input.parse()?;
            Ok(Batch {
                element,
                collection,
            })
        },
        group.clone(),
    );
    match parsed {
        Ok(batch) => Some(batch),
        Err(_) => {
            errors.spanned(group, HELP);
            None
        }
    }
}

fn named<T>(arg: &RawArg, value: Option<T>) -> Option<Named<T>> {
    value.map(|value| Named {
        value,
        span: arg.name.span(),
    })
}

/// `refresh_ahead = 0.8`: a fraction of the TTL, strictly between 0 and 1.
fn fraction(arg: &RawArg, errors: &mut Errors) -> Option<f64> {
    const HELP: &str = "`refresh_ahead` takes the fraction of the TTL after which a hit refreshes the value, between 0 and 1, as in `refresh_ahead = 0.8`";
    match &arg.value {
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        })) => match f.base10_parse::<f64>() {
            Ok(v) if v > 0.0 && v < 1.0 => Some(v),
            _ => {
                errors.spanned(f, HELP);
                None
            }
        },
        Some(other) => {
            errors.spanned(other, HELP);
            None
        }
        None => {
            errors.spanned(&arg.name, HELP);
            None
        }
    }
}

/// `fleet_single_flight`, `= true`, `= false`, or `= "2s"` (the longest wait).
fn fleet(arg: &RawArg, errors: &mut Errors) -> Option<Fleet> {
    match &arg.value {
        None => Some(Fleet::On),
        Some(Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        })) => Some(if b.value { Fleet::On } else { Fleet::Off }),
        Some(_) => duration(arg, errors, "write `fleet_single_flight`, `fleet_single_flight = false`, or the longest wait for another instance's load, such as `fleet_single_flight = \"2s\"`").map(Fleet::Wait),
    }
}

/// A duration: a literal is checked here, so that a bad one is a compile error; any other
/// expression must give a `Duration` (checked by the compiler).
fn duration(arg: &RawArg, errors: &mut Errors, help: &str) -> Option<Ttl> {
    let name = &arg.name;
    let Some(value) = &arg.value else {
        errors.spanned(&arg.name, format!("`{name}` needs a value: {help}"));
        return None;
    };
    let (ms, span) = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => match humantime::parse_duration(&s.value()) {
            Ok(d) => (u64::try_from(d.as_millis()).unwrap_or(u64::MAX), s.span()),
            Err(e) => {
                errors.spanned(s, format!("invalid {name} \"{}\": {e}; {help}", s.value()));
                return None;
            }
        },
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u64>() {
            Ok(secs) => (secs.saturating_mul(1000), i.span()),
            Err(e) => {
                errors.spanned(i, format!("invalid {name}: {e}; {help}"));
                return None;
            }
        },
        Expr::Lit(other) => {
            errors.spanned(other, format!("invalid {name}: {help}"));
            return None;
        }
        other => return Some(Ttl::Expr(other.clone())),
    };
    if ms == 0 {
        if name == "ttl" {
            errors.at(span, "the ttl must be longer than zero: every cached value expires, so a missed invalidation heals itself");
        } else {
            errors.at(span, format!("`{name}` must be longer than zero"));
        }
        return None;
    }
    Some(Ttl::Millis(ms))
}
