use cachemacro::cached;

#[cached(key = "point:<a>")]
async fn point((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
