use std::rc::Rc;

use cachemacro::cached;

async fn fetch(id: u64) -> String {
    format!("user {id}")
}

#[cached(key = "user:<id>", stale_for = "1h", soft_timeout = "100ms")]
async fn user(id: u64) -> String {
    let shared = Rc::new(id);
    let name = fetch(*shared).await;
    format!("{name} {shared}")
}

fn main() {}
