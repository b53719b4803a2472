use cachemacro::cached;

pub struct User {
    pub id: u64,
}

#[cached(key = "user:<user.name>")]
async fn profile(user: User) -> u64 {
    user.id
}

fn main() {}
