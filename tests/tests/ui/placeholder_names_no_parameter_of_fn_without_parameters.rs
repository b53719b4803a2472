use cachemacro::cached;

#[cached(key = "config:<name>")]
async fn get_config() -> String {
    String::new()
}

fn main() {}
