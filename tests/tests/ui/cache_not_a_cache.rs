use std::sync::LazyLock;

use cachemacro::{cached, Cache};

static APP_CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[cached(key = "user:<user_id>", cache = APP_CACHE)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
