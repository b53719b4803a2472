use cachemacro::KeyPart;

#[derive(KeyPart)]
pub struct Price {
    pub amount: f64,
    pub currency: String,
}

fn main() {}
