use cachemacro::cached;

#[cached(key = "label:<id>")]
async fn label(id: u64) -> &'static str {
    if id == 0 {
        "zero"
    } else {
        "many"
    }
}

#[cached(key = "labels:<id>")]
async fn labels(id: u64) -> Option<Vec<&'static str>> {
    (id > 0).then(|| vec!["one"])
}

fn main() {}
