use async_trait::async_trait;
use cachemacro::cached;

#[async_trait]
pub trait Users {
    async fn get_user(&self, id: u64) -> u64;
}

pub struct Pg;

// `#[async_trait]` runs first and turns the method into a function returning a boxed future.
#[async_trait]
impl Users for Pg {
    #[cached(key = "user:<id>")]
    async fn get_user(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
