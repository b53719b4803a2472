//! Every form of `#[cached]` the guide documents compiles, and the companion `key`
//! functions write the keys the templates promise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use cachemacro::{cached, with_cache, without_cache, Cache, KeyPart};

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

// A generic function; the companion `key` is generic too, and the type argument ends the
// key.
#[cached(key = "describe:<item>", ignore = [label])]
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

// A parameter the result does not depend on, left out on purpose; a handle that is no key
// part (`&Db`) stays out without saying so.
pub struct Db;

#[cached(key = "user:<id>", ignore = [request_id])]
async fn ignoring(db: &Db, id: u64, request_id: u128) -> u64 {
    let _ = (db, request_id);
    id
}

// Without a template, `ignore` leaves parameters out of the default key.
#[cached(ignore = [db])]
async fn ignoring_without_template(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

// A dynamic scope: one per tenant.
#[cached(key = "user:<id>", scope = "tenant-<tenant>")]
async fn tenant_user(tenant: &str, id: u64) -> String {
    format!("{tenant}/{id}")
}

// A `Result` alias is a `Result`: `Ok` is cached, `Err` is not. `result = true` says so.
pub type ApiResult<T> = Result<T, u16>;

#[cached(key = "api:<id>")]
async fn through_alias(id: u64) -> ApiResult<u64> {
    Ok(id)
}

#[cached(key = "api-declared:<id>", result = true)]
async fn declared_result(id: u64) -> ApiResult<u64> {
    Ok(id)
}

// Cache errors too.
#[cached(key = "api-every:<id>", result = false)]
async fn every_result(id: u64) -> Result<u64, String> {
    Ok(id)
}

pub type MaybeUser = Option<String>;

#[cached(key = "maybe:<id>", option = true)]
async fn declared_option(id: u64) -> MaybeUser {
    Some(id.to_string())
}

#[cached(key = "maybe-none:<id>", cache_none = true)]
async fn cache_none_alias(id: u64) -> MaybeUser {
    let _ = id;
    None
}

// A TTL from a constant, or any expression giving a `Duration`.
const USER_TTL: Duration = Duration::from_secs(300);

#[cached(key = "ttl-const:<id>", ttl = USER_TTL)]
async fn ttl_constant(id: u64) -> u64 {
    id
}

#[cached(key = "ttl-expr:<id>", ttl = Duration::from_secs(60 * 5))]
async fn ttl_expression(id: u64) -> u64 {
    id
}

// The cache as a `LazyLock<Cache>` itself.
#[cached(key = "lazy:<id>", cache = APP_CACHE)]
async fn lazy_cache(id: u64) -> u64 {
    id
}

// Key parts: derived, and from the `uuid`, `chrono` and `time` features.
#[derive(KeyPart)]
pub struct UserId(u64);

#[derive(KeyPart)]
pub enum Region {
    Eu,
    Us { state: String },
}

#[cached(key = "derived:<id>:<region>")]
async fn derived(id: UserId, region: Region) -> u64 {
    let _ = region;
    id.0
}

#[cached(key = "uuid:<id>:<day>:<at>")]
async fn foreign(id: uuid::Uuid, day: chrono::NaiveDate, at: time::OffsetDateTime) -> String {
    let _ = (day, at);
    id.to_string()
}

// Type arguments are part of the key.
#[cached(key = "typed:<id>")]
async fn typed<T: Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>(
    id: u64,
) -> T {
    let _ = id;
    T::default()
}

// An associated function of an inherent `impl`: companions beside it.
pub struct Repo;

impl Repo {
    #[cached(key = "repo:<id>")]
    pub async fn load(id: u64) -> u64 {
        id
    }
}

// When the source is slow or failing.
#[cached(
    key = "resilient:<id>",
    ttl = "1m",
    stale_for = "1h",
    soft_timeout = "100ms",
    hard_timeout = "2s",
    refresh_ahead = 0.8,
    fail_safe_throttle = "30s",
    fleet_single_flight
)]
async fn resilient(id: u64) -> Result<String, String> {
    Ok(format!("r{id}"))
}

const STALE: std::time::Duration = std::time::Duration::from_secs(3600);

// Durations from constants; fleet-wide single flight with a wait of its own, or off.
#[cached(key = "waits:<id>", stale_for = STALE, fleet_single_flight = "500ms")]
async fn waits(id: u64) -> u64 {
    id
}

#[cached(key = "alone:<id>", fleet_single_flight = false, hard_timeout = "1s")]
async fn alone(id: &str) -> String {
    id.to_owned()
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

        assert_eq!(ignoring(&Db, 1, 7).await, 1);
        assert_eq!(ignoring_without_template(&Db, 1).await, 1);
        assert_eq!(tenant_user("acme", 1).await, "acme/1");
        assert_eq!(through_alias(1).await, Ok(1));
        assert_eq!(declared_result(1).await, Ok(1));
        assert_eq!(every_result(1).await, Ok(1));
        assert_eq!(declared_option(1).await, Some("1".into()));
        assert_eq!(cache_none_alias(1).await, None);
        assert_eq!(ttl_constant(1).await, 1);
        assert_eq!(ttl_expression(1).await, 1);
        assert_eq!(lazy_cache(1).await, 1);
        assert_eq!(derived(UserId(4), Region::Us { state: "ny".into() }).await, 4);
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 17).unwrap();
        assert_eq!(foreign(uuid::Uuid::nil(), day, at).await, uuid::Uuid::nil().to_string());
        assert_eq!(typed::<u8>(1).await, 0);
        assert_eq!(Repo::load(1).await, 1);

        // Tests run cached functions with their own cache, or without caching.
        with_cache(Cache::in_memory(), async {
            assert_eq!(get_user(8).await, 16);
        })
        .await;
        without_cache(async {
            assert_eq!(get_user(9).await, 18);
        })
        .await;
    });

    assert_eq!(get_user::key(7), "user:7");
    assert_eq!(pair::key(1, "a:b".into()), "pair:1:a%3Ab");
    assert_eq!(profile::key(&User { id: 9, name: String::new() }), "profile:9");
    assert_eq!(first::key((3, "z".into())), "first:3");
    assert_eq!(literal_brackets::key(5), "lit<x>{y}:5");
    let scoped_key = scoped::key(1);
    assert_eq!((scoped_key.scope(), scoped_key.key()), ("users", "scoped:1"));
    assert_eq!(scoped::scope(), "users");
    assert_eq!(describe::key(4u8), "describe:4<u8>");
    assert!(answer::key().ends_with("::answer"), "{}", answer::key());
    assert!(
        no_key_with_args::key(1, "a").ends_with("::no_key_with_args:1:a"),
        "{}",
        no_key_with_args::key(1, "a")
    );
    assert_eq!(visible::key(1), "visible:1");
    assert_eq!(nested::nested::key(1), "nested:1");
    scoped::remove_local(1);

    assert_eq!(ignoring::key(1), "user:1");
    assert_eq!(tenant_user::scope("acme"), "tenant-acme");
    assert_eq!(tenant_user::key("acme", 1).key(), "user:1");
    assert_eq!(derived::key(UserId(4), Region::Eu), "derived:4:Eu");
    assert_eq!(
        derived::key(UserId(4), Region::Us { state: "ny".into() }),
        "derived:4:Us(ny)"
    );
    assert!(typed::key::<u8>(1).starts_with("typed:1<"));
    assert_eq!(Repo::load_key(1), "repo:1");
    let _ = rt.block_on(async {
        let _ = resilient::refresh(1).await;
        let _: Result<String, String> = resilient::uncached(1).await;
        let _ = waits(1).await;
        alone("a").await
    });
}
