use cachemacro::cached;

#[cached(key = "user:<id>", ttl = "1m", refresh_ahead = 1.5)]
async fn user(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
