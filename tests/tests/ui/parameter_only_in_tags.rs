use cachemacro::cached;

// A tag is not part of the key: `user_id` still makes two calls share one entry.
#[cached(key = "orders:<page>", tags = ["user:<user_id>"])]
async fn orders(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, page.into()]
}

fn main() {}
