use std::sync::OnceLock;

use cachemacro::{cached, Cache};

static APP_CACHE: OnceLock<Cache> = OnceLock::new();

// `OnceLock::get` gives an `Option<&Cache>`.
#[cached(key = "user:<user_id>", cache = APP_CACHE.get())]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
