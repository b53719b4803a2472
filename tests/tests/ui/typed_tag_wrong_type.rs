use cachemacro::cached;

cachemacro::tags! {
    pub author(id: u64) = "author:<id>";
}

// `author` takes a `u64`: a `String` argument is a type error at the argument.
#[cached(key = "articles:<author>", tags = [author(author)])]
async fn articles(author: String) -> Vec<String> {
    vec![author]
}

fn main() {}
