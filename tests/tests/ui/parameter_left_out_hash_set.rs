use std::collections::HashSet;

use cachemacro::cached;

// A `HashSet` is no key part (its order is not fixed), but it is data: `fields` may not
// stay out silently.
#[cached(key = "user:<id>")]
async fn user(id: u64, fields: HashSet<String>) -> String {
    format!("{id}:{}", fields.len())
}

fn main() {}
