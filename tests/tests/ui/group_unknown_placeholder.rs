use cachemacro::cached;

// A group template names parameters, as a key template does.
#[cached(key = "feed:<user_id>:<page>", group = "feed:<user>")]
async fn feed(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, page.into()]
}

fn main() {}
