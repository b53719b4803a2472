use cachemacro::cached;

pub struct Report {
    pub total: u64,
}

#[cached(key = "report:<day>")]
async fn report(day: u32) -> Report {
    Report { total: day.into() }
}

fn main() {}
