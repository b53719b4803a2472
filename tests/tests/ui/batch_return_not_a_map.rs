use cachemacro::cached;

#[cached(key = "user:<id>", batch(id in ids))]
async fn users(ids: Vec<u64>) -> Vec<String> {
    ids.iter().map(|id| format!("user {id}")).collect()
}

fn main() {}
