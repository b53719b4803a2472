use cachemacro::cached;

// The companions (`key`, `remove_cached`, `uncached`...) take and pass every parameter: one
// that exists in some configurations only cannot be part of them.
#[cached(key = "user:<id>")]
async fn get_user(id: u64, #[cfg(unix)] trace: bool) -> u64 {
    let _ = trace;
    id
}

#[cached(key = "order:<id>", ignore = [trace])]
async fn get_order(id: u64, #[cfg_attr(test, cfg(any()))] trace: bool) -> u64 {
    let _ = trace;
    id
}

fn main() {}
