use cachemacro::cached;

// `f64` is no key part, but it is data (`Serialize`): `scale` may not stay out silently.
#[cached(key = "price:<id>")]
async fn price(id: u64, scale: f64) -> u64 {
    (id as f64 * scale) as u64
}

fn main() {}
