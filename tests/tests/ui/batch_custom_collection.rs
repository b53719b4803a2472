use std::collections::HashMap;

use cachemacro::cached;

/// Not a collection the macro knows: its elements cannot be rebuilt for the body.
struct Ids(Vec<u64>);

#[cached(key = "user:<id>", batch(id in ids))]
async fn users(ids: Ids) -> HashMap<u64, String> {
    ids.0.iter().map(|&id| (id, format!("user {id}"))).collect()
}

fn main() {}
