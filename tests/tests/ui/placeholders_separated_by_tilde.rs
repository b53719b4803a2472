use cachemacro::cached;

// `~` is what `None` writes: `(None, Some(None))` and `(Some(None), None)` would share a key.
#[cached(key = "pair:<a>~<b>")]
async fn pair(a: Option<Option<u8>>, b: Option<Option<u8>>) -> u8 {
    let _ = (a, b);
    0
}

fn main() {}
