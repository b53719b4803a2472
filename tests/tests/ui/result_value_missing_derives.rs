use cachemacro::cached;

pub struct User {
    pub name: String,
}

#[derive(Debug)]
pub struct DbError;

// The `Ok` value is what is cached: `User` needs the derives, `DbError` does not.
#[cached(key = "user:<id>")]
async fn get_user(id: u64) -> Result<User, DbError> {
    Ok(User { name: id.to_string() })
}

fn main() {}
