//! Templates handed to `#[cached]` by a `macro_rules!`: a `$key:literal` (or `$key:expr`)
//! fragment reaches the attribute wrapped in an invisible group, and is still a template.

use cachemacro::cached;

macro_rules! cached_getter {
    ($name:ident, $key:literal, $tag:literal, $ttl:expr) => {
        #[cached(key = $key, tags = [$tag], ttl = $ttl)]
        async fn $name(id: u64) -> u64 {
            id * 2
        }
    };
}

cached_getter!(user, "user:<id>", "users", "5m");
cached_getter!(order, "order:<id>", "orders", 300);

fn main() {
    assert_eq!(user::key(1), "user:1");
    assert_eq!(order::key(2), "order:2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(user(3)), 6);
}

/// A placeholder with a field, and a batch, from a macro too.
pub struct Query {
    pub tenant: String,
}

macro_rules! cached_fields {
    ($key:literal, $batch_key:literal) => {
        #[cached(key = $key)]
        async fn by_tenant(q: &Query) -> usize {
            q.tenant.len()
        }

        #[cached(key = $batch_key, batch(id in ids))]
        async fn many(ids: Vec<u64>) -> std::collections::HashMap<u64, u64> {
            ids.into_iter().map(|id| (id, id)).collect()
        }
    };
}

cached_fields!("tenant:<q.tenant>", "many:<id>");

#[test]
fn fields_and_batches() {
    let q = Query { tenant: "acme".into() };
    assert_eq!(by_tenant::key(&q), "tenant:acme");
}
