use cachemacro::cached;

#[cached(key = "user:<usr_id>")]
async fn get_user(user_id: u64, region: String) -> String {
    format!("{user_id}@{region}")
}

fn main() {}
