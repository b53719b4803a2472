use cachemacro::cached;

#[cached(key = "user:<user_id>", cache_none = "yes")]
async fn find_user(user_id: u64) -> Option<u64> {
    Some(user_id)
}

fn main() {}
