use cachemacro::cached;

#[cached(key = "feed:<user_id>:<page>", group = "feed:<user_id>")]
async fn feed(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, page.into()]
}

#[cached(key = "articles:<page>", group = "articles", ttl = "1m")]
async fn articles(page: u32) -> Vec<u32> {
    vec![page]
}

async fn companions() -> Result<(), cachemacro::Error> {
    let _: u64 = feed::bump_group(7).await?;
    let _: u64 = articles::bump_group().await?;
    feed::remove_cached(7, 1).await?;
    feed::remove_local(7, 1);
    let key = feed::key(7, 1);
    let _: &str = key.scope();
    let _: String = feed::scope(7);
    Ok(())
}

fn main() {
    let _ = companions;
}
