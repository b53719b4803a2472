//! Keys the macro builds: templates, placeholder encoding, fields, defaults, generics,
//! parameters left out on purpose (`ignore`), and the proof that every key encoding is
//! injective, nested to any depth (`no_two_values_of_one_type_share_a_key`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cachemacro::key::escape;
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

#[cached(key = "{req.tenant}:orders:<req.page.0>,<req.page.1>:<<raw>>", ignore = [verbose], cache = &*CACHE)]
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
    // `verbose` is left out of the template (and says so with `ignore`), so the companion
    // does not take it.
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

#[cached(key = "generic:<id>", cache = &*CACHE, ignore = [fallback])]
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
    // The companion takes the parameters the key reads, and every type parameter: the type
    // arguments are part of the key.
    assert_eq!(
        generic::key::<_, String>(Cow::Borrowed("a:b")),
        format!(
            "generic:a%3Ab<{},{}>",
            escape(std::any::type_name::<Cow<str>>()),
            escape(std::any::type_name::<String>())
        )
    );
    generic::remove_cached::<_, String>(1u8).await.unwrap();
    assert_eq!(generic(1u8, "third".to_string()).await, "third");
}

static TYPED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Apple(u32);

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Pear(u32);

#[cached(key = "load:<id>", cache = &*CACHE)]
async fn load<T>(id: u64) -> T
where
    T: Default + Clone + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let _ = id;
    TYPED_LOADS.fetch_add(1, Ordering::SeqCst);
    T::default()
}

#[tokio::test]
async fn type_arguments_are_part_of_the_key() {
    // Without them, `load::<Apple>(1)` and `load::<Pear>(1)` shared one key, and each call
    // evicted the other's value: 6 calls, 6 loads.
    for _ in 0..3 {
        assert_eq!(load::<Apple>(1).await, Apple(0));
        assert_eq!(load::<Pear>(1).await, Pear(0));
    }
    assert_eq!(TYPED_LOADS.load(Ordering::SeqCst), 2, "one load per type");
    assert_eq!(
        load::key::<Apple>(1),
        format!("load:1<{}>", escape(std::any::type_name::<Apple>()))
    );
    assert_ne!(load::key::<Apple>(1), load::key::<Pear>(1));
}

static CONST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "page:<id>", cache = &*CACHE)]
async fn page<const SIZE: usize>(id: u64) -> usize {
    let _ = id;
    CONST_LOADS.fetch_add(1, Ordering::SeqCst);
    SIZE
}

#[tokio::test]
async fn const_arguments_are_part_of_the_key() {
    assert_eq!(page::<10>(1).await, 10);
    assert_eq!(page::<20>(1).await, 20);
    assert_eq!(page::<10>(1).await, 10);
    assert_eq!(CONST_LOADS.load(Ordering::SeqCst), 2);
    assert_eq!(page::key::<10>(1), "page:1<10>");
}

/// A handle that cannot be part of a key, like a database pool.
struct Db;

static IGNORED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "report:<id>", ignore = [request_id], cache = &*CACHE)]
async fn report(db: &Db, id: u64, request_id: u128) -> u64 {
    let _ = (db, request_id);
    IGNORED_LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn ignored_parameters_and_handles_stay_out_of_the_key() {
    // `db` is not a key part: it may be left out silently. `request_id` could be part of the
    // key: leaving it out takes `ignore`. Both calls share the entry of `report:1`.
    assert_eq!(report(&Db, 1, 100).await, 1);
    assert_eq!(report(&Db, 1, 200).await, 1);
    assert_eq!(IGNORED_LOADS.load(Ordering::SeqCst), 1);
    assert_eq!(report::key(1), "report:1");
}

#[cached(ignore = [db, trace], cache = &*CACHE)]
async fn no_template_ignoring(db: &Db, id: u64, trace: bool) -> u64 {
    let _ = (db, trace);
    id
}

#[test]
fn without_a_template_ignore_leaves_parameters_out_of_the_default_key() {
    assert_eq!(no_template_ignoring::key(7), "keys::no_template_ignoring:7");
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

// ---- Injectivity, proved by exhaustive search ----
//
// `Enumerate` lists values of a type, the tricky ones first: the empty string, the reserved
// characters, `~` and `%`, empty sequences, `None`. Containers build their values from
// their items' (sequences of up to three items from the first few, one item from all), so
// the search covers every impl nested three levels deep in a few seconds. For each type,
// no two distinct values (told apart by `Debug`) may write one key text.

/// The values of a type that the search tries.
trait Enumerate: Sized {
    fn values() -> Vec<Self>;
}

/// How many of an item type's first values build the sequences and tuples around it.
const POOL: usize = 4;

/// The characters strings are made of: structure characters, and one plain letter.
const ALPHABET: [char; 9] = ['a', '~', '%', ',', '[', ']', '(', ')', ':'];

impl Enumerate for String {
    fn values() -> Vec<Self> {
        let mut out = vec![String::new()];
        out.extend(ALPHABET.iter().map(|c| c.to_string()));
        for a in ALPHABET {
            for b in ALPHABET {
                out.push(format!("{a}{b}"));
            }
        }
        out.extend(["%25", "%7E", "%5B%5D", " ", "é", "a b"].map(String::from));
        out
    }
}

impl Enumerate for &'static str {
    fn values() -> Vec<Self> {
        String::values()
            .into_iter()
            .map(|s| &*Box::leak(s.into_boxed_str()))
            .collect()
    }
}

impl Enumerate for char {
    fn values() -> Vec<Self> {
        let mut out = ALPHABET.to_vec();
        out.extend([' ', 'é', '\n', '|', '{', '<', '*', '\\']);
        out
    }
}

impl Enumerate for bool {
    fn values() -> Vec<Self> {
        vec![false, true]
    }
}

macro_rules! enumerate_all_integers {
    ($($t:ty),*) => {$(
        impl Enumerate for $t {
            fn values() -> Vec<Self> {
                (<$t>::MIN..=<$t>::MAX).collect()
            }
        }
    )*};
}
enumerate_all_integers!(u8, i8);

macro_rules! enumerate_edge_integers {
    ($($t:ty),*) => {$(
        impl Enumerate for $t {
            #[allow(unused_comparisons)]
            fn values() -> Vec<Self> {
                let mut out = vec![<$t>::MIN, <$t>::MAX, 0, 1, 9, 10, 11, 100];
                if <$t>::MIN < 0 {
                    out.extend([0, 1, 9, 10].map(|v: $t| v.wrapping_neg()));
                }
                out
            }
        }
    )*};
}
enumerate_edge_integers!(u16, i16, u32, i32, u64, i64, u128, i128, usize, isize);

macro_rules! enumerate_floats {
    ($($t:ident),*) => {$(
        impl Enumerate for $t {
            fn values() -> Vec<Self> {
                let (a, b) = (0.1 as $t, 0.2 as $t);
                vec![
                    0.0, -0.0, a, b, a + b, 0.3, 1.0, -1.0, 1.5, 100.0, 1e-7, 1e21, 123456.79,
                    $t::MIN_POSITIVE, $t::MAX, $t::MIN, $t::EPSILON, $t::INFINITY,
                    $t::NEG_INFINITY, $t::NAN,
                ]
            }
        }
    )*};
}
enumerate_floats!(f32, f64);

/// Every subset of the first values of `T` (one of each).
fn subsets<T: Enumerate + Clone>() -> Vec<Vec<T>> {
    let pool: Vec<T> = T::values().into_iter().take(POOL).collect();
    (0..1u32 << pool.len())
        .map(|mask| {
            (0..pool.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| pool[i].clone())
                .collect()
        })
        .collect()
}

impl<T: Enumerate + Clone + Ord> Enumerate for BTreeSet<T> {
    fn values() -> Vec<Self> {
        subsets::<T>()
            .into_iter()
            .map(BTreeSet::from_iter)
            .collect()
    }
}

impl<T: Enumerate + Clone + Eq + std::hash::Hash> Enumerate for HashSet<T> {
    fn values() -> Vec<Self> {
        subsets::<T>().into_iter().map(HashSet::from_iter).collect()
    }
}

impl<V: Enumerate + Clone> Enumerate for BTreeMap<u8, V> {
    fn values() -> Vec<Self> {
        // The keys 0..n, each with every value, and the same values under other keys.
        let mut out = vec![BTreeMap::new()];
        for v in V::values() {
            out.push(BTreeMap::from([(0, v.clone())]));
            out.push(BTreeMap::from([(1, v.clone())]));
        }
        for pair in pairs::<V, V>() {
            out.push(BTreeMap::from([(0, pair.0.clone()), (1, pair.1)]));
        }
        out
    }
}

impl<T: Enumerate> Enumerate for Option<T> {
    fn values() -> Vec<Self> {
        let mut out = vec![None];
        out.extend(T::values().into_iter().map(Some));
        out
    }
}

/// Sequences of items: every single item, and up to three of the first `POOL`.
fn sequences<T: Enumerate + Clone>() -> Vec<Vec<T>> {
    let all = T::values();
    let pool: Vec<T> = all.iter().take(POOL).cloned().collect();
    let mut out: Vec<Vec<T>> = vec![vec![]];
    out.extend(all.into_iter().map(|x| vec![x]));
    for a in &pool {
        for b in &pool {
            out.push(vec![a.clone(), b.clone()]);
            for c in &pool {
                out.push(vec![a.clone(), b.clone(), c.clone()]);
            }
        }
    }
    out
}

impl<T: Enumerate + Clone> Enumerate for Vec<T> {
    fn values() -> Vec<Self> {
        sequences()
    }
}

impl<T: Enumerate + Clone> Enumerate for Box<[T]> {
    fn values() -> Vec<Self> {
        sequences().into_iter().map(Vec::into_boxed_slice).collect()
    }
}

impl<T: Enumerate + Clone> Enumerate for [T; 0] {
    fn values() -> Vec<Self> {
        vec![[]]
    }
}

impl<T: Enumerate + Clone> Enumerate for [T; 1] {
    fn values() -> Vec<Self> {
        T::values().into_iter().map(|x| [x]).collect()
    }
}

impl<T: Enumerate + Clone> Enumerate for [T; 2] {
    fn values() -> Vec<Self> {
        pairs::<T, T>().into_iter().map(|(a, b)| [a, b]).collect()
    }
}

/// Every `a` with the first `POOL` values of `B`, and the first `POOL` of `A` with every `b`.
fn pairs<A: Enumerate + Clone, B: Enumerate + Clone>() -> Vec<(A, B)> {
    let (all_a, all_b) = (A::values(), B::values());
    let mut out = Vec::new();
    for a in &all_a {
        for b in all_b.iter().take(POOL) {
            out.push((a.clone(), b.clone()));
        }
    }
    for a in all_a.iter().take(POOL) {
        for b in &all_b {
            out.push((a.clone(), b.clone()));
        }
    }
    out
}

impl<A: Enumerate + Clone> Enumerate for (A,) {
    fn values() -> Vec<Self> {
        A::values().into_iter().map(|a| (a,)).collect()
    }
}

impl<A: Enumerate + Clone, B: Enumerate + Clone> Enumerate for (A, B) {
    fn values() -> Vec<Self> {
        pairs()
    }
}

impl<A: Enumerate + Clone, B: Enumerate + Clone, C: Enumerate + Clone> Enumerate for (A, B, C) {
    fn values() -> Vec<Self> {
        pairs::<A, (B, C)>()
            .into_iter()
            .map(|(a, (b, c))| (a, b, c))
            .collect()
    }
}

macro_rules! enumerate_pointers {
    ($($p:ident),*) => {$(
        impl<T: Enumerate> Enumerate for $p<T> {
            fn values() -> Vec<Self> {
                T::values().into_iter().map($p::new).collect()
            }
        }
    )*};
}
enumerate_pointers!(Box, Arc, Rc);

impl Enumerate for Cow<'static, str> {
    fn values() -> Vec<Self> {
        String::values().into_iter().map(Cow::Owned).collect()
    }
}

// Derived key parts: a newtype (writes its field as it is), a struct, a unit struct, a
// generic struct, and an enum with every kind of variant.

#[derive(Clone, Debug, KeyPart)]
struct Newtype(String);

#[derive(Clone, Debug, KeyPart)]
struct Named {
    first: Option<String>,
    second: u8,
}

#[derive(Clone, Debug, KeyPart)]
struct Unit;

#[derive(Clone, Debug, KeyPart)]
struct Generic<T>(T, bool);

#[derive(Clone, Debug, KeyPart)]
enum Shape {
    Empty,
    Circle(String),
    Rect { w: Option<String>, h: Vec<String> },
    Tuple(),
    Braces {},
}

impl Enumerate for Newtype {
    fn values() -> Vec<Self> {
        String::values().into_iter().map(Newtype).collect()
    }
}

impl Enumerate for Named {
    fn values() -> Vec<Self> {
        pairs::<Option<String>, u8>()
            .into_iter()
            .map(|(first, second)| Named { first, second })
            .collect()
    }
}

impl Enumerate for Unit {
    fn values() -> Vec<Self> {
        vec![Unit]
    }
}

impl<T: Enumerate + Clone> Enumerate for Generic<T> {
    fn values() -> Vec<Self> {
        pairs::<T, bool>()
            .into_iter()
            .map(|(t, b)| Generic(t, b))
            .collect()
    }
}

impl Enumerate for Shape {
    fn values() -> Vec<Self> {
        let mut out = vec![Shape::Empty, Shape::Tuple(), Shape::Braces {}];
        out.extend(String::values().into_iter().map(Shape::Circle));
        out.extend(
            pairs::<Option<String>, Vec<String>>()
                .into_iter()
                .map(|(w, h)| Shape::Rect { w, h }),
        );
        out
    }
}

// The types of the `uuid`, `chrono` and `time` features: edge values.

impl Enumerate for uuid::Uuid {
    fn values() -> Vec<Self> {
        [0, 1, u128::MAX, 0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8]
            .map(uuid::Uuid::from_u128)
            .to_vec()
    }
}

impl Enumerate for chrono::NaiveDate {
    fn values() -> Vec<Self> {
        [
            (2024, 5, 17),
            (0, 1, 1),
            (-1, 12, 31),
            (9999, 12, 31),
            (10000, 1, 1),
            (-44, 3, 15),
        ]
        .map(|(y, m, d)| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
        .to_vec()
    }
}

impl Enumerate for chrono::NaiveTime {
    fn values() -> Vec<Self> {
        [
            (0, 0, 0, 0),
            (13, 5, 0, 250_000_000),
            (13, 5, 0, 250_000),
            (13, 5, 0, 250),
            (13, 5, 0, 25),
        ]
        .into_iter()
        .map(|(h, m, s, n)| chrono::NaiveTime::from_hms_nano_opt(h, m, s, n).unwrap())
        // A leap second.
        .chain([chrono::NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap()])
        .collect()
    }
}

impl Enumerate for chrono::NaiveDateTime {
    fn values() -> Vec<Self> {
        pairs::<chrono::NaiveDate, chrono::NaiveTime>()
            .into_iter()
            .map(|(d, t)| d.and_time(t))
            .collect()
    }
}

impl Enumerate for chrono::DateTime<chrono::FixedOffset> {
    fn values() -> Vec<Self> {
        let offsets = [0, 3600, -3600, 2 * 3600 + 30 * 60, 75, -75];
        let mut out = Vec::new();
        for dt in chrono::NaiveDateTime::values() {
            for secs in offsets {
                let offset = chrono::FixedOffset::east_opt(secs).unwrap();
                out.push(dt.and_local_timezone(offset).unwrap());
            }
        }
        out
    }
}

impl Enumerate for chrono::DateTime<chrono::Utc> {
    fn values() -> Vec<Self> {
        chrono::NaiveDateTime::values()
            .into_iter()
            .map(|dt| dt.and_utc())
            .collect()
    }
}

impl Enumerate for time::Date {
    fn values() -> Vec<Self> {
        [
            (2024, 5, 17),
            (0, 1, 1),
            (-1, 12, 31),
            (9999, 12, 31),
            (-44, 3, 15),
        ]
        .map(|(y, m, d)| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
        })
        .to_vec()
    }
}

impl Enumerate for time::Time {
    fn values() -> Vec<Self> {
        [
            (0, 0, 0, 0),
            (13, 5, 0, 250_000_000),
            (13, 5, 0, 250_000),
            (13, 5, 0, 250),
            (23, 59, 59, 999_999_999),
        ]
        .map(|(h, m, s, n)| time::Time::from_hms_nano(h, m, s, n).unwrap())
        .to_vec()
    }
}

impl Enumerate for time::PrimitiveDateTime {
    fn values() -> Vec<Self> {
        pairs::<time::Date, time::Time>()
            .into_iter()
            .map(|(d, t)| time::PrimitiveDateTime::new(d, t))
            .collect()
    }
}

impl Enumerate for time::OffsetDateTime {
    fn values() -> Vec<Self> {
        let offsets = [
            (0, 0, 0),
            (1, 0, 0),
            (-1, 0, 0),
            (2, 30, 0),
            (0, 1, 15),
            (0, -1, -15),
        ];
        let mut out = Vec::new();
        for dt in time::PrimitiveDateTime::values() {
            for (h, m, s) in offsets {
                out.push(dt.assume_offset(time::UtcOffset::from_hms(h, m, s).unwrap()));
            }
        }
        out
    }
}

/// Checks that no two distinct values of `T` write one key text; returns how many values
/// it checked.
fn assert_injective<T: Enumerate + KeyPart + Debug>() -> usize {
    let mut seen: HashMap<String, String> = HashMap::new();
    for value in T::values() {
        let mut key = String::new();
        value.write_key_part(&mut key);
        let shown = format!("{value:?}");
        if let Some(other) = seen.insert(key.clone(), shown.clone()) {
            assert_eq!(
                other,
                shown,
                "{} writes `{key}` for two values",
                std::any::type_name::<T>()
            );
        }
    }
    seen.len()
}

/// The types nested around `T` at the innermost level, each checked.
fn level3<T: Enumerate + KeyPart + Debug + Clone>() -> usize {
    assert_injective::<T>()
        + assert_injective::<Option<T>>()
        + assert_injective::<Vec<T>>()
        + assert_injective::<[T; 2]>()
        + assert_injective::<(T,)>()
        + assert_injective::<(T, String)>()
        + assert_injective::<(u8, T, Option<String>)>()
        + assert_injective::<Box<[T]>>()
}

/// Two levels: `T` inside the containers of `level3`, and inside these.
fn level2<T: Enumerate + KeyPart + Debug + Clone>() -> usize {
    level3::<T>()
        + level3::<Option<T>>()
        + level3::<Vec<T>>()
        + level3::<[T; 1]>()
        + level3::<(T, Option<String>)>()
        + level3::<Generic<T>>()
}

/// Three levels of nesting around `T`.
fn level1<T: Enumerate + KeyPart + Debug + Clone>() -> usize {
    level2::<T>() + level2::<Option<T>>() + level2::<Vec<T>>() + level2::<(T, T)>()
}

#[test]
fn no_two_values_of_one_type_share_a_key() {
    let mut checked = 0;
    // Every impl, nested three levels deep.
    checked += level1::<String>();
    checked += level1::<Newtype>();
    checked += level1::<Shape>();
    checked += level1::<char>();
    checked += level1::<bool>();
    checked += level1::<i8>();
    checked += level1::<Unit>();
    // Every other impl, nested one or two levels.
    checked += level2::<&'static str>();
    checked += level2::<Cow<'static, str>>();
    checked += level2::<Named>();
    checked += level2::<u8>();
    checked += level3::<Box<String>>() + level3::<Arc<String>>() + level3::<Rc<Option<String>>>();
    checked += level3::<[String; 0]>();
    checked += level3::<(String, Vec<String>, Option<String>)>();
    checked += level3::<u16>() + level3::<i16>() + level3::<u32>() + level3::<i32>();
    checked += level3::<u64>() + level3::<i64>() + level3::<u128>() + level3::<i128>();
    checked += level3::<usize>() + level3::<isize>();
    checked += level3::<f64>() + level3::<f32>();
    checked += level3::<BTreeSet<String>>() + level3::<HashSet<u8>>();
    checked += level3::<BTreeMap<u8, String>>() + level3::<BTreeMap<u8, f64>>();
    checked += level3::<uuid::Uuid>();
    checked += level3::<chrono::NaiveDate>() + level3::<chrono::NaiveTime>();
    checked += level3::<chrono::NaiveDateTime>();
    checked += level3::<chrono::DateTime<chrono::FixedOffset>>();
    checked += level3::<chrono::DateTime<chrono::Utc>>();
    checked += level3::<time::Date>() + level3::<time::Time>();
    checked += level3::<time::PrimitiveDateTime>() + level3::<time::OffsetDateTime>();
    assert!(checked > 1_000_000, "the search covered {checked} values");
}

#[test]
fn the_collisions_of_issue_7_are_gone() {
    fn enc<T: KeyPart>(value: T) -> String {
        let mut key = String::new();
        value.write_key_part(&mut key);
        key
    }
    let empty: Vec<String> = vec![];
    assert_eq!(enc(&empty), "[]", "unchanged");
    assert_eq!(enc(vec![String::new()]), "[%]");
    assert_eq!(enc(vec![Some(String::new())]), "[%]");
    assert_eq!(enc(vec![None::<String>]), "[~]");
    assert_eq!(enc(None::<Vec<String>>), "~");
    assert_eq!(enc(Some(empty.clone())), "[]");
    assert_eq!(enc(vec![empty.clone()]), "[[]]");
    assert_eq!(enc(vec![vec![String::new()]]), "[[%]]");
    // Encodings that were already injective are byte-identical.
    assert_eq!(enc(vec![String::new(), String::new()]), "[,]");
    assert_eq!(
        enc([String::new()]),
        "[]",
        "an array's length is its type's"
    );
    assert_eq!(enc((String::new(),)), "()");
}

// Keys from templates: two placeholders, separated as the macro requires, stay injective
// whatever values they hold.

#[cached(key = "t:<a>:<b>", cache = &*CACHE)]
async fn colon_separated(a: Vec<Option<String>>, b: Option<Vec<String>>) -> u8 {
    0
}

#[cached(key = "t:<a>,<b>", cache = &*CACHE)]
async fn comma_separated(a: Option<Option<String>>, b: (String, Vec<String>)) -> u8 {
    0
}

#[cached(key = "t:<a>|~<b>", cache = &*CACHE)]
async fn bar_separated(a: Shape, b: Option<Option<String>>) -> u8 {
    0
}

fn assert_keys_injective<A, B, K>(key: impl Fn(A, B) -> K)
where
    A: Enumerate + Clone + Debug,
    B: Enumerate + Clone + Debug,
    K: Debug + Eq + std::hash::Hash,
{
    let mut seen = HashMap::new();
    for (a, b) in pairs::<A, B>() {
        let shown = format!("{a:?} / {b:?}");
        if let Some(other) = seen.insert(key(a, b), shown.clone()) {
            assert_eq!(other, shown, "two argument lists share a key");
        }
    }
}

#[cached(key = "t:<a>:<b>", cache = &*CACHE)]
async fn serialize_separated(a: Wrapper<Option<String>>, b: Either<String>) -> u8 {
    0
}

#[cached(key = "t:<a>,<b>", cache = &*CACHE)]
async fn serialize_comma_separated(a: Either<Vec<String>>, b: Loose) -> u8 {
    0
}

#[test]
fn templates_keep_keys_injective() {
    assert_keys_injective(colon_separated::key);
    assert_keys_injective(comma_separated::key);
    assert_keys_injective(bar_separated::key);
    assert_keys_injective(serialize_separated::key);
    assert_keys_injective(serialize_comma_separated::key);
}

/// An enum without variants has no values, and derives `KeyPart` all the same.
#[derive(KeyPart)]
#[allow(dead_code)]
enum Never {}

#[test]
fn floats_are_keys_by_exact_value() {
    let key = |x: f64| {
        let mut out = String::new();
        x.write_key_part(&mut out);
        out
    };
    assert_ne!(key(0.1 + 0.2), key(0.3), "0.1 + 0.2 is not 0.3");
    assert_eq!(key(0.3), "0.3");
    assert_ne!(key(0.0), key(-0.0));
    assert_eq!(key(f64::NAN), key(-f64::NAN), "every NaN is one key");
    assert_eq!(key(1e300), "1e300");
}

#[test]
fn equal_sets_and_maps_write_one_key_whatever_their_order() {
    let text = |part: &dyn Fn(&mut String)| {
        let mut out = String::new();
        part(&mut out);
        out
    };
    let words = ["pear", "apple", "fig", "kiwi", "plum", "date"];
    let forward: HashSet<String> = words.iter().map(|w| w.to_string()).collect();
    let mut backward = HashSet::with_capacity(64);
    for w in words.iter().rev() {
        backward.insert(w.to_string());
    }
    let sorted: BTreeSet<String> = words.iter().map(|w| w.to_string()).collect();
    let one = text(&|out| forward.write_key_part(out));
    assert_eq!(one, text(&|out| backward.write_key_part(out)));
    assert_eq!(one, text(&|out| sorted.write_key_part(out)));
    assert_eq!(one, "[apple,date,fig,kiwi,pear,plum]");
    let map: HashMap<u8, String> = (0..6).map(|i| (i, words[i as usize].into())).collect();
    let tree: BTreeMap<u8, String> = map.clone().into_iter().collect();
    assert_eq!(
        text(&|out| map.write_key_part(out)),
        text(&|out| tree.write_key_part(out))
    );
}

static PRICED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "priced:<amount>:<tags>", cache = &*CACHE)]
async fn priced(amount: f64, tags: HashSet<String>) -> String {
    PRICED_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{amount} {}", tags.len())
}

#[tokio::test]
async fn float_and_set_parameters_are_part_of_the_key() {
    let set = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<HashSet<_>>();
    priced(0.3, set(&["a", "b"])).await;
    priced(0.3, set(&["b", "a"])).await;
    assert_eq!(PRICED_RUNS.load(Ordering::SeqCst), 1, "one set, one entry");
    priced(0.1 + 0.2, set(&["a", "b"])).await;
    assert_eq!(PRICED_RUNS.load(Ordering::SeqCst), 2, "another amount");
    assert_eq!(priced::key(0.3, set(&["b", "a"])), "priced:0.3:[a,b]");
}

// Any `Serialize` type as a placeholder: what a user brings whose type is not a key part (a
// query struct, an enum, a newtype around a foreign id such as `uuid` 0.8's).

#[derive(Clone, Copy, Debug, Serialize)]
enum Status {
    Open,
    Closed,
}

#[derive(Clone, Debug, Serialize)]
struct SearchFilter {
    status: Status,
    tags: BTreeSet<String>,
    page: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

static SEARCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "search:<filter>", cache = &*CACHE)]
async fn search(filter: SearchFilter) -> u32 {
    SEARCH_RUNS.fetch_add(1, Ordering::SeqCst);
    filter.page
}

fn filter(status: Status, tags: &[&str], page: u32, owner: Option<&str>) -> SearchFilter {
    SearchFilter {
        status,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        page,
        owner: owner.map(String::from),
    }
}

#[tokio::test]
async fn a_serialize_struct_is_part_of_the_key() {
    let open = filter(Status::Open, &["b", "a"], 2, None);
    assert_eq!(search(open.clone()).await, 2);
    assert_eq!(search(filter(Status::Open, &["a", "b"], 2, None)).await, 2);
    assert_eq!(
        SEARCH_RUNS.load(Ordering::SeqCst),
        1,
        "an equal filter is a hit"
    );
    search(filter(Status::Closed, &["a", "b"], 2, None)).await;
    search(filter(Status::Open, &["a"], 2, None)).await;
    search(filter(Status::Open, &["a", "b"], 3, None)).await;
    search(filter(Status::Open, &["a", "b"], 2, Some("ada"))).await;
    assert_eq!(
        SEARCH_RUNS.load(Ordering::SeqCst),
        5,
        "every field is in the key"
    );
    assert_eq!(
        search::key(open),
        "search:(status=Open,tags=['a','b'],page=2)",
        "the key text is part of the stored format: it must not change"
    );
}

/// A foreign id that is `Serialize` but no key part, as `uuid` 0.8's `Uuid` is beside
/// cachemacro's `uuid` 1 feature: it serializes as hyphenated text.
#[derive(Clone, Copy, Debug)]
struct LegacyUuid(u128);

impl Serialize for LegacyUuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex = format!("{:032x}", self.0);
        let text = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        serializer.serialize_str(&text)
    }
}

/// The application's newtype around it.
#[derive(Clone, Copy, Debug, Serialize)]
struct OrderId(LegacyUuid);

static ORDER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "order:<id>:<status>", cache = &*CACHE)]
async fn order(id: OrderId, status: Status) -> u128 {
    ORDER_RUNS.fetch_add(1, Ordering::SeqCst);
    id.0 .0
}

#[tokio::test]
async fn a_newtype_around_a_foreign_id_and_an_enum_are_part_of_the_key() {
    let id = OrderId(LegacyUuid(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8));
    assert_eq!(
        order::key(id, Status::Open),
        "order:'67e55044-10b1-426f-9247-bb680e5fe0c8':Open"
    );
    assert_eq!(order(id, Status::Open).await, id.0 .0);
    assert_eq!(order(id, Status::Open).await, id.0 .0);
    order(id, Status::Closed).await;
    order(OrderId(LegacyUuid(1)), Status::Open).await;
    assert_eq!(ORDER_RUNS.load(Ordering::SeqCst), 3);
    order::remove_cached(id, Status::Open).await.unwrap();
    order(id, Status::Open).await;
    assert_eq!(
        ORDER_RUNS.load(Ordering::SeqCst),
        4,
        "the companion reaches it"
    );
}

#[derive(Clone, Debug, Serialize)]
struct Query {
    tenant: String,
    status: Status,
}

#[cached(key = "{q.tenant}:count:<q.status>", cache = &*CACHE)]
async fn count(q: &Query) -> u32 {
    q.tenant.len() as u32
}

#[cached(cache = &*CACHE)]
async fn without_template(q: &Query, statuses: Vec<Status>) -> usize {
    statuses.len() + q.tenant.len()
}

#[test]
fn serialize_fields_and_parameters_of_a_key_without_template_are_key_parts() {
    let q = Query {
        tenant: "acme".into(),
        status: Status::Closed,
    };
    assert_eq!(count::key(&q), "acme:count:Closed");
    assert_eq!(
        without_template::key(&q, vec![Status::Open, Status::Closed]),
        "keys::without_template:(tenant='acme',status=Closed):[Open,Closed]"
    );
}

#[test]
fn serialize_types_write_the_same_text_in_every_build() {
    // The encoding of each kind of serde data, written out: a change to one of these lines
    // is a change of every key that holds such a value.
    #[derive(Serialize)]
    enum Kinds {
        Unit,
        Newtype(i8),
        Tuple(u8, char),
        Struct {
            a: Option<bool>,
            b: Option<()>,
        },
        #[serde(rename = "2x")]
        Renamed,
    }
    #[derive(Serialize)]
    struct Empty {}
    #[derive(Serialize)]
    struct UnitStruct;
    let text = |value: &dyn erased::Value| value.text();
    assert_eq!(text(&Kinds::Unit), "Unit");
    assert_eq!(text(&Kinds::Newtype(-1)), "Newtype(-1)");
    assert_eq!(text(&Kinds::Tuple(1, ':')), "Tuple(1,'%3A')");
    assert_eq!(
        text(&Kinds::Struct {
            a: Some(true),
            b: None
        }),
        "Struct(a=~true,b=~)"
    );
    assert_eq!(text(&Kinds::Renamed), "$2x");
    assert_eq!(text(&Empty {}), "(=)");
    assert_eq!(text(&UnitStruct), "()");
    assert_eq!(text(&"it's a:b"), "'it%27s%20a%3Ab'");
    assert_eq!(text(&vec![0.5f64, f64::NAN]), "[0.5,NaN]");
    assert_eq!(text(&(1u8, None::<u8>, Some(Some(2u8)))), "(1,~,~~2)");
    assert_eq!(
        text(&HashMap::from([("b", 2), ("a", 1)])),
        "['a'=1,'b'=2]",
        "a map's entries in sorted order"
    );
    assert_eq!(text(&BTreeMap::<u8, u8>::new()), "[=]");
}

/// `write_serialized` on values of different types, for the table above.
mod erased {
    pub trait Value {
        fn text(&self) -> String;
    }
    impl<T: serde::Serialize> Value for T {
        fn text(&self) -> String {
            let mut out = String::new();
            cachemacro::key::write_serialized(self, &mut out);
            out
        }
    }
}

// The injectivity search, through `Serialize`: every kind of serde data (unit, newtype,
// tuple and struct variants; renamed variants that look like a number, a bool or nothing;
// skipped fields; untagged enums that mix numbers, text, bools, units and maps), nested
// three levels in serde's containers, and inside key parts' containers.

/// A `Serialize` value as a key part, written as a placeholder of its type is.
#[derive(Clone, Debug)]
struct Ser<T>(T);

impl<T: Serialize> KeyPart for Ser<T> {
    fn write_key_part(&self, out: &mut String) {
        cachemacro::key::write_serialized(&self.0, out);
    }
}

impl<T: Enumerate> Enumerate for Ser<T> {
    fn values() -> Vec<Self> {
        T::values().into_iter().map(Ser).collect()
    }
}

#[derive(Clone, Debug, Serialize)]
struct Wrapper<T>(T);

impl<T: Enumerate> Enumerate for Wrapper<T> {
    fn values() -> Vec<Self> {
        T::values().into_iter().map(Wrapper).collect()
    }
}

/// A generic enum with every kind of variant around `T`.
#[derive(Clone, Debug, Serialize)]
enum Either<T> {
    Neither,
    Left(T),
    Right(T, u8),
    Both { left: T, right: Option<T> },
}

impl<T: Enumerate + Clone> Enumerate for Either<T> {
    fn values() -> Vec<Self> {
        let mut out = vec![Either::Neither];
        out.extend(T::values().into_iter().map(Either::Left));
        out.extend(
            pairs::<T, u8>()
                .into_iter()
                .map(|(t, n)| Either::Right(t, n)),
        );
        out.extend(
            pairs::<T, Option<T>>()
                .into_iter()
                .map(|(left, right)| Either::Both { left, right }),
        );
        out
    }
}

/// Variants whose names look like other data once renamed.
#[derive(Clone, Debug, Serialize)]
enum Odd {
    Plain,
    #[serde(rename = "1")]
    Digit,
    #[serde(rename = "-1")]
    Minus,
    #[serde(rename = "true")]
    True,
    #[serde(rename = "NaN")]
    NaN,
    #[serde(rename = "")]
    Nameless,
    #[serde(rename = "a'b=c,d(e)")]
    Punctuated(u8),
    #[serde(rename = "$")]
    Dollar,
    Tuple(),
    Struct {},
}

impl Enumerate for Odd {
    fn values() -> Vec<Self> {
        let mut out = vec![
            Odd::Plain,
            Odd::Digit,
            Odd::Minus,
            Odd::True,
            Odd::NaN,
            Odd::Nameless,
            Odd::Dollar,
            Odd::Tuple(),
            Odd::Struct {},
        ];
        out.extend([0, 1].map(Odd::Punctuated));
        out
    }
}

/// Fields that are left out when `None`: a struct is written with its fields' names.
#[derive(Clone, Debug, Serialize)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<String>,
    #[serde(rename = "c=d")]
    c: Option<u8>,
}

impl Enumerate for Sparse {
    fn values() -> Vec<Self> {
        let texts = [None, Some(String::new()), Some("a".to_owned())];
        let mut out = Vec::new();
        for a in &texts {
            for b in &texts {
                for c in [None, Some(0)] {
                    out.push(Sparse {
                        a: a.clone(),
                        b: b.clone(),
                        c,
                    });
                }
            }
        }
        out
    }
}

/// Data of every kind in one position: serde writes each variant as its content alone. (Not
/// a `char` beside a `String`: a `char` is written as the one-character string it is.)
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum Loose {
    Int(i8),
    Float(f64),
    Text(String),
    Flag(bool),
    Maybe(Option<u8>),
    Unit,
    Empty {},
    List(Vec<u8>),
    Pair(u8, u8),
    Map(BTreeMap<u8, u8>),
    Odd(Odd),
    Sparse(Sparse),
    Bytes(Bytes),
}

/// Bytes, as `serde_bytes` serializes them.
#[derive(Clone, Debug)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl Enumerate for Loose {
    fn values() -> Vec<Self> {
        let mut out = vec![Loose::Unit, Loose::Empty {}];
        out.extend([-1, 0, 1, 10].map(Loose::Int));
        out.extend(f64::values().into_iter().map(Loose::Float));
        // Texts that look like the other kinds' data.
        let texts = [
            "", "a", "1", "-1", "1.0", "true", "NaN", "~", "()", "[]", "#", "$1", "'",
        ];
        out.extend(texts.map(|t| Loose::Text(t.to_owned())));
        out.extend(bool::values().into_iter().map(Loose::Flag));
        out.extend([None, Some(0), Some(1)].map(Loose::Maybe));
        out.extend(
            sequences::<bool>()
                .into_iter()
                .map(|v| Loose::List(v.into_iter().map(u8::from).collect())),
        );
        out.extend(
            sequences::<bool>()
                .into_iter()
                .map(|v| Loose::Bytes(Bytes(v.into_iter().map(u8::from).collect()))),
        );
        out.extend([(0, 1), (1, 0)].map(|(a, b)| Loose::Pair(a, b)));
        out.extend(
            <BTreeMap<u8, bool> as Enumerate>::values()
                .into_iter()
                .map(|m| Loose::Map(m.into_iter().map(|(k, v)| (k, u8::from(v))).collect())),
        );
        out.extend(Odd::values().into_iter().map(Loose::Odd));
        out.extend(Sparse::values().into_iter().map(Loose::Sparse));
        out
    }
}

/// `T` through `Serialize`, alone and in serde's containers; and key parts' containers
/// around it.
fn serde_level3<T: Enumerate + Serialize + Debug + Clone>() -> usize {
    assert_injective::<Ser<T>>()
        + assert_injective::<Ser<Option<T>>>()
        + assert_injective::<Ser<Vec<T>>>()
        + assert_injective::<Ser<[T; 2]>>()
        + assert_injective::<Ser<(T, String)>>()
        + assert_injective::<Ser<BTreeMap<u8, T>>>()
        + assert_injective::<Ser<Wrapper<T>>>()
        + assert_injective::<Ser<Either<T>>>()
        + assert_injective::<Option<Ser<T>>>()
        + assert_injective::<Vec<Ser<T>>>()
        + assert_injective::<(Ser<T>, Ser<T>)>()
}

fn serde_level2<T: Enumerate + Serialize + Debug + Clone>() -> usize {
    serde_level3::<T>()
        + serde_level3::<Option<T>>()
        + serde_level3::<Vec<T>>()
        + serde_level3::<(T, Option<String>)>()
        + serde_level3::<Either<T>>()
}

fn serde_level1<T: Enumerate + Serialize + Debug + Clone>() -> usize {
    serde_level2::<T>() + serde_level2::<Option<T>>() + serde_level2::<Vec<T>>()
}

#[test]
fn no_two_values_of_one_serialize_type_share_a_key() {
    let mut checked = 0;
    checked += serde_level1::<Loose>();
    checked += serde_level2::<String>();
    checked += serde_level1::<Odd>();
    checked += serde_level2::<Sparse>();
    checked += serde_level2::<char>() + serde_level2::<bool>() + serde_level2::<i8>();
    checked += serde_level3::<f64>() + serde_level3::<BTreeSet<String>>();
    checked += serde_level3::<BTreeMap<u8, String>>() + serde_level3::<u128>();
    assert!(checked > 1_000_000, "the search covered {checked} values");
}

// Cached functions declared inside other functions' bodies (tests often do): the companion
// sees the body's items, and a key without template names the enclosing function, so two
// functions of one name in two bodies never share an entry.

async fn first_body() -> (u64, String) {
    #[cached(cache = &*CACHE)]
    async fn same_name(id: u64) -> u64 {
        id + 1
    }
    (same_name(1).await, same_name::key(1))
}

async fn second_body() -> (u64, String) {
    #[cached(cache = &*CACHE)]
    async fn same_name(id: u64) -> u64 {
        id + 2
    }
    (same_name(1).await, same_name::key(1))
}

#[tokio::test]
async fn functions_of_one_name_in_two_bodies_do_not_share_entries() {
    let (first, first_key) = first_body().await;
    let (second, second_key) = second_body().await;
    assert_eq!((first, second), (2, 3));
    assert_eq!(first_body().await.0, 2, "each reads its own entry");
    assert_ne!(first_key, second_key);
    assert_eq!(first_key, "keys::first_body::same_name:1");
}

#[tokio::test]
async fn a_function_declared_in_a_body_has_its_companion() {
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Local(u64);

    static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(key = "in_body:<id>", cache = &*CACHE)]
    async fn in_body(id: u64) -> Local {
        BODY_RUNS.fetch_add(1, Ordering::SeqCst);
        Local(id)
    }

    assert_eq!(in_body(4).await, Local(4));
    assert_eq!(in_body(4).await, Local(4));
    assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(in_body::key(4), "in_body:4");
    in_body::remove_cached(4).await.unwrap();
    in_body(4).await;
    assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 2, "removed, loaded again");
}

#[cached(cache = &*CACHE)]
async fn r#match(r#type: u64) -> u64 {
    r#type
}

#[tokio::test]
async fn a_function_with_a_raw_name_has_its_companion() {
    assert_eq!(r#match(3).await, 3);
    assert_eq!(r#match::key(3), "keys::r#match:3");
}

/// A value whose `Serialize` fails for some values, as a `Path` that is not UTF-8 does.
#[derive(Clone, Debug)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 >= 100 {
            return Err(serde::ser::Error::custom("too large to write"));
        }
        s.serialize_u32(self.0)
    }
}

static PICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "picky:<p>:<n>", cache = &*CACHE)]
async fn picky(p: Picky, n: u32) -> u32 {
    PICKY_RUNS.fetch_add(1, Ordering::SeqCst);
    p.0 + n
}

#[cached(key = "picky_many:<p>:<n>", batch(n in ns), cache = &*CACHE)]
async fn picky_many(p: Picky, ns: Vec<u32>) -> HashMap<u32, u32> {
    PICKY_RUNS.fetch_add(1, Ordering::SeqCst);
    ns.into_iter().map(|n| (n, p.0 + n)).collect()
}

#[tokio::test]
async fn a_value_whose_serialize_fails_runs_its_call_without_the_cache_and_never_shares_an_entry() {
    // Values it can write are cached as usual.
    assert_eq!(picky(Picky(1), 1).await, 2);
    let runs = PICKY_RUNS.load(Ordering::SeqCst);
    assert_eq!(picky(Picky(1), 1).await, 2);
    assert_eq!(PICKY_RUNS.load(Ordering::SeqCst), runs, "a hit");

    // Two values it cannot write: each call runs its body and returns its own result.
    assert_eq!(picky(Picky(100), 1).await, 101);
    assert_eq!(picky(Picky(200), 1).await, 201);
    assert_eq!(picky(Picky(100), 1).await, 101);
    assert_eq!(
        PICKY_RUNS.load(Ordering::SeqCst),
        runs + 3,
        "no call was cached"
    );

    // Batches too, element by element.
    assert_eq!(
        picky_many(Picky(300), vec![1, 2]).await,
        HashMap::from([(1, 301), (2, 302)])
    );
    assert_eq!(
        picky_many(Picky(400), vec![1, 2]).await,
        HashMap::from([(1, 401), (2, 402)])
    );
    assert_eq!(PICKY_RUNS.load(Ordering::SeqCst), runs + 5);
}
