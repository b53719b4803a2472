use cachemacro::cached;

#[cached(key = "user:<user_id>", l1_capacity = 0)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
