use cachemacro::cached;

cachemacro::tags! {
    pub author(id: u64) = "author:<id>";
}

// The tag is `author`: a misspelt one is a name that resolves to nothing.
#[cached(key = "articles:<author_id>", tags = [autor(author_id)])]
async fn articles(author_id: u64) -> Vec<u64> {
    vec![author_id]
}

fn main() {}
