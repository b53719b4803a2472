use cachemacro::cached;

pub struct Db;

// `tenant` decides the result but is not in the key: acme's user would be served to globex.
// `db` is no key part, so it may stay out.
#[cached(key = "user:<id>")]
async fn get_user(tenant: &str, db: &Db, id: u64) -> String {
    let _ = db;
    format!("{tenant}/{id}")
}

fn main() {}
