use cachemacro::cached;

// A group is a scope of its own (`<group>@v<version>`): one or the other.
#[cached(key = "page:<page>", scope = "articles", group = "listing")]
async fn page(page: u32) -> Vec<u32> {
    vec![page]
}

fn main() {}
