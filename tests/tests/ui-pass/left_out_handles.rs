//! A parameter left out of the key template stays out without a word only when it is a
//! handle: its type is neither a key part nor `Serialize` (`&PgPool`, `Arc<Client>`,
//! `State<App>`). Data (`f64`, `HashSet<String>`, a `Serialize` struct), `impl Trait` and
//! generic parameters are in the key or in `ignore`.

use std::collections::HashSet;
use std::sync::Arc;

use cachemacro::{cached, KeyPart};

// Handles, as a pool, a client and an extractor are: no key part, not `Serialize`.
pub struct Db;

pub struct Client {
    pub base: String,
}

pub struct State<T>(pub T);

pub struct App {
    pub name: &'static str,
}

#[cached(key = "handles:<id>")]
async fn handles(db: &Db, client: Arc<Client>, state: State<App>, id: u64) -> String {
    let _ = db;
    format!("{}/{}/{id}", client.base, state.0.name)
}

// Data the result does not depend on, left out on purpose with `ignore`.
#[derive(serde::Serialize)]
pub struct Filter {
    pub active: bool,
}

#[cached(key = "ignored:<id>", ignore = [s, scale, fields, filter])]
async fn ignored(
    id: u64,
    s: impl AsRef<str> + Send,
    scale: f64,
    fields: HashSet<String>,
    filter: Filter,
) -> u64 {
    let _ = (s.as_ref(), scale, fields, filter.active);
    id
}

#[cached(key = "generic_ignored:<id>", ignore = [s])]
async fn generic_ignored<S: AsRef<str> + Send>(id: u64, s: S) -> u64 {
    let _ = s.as_ref();
    id
}

// Or in the key: a generic bounded by `KeyPart`, and the fields of a `Serialize` struct.
#[cached(key = "generic_keyed:<id>:<s>")]
async fn generic_keyed<S: KeyPart + AsRef<str> + Send>(id: u64, s: S) -> String {
    format!("{id}{}", s.as_ref())
}

#[cached(key = "fields:<id>:<filter.active>")]
async fn fields(id: u64, filter: Filter) -> String {
    format!("{id}:{}", filter.active)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Arc::new(Client {
            base: "http://a".into(),
        });
        let state = || State(App { name: "app" });
        assert_eq!(
            handles(&Db, client.clone(), state(), 1).await,
            "http://a/app/1"
        );
        let filter = || Filter { active: true };
        assert_eq!(ignored(1, "a", 2.0, HashSet::new(), filter()).await, 1);
        assert_eq!(generic_ignored(1, "a").await, 1);
        assert_eq!(generic_keyed(1, "a").await, "1a");
        assert_eq!(generic_keyed(1, "b").await, "1b", "`s` is in the key");
        assert_eq!(fields(1, filter()).await, "1:true");
    });
    assert_eq!(handles::key(1), "handles:1");
    assert_eq!(ignored::key(1), "ignored:1");
    assert_eq!(fields::key(1, Filter { active: false }), "fields:1:false");
}
