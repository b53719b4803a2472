//! Every form of `#[cached]` the guide documents compiles, and the companion `key`
//! functions write the keys the templates promise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use cachemacro::{cached, Cache, KeyPart};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    name: String,
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

static APP_CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

// A `<name>` placeholder, a duration string.
#[cached(key = "user:<user_id>", ttl = "5m")]
async fn get_user(user_id: u64) -> u64 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    user_id * 2
}

// `<a>` and `{b}` placeholders, a ttl in seconds.
#[cached(key = "pair:<a>:{b}", ttl = 60)]
async fn pair(a: u32, b: String) -> String {
    format!("{a}/{b}")
}

// A field of a parameter, through a reference; a schema version for the cached type.
#[cached(key = "profile:<user.id>", version = 2)]
async fn profile(user: &User) -> String {
    user.name.clone()
}

// A tuple field.
#[cached(key = "first:<pair.0>")]
async fn first(pair: (u32, String)) -> u32 {
    pair.0
}

// `<<`, `>>`, `{{` and `}}` write literal brackets.
#[cached(key = "lit<<x>>{{y}}:<id>")]
async fn literal_brackets(id: u32) -> u32 {
    id
}

// A scope, and a cache given as an expression.
#[cached(key = "scoped:<id>", scope = "users", cache = &*APP_CACHE)]
async fn scoped(id: u32) -> u32 {
    id + 1
}

// `None` is cached too.
#[cached(key = "find:<id>", cache_none = true)]
async fn find(id: u32) -> Option<String> {
    (id == 1).then(|| "one".to_owned())
}

// `None` is not cached (the default); a `cache_none = false` says so explicitly.
#[cached(key = "lookup:<id>", cache_none = false)]
async fn lookup(id: u32) -> Option<u32> {
    Some(id)
}

// A generic function; the companion `key` is generic over what the key reads.
#[cached(key = "describe:<item>")]
async fn describe<T>(item: T, label: &'static str) -> String
where
    T: KeyPart + Send + Sync + 'static,
{
    label.to_owned()
}

// No key: the function's path and every argument.
#[cached]
async fn answer() -> u32 {
    42
}

#[cached(ttl = "1h 30m")]
async fn no_key_with_args(id: u32, name: &str) -> String {
    format!("{id}:{name}")
}

// A `Result`, with `?` in the body: only `Ok` is cached.
#[cached(key = "parse:<text>")]
async fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.trim().parse()?;
    Ok(n)
}

// A visibility: the companion module gets the same one.
#[cached(key = "visible:<id>")]
pub(crate) async fn visible(id: u32) -> u32 {
    id
}

mod nested {
    use cachemacro::cached;

    #[cached(key = "nested:<id>")]
    pub(crate) async fn nested(id: u32) -> u32 {
        id
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(get_user(7).await, 14);
        assert_eq!(get_user(7).await, 14);
        assert_eq!(LOADS.load(Ordering::SeqCst), 1, "the second call is a cache hit");
        get_user::remove_cached(7).await.unwrap();
        assert_eq!(get_user(7).await, 14);
        assert_eq!(LOADS.load(Ordering::SeqCst), 2, "remove_cached forces a reload");

        assert_eq!(pair(1, "x".into()).await, "1/x");
        let user = User { id: 9, name: "Ada".into() };
        assert_eq!(profile(&user).await, "Ada");
        assert_eq!(first((3, "z".into())).await, 3);
        assert_eq!(literal_brackets(5).await, 5);
        assert_eq!(scoped(1).await, 2);
        assert_eq!(find(2).await, None);
        assert_eq!(lookup(2).await, Some(2));
        assert_eq!(describe(4u8, "four").await, "four");
        assert_eq!(answer().await, 42);
        assert_eq!(no_key_with_args(1, "a").await, "1:a");
        assert_eq!(parse("12".into()).await, Ok(12));
        assert!(parse("x".into()).await.is_err());
        assert_eq!(visible(1).await, 1);
        assert_eq!(nested::nested(1).await, 1);
    });

    assert_eq!(get_user::key(7), "user:7");
    assert_eq!(pair::key(1, "a:b".into()), "pair:1:a%3Ab");
    assert_eq!(profile::key(&User { id: 9, name: String::new() }), "profile:9");
    assert_eq!(first::key((3, "z".into())), "first:3");
    assert_eq!(literal_brackets::key(5), "lit<x>{y}:5");
    assert_eq!(scoped::key(1), "scoped:1");
    assert_eq!(describe::key(4u8), "describe:4");
    assert!(answer::key().ends_with("::answer"), "{}", answer::key());
    assert!(
        no_key_with_args::key(1, "a").ends_with("::no_key_with_args:1:a"),
        "{}",
        no_key_with_args::key(1, "a")
    );
    assert_eq!(visible::key(1), "visible:1");
    assert_eq!(nested::nested::key(1), "nested:1");
    scoped::remove_local(1);
}
