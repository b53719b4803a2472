use cachemacro::cached;

#[cached(key = "user:<id>", cache_none = true, option = true)]
async fn find_user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
