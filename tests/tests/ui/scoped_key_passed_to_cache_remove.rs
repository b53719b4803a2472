use cachemacro::{cached, Cache};

// `product::key(3)` of a scoped function names its scope: `Cache::remove`, which reaches
// unscoped keys only, would remove nothing. It does not compile.
#[cached(key = "<id>", scope = "products")]
async fn product(id: u64) -> String {
    format!("product {id}")
}

async fn rename(cache: &Cache) {
    cache.remove(&product::key(3)).await.unwrap();
}

fn main() {}
