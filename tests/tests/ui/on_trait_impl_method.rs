use cachemacro::cached;

pub trait Users {
    async fn get_user(&self, id: u64) -> u64;
}

pub struct Pg;

impl Users for Pg {
    #[cached(key = "user:<id>")]
    async fn get_user(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
