use cachemacro::cached;

#[cached(key = "user:<id>", scope = "<tenant><region>")]
async fn get_user(tenant: &str, region: &str, id: u64) -> String {
    format!("{tenant}/{region}/{id}")
}

fn main() {}
