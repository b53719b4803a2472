use cachemacro::cached;

#[cached(key = "user:<id>", result = "yes")]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
