use cachemacro::cached;

#[cached(key = "user:<id>", scope = "tenant-<tenat>")]
async fn get_user(tenant: &str, id: u64) -> String {
    format!("{tenant}/{id}")
}

fn main() {}
