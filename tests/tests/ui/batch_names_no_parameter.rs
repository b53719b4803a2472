use std::collections::HashMap;

use cachemacro::cached;

#[cached(key = "user:<id>", batch(id in user_ids))]
async fn users(ids: Vec<u64>) -> HashMap<u64, String> {
    ids.iter().map(|&id| (id, format!("user {id}"))).collect()
}

fn main() {}
