use cachemacro::cached;

// What a port from the `cached` crate brings: each option answers with its equivalent.
#[cached(time = 60, size = 100)]
async fn a(id: u64) -> u64 {
    id
}

#[cached(time_refresh = true, sync_writes = true, unbound)]
async fn b(id: u64) -> u64 {
    id
}

#[cached(with_cached_flag = true, result_fallback = true, result = true)]
async fn c(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(name = "C_CACHE", key = "String", convert = r#"{ format!("{}", id) }"#)]
async fn d(id: u64) -> u64 {
    id
}

#[cached(ttl_secs = 30, max_size = 10)]
async fn e(id: u64) -> u64 {
    id
}

fn main() {}
