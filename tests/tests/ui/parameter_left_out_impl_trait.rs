use cachemacro::cached;

// `s` decides the result, but the macro cannot see what an `impl Trait` holds: without a
// word, `it(1, "a")` and `it(1, "b")` would share one entry.
#[cached(key = "it:<id>")]
async fn it(id: u64, s: impl AsRef<str>) -> String {
    format!("{id}{}", s.as_ref())
}

// Behind a reference too.
#[cached(key = "by_ref:<id>")]
async fn by_ref(id: u64, s: &(impl AsRef<str> + Sync)) -> String {
    format!("{id}{}", s.as_ref())
}

fn main() {}
