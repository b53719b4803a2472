use cachemacro::cached;

#[cached(key = "user:<id>", result = true, option = true)]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
