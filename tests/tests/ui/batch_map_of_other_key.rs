use std::collections::HashMap;

use cachemacro::cached;

#[cached(key = "user:<id>", batch(id in ids))]
async fn users(ids: Vec<u64>) -> Result<HashMap<String, String>, String> {
    Ok(ids.iter().map(|id| (id.to_string(), format!("user {id}"))).collect())
}

fn main() {}
