use cachemacro::cached;

pub struct Tenant {
    pub id: u64,
}

#[cached(key = "tenant:<tenant>")]
async fn tenant_name(tenant: Tenant) -> String {
    tenant.id.to_string()
}

fn main() {}
