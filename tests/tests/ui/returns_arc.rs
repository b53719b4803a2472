use std::sync::Arc;

use cachemacro::cached;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
}

// `Arc<User>` is `Serialize` only with serde's `rc` feature: the derive on `User` is there.
#[cached(key = "user:<id>")]
async fn get_user(id: u64) -> Arc<User> {
    Arc::new(User {
        name: id.to_string(),
    })
}

fn main() {}
