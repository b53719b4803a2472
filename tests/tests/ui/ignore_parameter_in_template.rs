use cachemacro::cached;

#[cached(key = "user:<id>", ignore = [id])]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
