use cachemacro::cached;

pub struct Repo;

impl Repo {
    #[cached(key = "user:<user_id>")]
    async fn get_user(&mut self, user_id: u64) -> u64 {
        user_id
    }
}

fn main() {}
