use cachemacro::{cached, KeyPart};

// A generic parameter bounded by `KeyPart` can be part of the key: it may not stay out
// silently either.
#[cached(key = "item:<id>")]
async fn item<R: KeyPart + Send>(region: R, id: u64) -> u64 {
    let _ = region;
    id
}

fn main() {}
