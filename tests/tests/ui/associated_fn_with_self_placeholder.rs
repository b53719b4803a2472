use cachemacro::cached;

pub struct Repo {
    pub tenant: String,
}

impl Repo {
    // An associated function has no `self` to read `tenant` from.
    #[cached(key = "<self.tenant>:user:<id>")]
    pub async fn load(id: u64) -> u64 {
        id
    }
}

fn main() {}
