use cachemacro::cached;

type UserResult = Result<u64, String>;

#[cached(key = "user:<id>", option = true)]
async fn get_user(id: u64) -> UserResult {
    Ok(id)
}

fn main() {}
