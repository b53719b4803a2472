use cachemacro::cached;

// A generic parameter is opaque in the body, whatever its bounds: it is in the key or in
// `ignore`.
#[cached(key = "it:<id>")]
async fn it<S: AsRef<str> + Send>(id: u64, s: S) -> String {
    format!("{id}{}", s.as_ref())
}

// Anywhere in the type.
#[cached(key = "all:<id>")]
async fn all<S: AsRef<str> + Send>(id: u64, s: Vec<S>) -> String {
    let s: Vec<&str> = s.iter().map(AsRef::as_ref).collect();
    format!("{id}{}", s.join(","))
}

fn main() {}
