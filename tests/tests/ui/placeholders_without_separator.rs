use cachemacro::cached;

#[cached(key = "order:<a><b>")]
async fn get_order(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
