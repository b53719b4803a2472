use cachemacro::cached;

#[cached(key = "user:<id>", ignore = [verbos])]
async fn get_user(id: u64, verbose: bool) -> u64 {
    let _ = verbose;
    id
}

fn main() {}
