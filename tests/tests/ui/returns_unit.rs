use cachemacro::cached;

#[cached(key = "user:<user_id>")]
async fn touch_user(user_id: u64) {
    let _ = user_id;
}

fn main() {}
