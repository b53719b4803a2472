use cachemacro::cached;

pub trait Users {
    #[cached(key = "user:<id>")]
    async fn get_user(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
