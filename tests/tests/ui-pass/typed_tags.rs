use cachemacro::cached;

cachemacro::tags! {
    /// One article, by its slug.
    pub article(slug: str) = "article:<slug>";
    /// An author's articles, by the author's id.
    pub(crate) author(id: u64) = "author:<id>";
}

pub struct Query {
    pub author: u64,
    pub page: u32,
}

// A `String` argument for a `str` parameter, a field of a parameter, and a template tag
// beside them.
#[cached(key = "article:<slug>:<q.author>:<q.page>", tags = [article(slug), author(q.author), "all"])]
async fn article_page(slug: String, q: Query) -> String {
    format!("{slug} {} {}", q.author, q.page)
}

async fn rename(slug: &str, author_id: u64) -> Result<u64, cachemacro::Error> {
    let mut removed = article::invalidate(slug).await?;
    removed += author::invalidate(&author_id).await?;
    Ok(removed)
}

fn main() {
    let _ = article_page;
    let _ = rename;
    assert_eq!(article::tag("a:b"), "article:a%3Ab");
}
