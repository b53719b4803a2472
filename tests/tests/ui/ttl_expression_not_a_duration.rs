use cachemacro::cached;

pub struct Config {
    pub user_ttl_secs: u64,
}

pub static CONFIG: Config = Config { user_ttl_secs: 300 };

#[cached(key = "user:<id>", ttl = CONFIG.user_ttl_secs)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
