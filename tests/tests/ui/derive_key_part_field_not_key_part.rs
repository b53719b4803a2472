use cachemacro::KeyPart;

/// A type of the application's that is not a key part.
pub struct Money {
    pub cents: i64,
}

#[derive(KeyPart)]
pub struct Price {
    pub amount: Money,
    pub currency: String,
}

fn main() {}
