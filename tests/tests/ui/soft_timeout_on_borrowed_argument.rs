use cachemacro::cached;

#[cached(key = "user:<name>", stale_for = "1h", soft_timeout = "100ms")]
async fn user(name: &str) -> String {
    name.to_uppercase()
}

fn main() {}
