use cachemacro::cached;

#[cached(key = "price:<amount>")]
async fn price(amount: f64) -> u64 {
    amount as u64
}

fn main() {}
