use cachemacro::cached;

#[cached(key = "user:<id>", stale_for = "1h", soft_timeout = "5s", hard_timeout = "1s")]
async fn user(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
