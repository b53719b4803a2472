use cachemacro::cached;

const FIVE_MINUTES: u64 = 300;

#[cached(key = "user:<user_id>", ttl = FIVE_MINUTES)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
