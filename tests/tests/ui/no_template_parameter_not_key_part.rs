use cachemacro::cached;

pub struct Db;

// Without a `key` template every parameter is part of the key, `db` too.
#[cached(ttl = "5m")]
async fn get_user(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {}
