use cachemacro::cached;

cachemacro::tags! {
    pub author(id: u64) = "author:<id>";
}

// A tag's arguments name the function's parameters: the entry's tag is known before the
// body runs.
#[cached(key = "articles:<page>", tags = [author(7)])]
async fn articles(page: u32) -> Vec<u32> {
    vec![page]
}

fn main() {}
