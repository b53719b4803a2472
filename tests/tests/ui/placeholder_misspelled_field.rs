use cachemacro::cached;

pub struct Query {
    pub tenant: String,
    pub id: u64,
}

#[cached(key = "user:<q.tenat>:<q.id>")]
async fn get_user(q: &Query) -> u64 {
    q.id
}

fn main() {}
