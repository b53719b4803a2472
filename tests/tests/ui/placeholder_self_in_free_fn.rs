use cachemacro::cached;

#[cached(key = "user:<self.id>")]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
