//! Keys the macro builds: templates, placeholder encoding, fields, defaults, generics.

use std::borrow::Cow;

use cachemacro::{cached, Cache, KeyPart};
use once_cell::sync::Lazy;
use serde::{Deserialize, Serialize};

static CACHE: Lazy<Cache> = Lazy::new(Cache::in_memory);

#[cached(key = "user:<a>:<b>", cache = &*CACHE)]
async fn pair(a: String, b: String) -> String {
    format!("{a}/{b}")
}

#[test]
fn separators_inside_values_cannot_make_two_argument_lists_collide() {
    let left = pair::key("x:y".into(), "z".into());
    let right = pair::key("x".into(), "y:z".into());
    assert_eq!(left, "user:x%3Ay:z");
    assert_eq!(right, "user:x:y%3Az");
    assert_ne!(left, right);
}

#[tokio::test]
async fn colliding_looking_arguments_get_their_own_values() {
    assert_eq!(pair("x:y".into(), "z".into()).await, "x:y/z");
    assert_eq!(pair("x".into(), "y:z".into()).await, "x/y:z");
}

#[derive(Clone, Serialize, Deserialize)]
struct Request {
    tenant: String,
    page: (u32, u32),
}

#[cached(key = "{req.tenant}:orders:<req.page.0>,<req.page.1>:<<raw>>", cache = &*CACHE)]
async fn orders(req: &Request, verbose: bool) -> Vec<u32> {
    let _ = verbose;
    vec![req.page.0, req.page.1]
}

#[test]
fn placeholders_reach_fields_and_brackets_can_be_escaped() {
    let req = Request {
        tenant: "acme".into(),
        page: (2, 50),
    };
    // `verbose` is not in the template, so the companion does not take it.
    assert_eq!(orders::key(&req), "acme:orders:2,50:<raw>");
}

#[cached(cache = &*CACHE)]
async fn no_template(id: u64, name: &str) -> String {
    format!("{id}{name}")
}

#[test]
fn without_a_template_the_key_is_the_path_and_every_argument() {
    assert_eq!(no_template::key(7, "a b"), "keys::no_template:7:a%20b");
}

#[cached(key = "opt:<o>:<v>:<t>", cache = &*CACHE)]
async fn composite(o: Option<Option<u8>>, v: Vec<&str>, t: (i64, char)) -> u8 {
    0
}

#[test]
fn options_sequences_and_tuples_are_key_parts() {
    assert_eq!(composite::key(None, vec![], (-1, ':')), "opt:~:[]:(-1,%3A)");
    assert_eq!(
        composite::key(Some(None), vec!["a,b"], (0, 'x')),
        "opt:~~:[a%2Cb]:(0,x)"
    );
    assert_eq!(
        composite::key(Some(Some(3)), vec!["a", "b"], (0, 'x')),
        "opt:3:[a,b]:(0,x)"
    );
}

/// A user type made a key part by hand.
struct Sku(u32);

impl KeyPart for Sku {
    fn write_key_part(&self, out: &mut String) {
        out.push_str("sku");
        self.0.write_key_part(out);
    }
}

#[cached(key = "stock:<sku>", cache = &*CACHE)]
async fn stock(sku: Sku) -> u32 {
    sku.0 * 2
}

#[tokio::test]
async fn user_types_implement_key_part() {
    assert_eq!(stock::key(Sku(5)), "stock:sku5");
    assert_eq!(stock(Sku(5)).await, 10);
    assert!(CACHE.contains_local("stock:sku5"));
}

#[cached(key = "generic:<id>", cache = &*CACHE)]
async fn generic<K, V>(id: K, fallback: V) -> V
where
    K: KeyPart + Send,
    V: Clone + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let _ = id;
    fallback
}

#[tokio::test]
async fn generic_functions_and_their_companions_work() {
    assert_eq!(generic(1u8, "first".to_string()).await, "first");
    assert_eq!(generic(1u8, "second".to_string()).await, "first", "a hit");
    // The companion takes only the generics its parameters use.
    assert_eq!(generic::key(Cow::Borrowed("a:b")), "generic:a%3Ab");
    generic::remove_cached(1u8).await.unwrap();
    assert_eq!(generic(1u8, "third".to_string()).await, "third");
}

mod visibility {
    use super::*;

    #[cached(key = "vis:<id>", cache = &*CACHE)]
    pub(crate) async fn crate_visible(id: u32) -> u32 {
        id
    }
}

#[tokio::test]
async fn the_companion_has_the_functions_visibility() {
    assert_eq!(visibility::crate_visible(3).await, 3);
    assert_eq!(visibility::crate_visible::key(3), "vis:3");
}

/// Keeps its doc comment.
#[cached(key = "doc:<id>", cache = &*CACHE)]
#[allow(clippy::unused_async)]
async fn documented(id: u32) -> u32 {
    id
}

#[tokio::test]
async fn attributes_and_docs_are_kept() {
    assert_eq!(documented(1).await, 1);
}
