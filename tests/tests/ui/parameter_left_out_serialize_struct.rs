use cachemacro::cached;

#[derive(serde::Serialize)]
pub struct Filter {
    pub active: bool,
}

// `Filter` is no key part, but it is data (`Serialize`): `filter` may not stay out
// silently.
#[cached(key = "users:<page>")]
async fn users(page: u32, filter: Filter) -> String {
    format!("{page}:{}", filter.active)
}

fn main() {}
