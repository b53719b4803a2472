use cachemacro::cached;

#[cached(key = "user:<id>", result = true)]
async fn get_user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
