use std::collections::HashMap;

use cachemacro::cached;

#[cached(key = "user:<id>", batch(id in ids))]
async fn users(ids: u64) -> HashMap<u64, String> {
    HashMap::from([(ids, format!("user {ids}"))])
}

fn main() {}
