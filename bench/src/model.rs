//! The value every scenario caches, its keys, and a reproducible random access order.

use serde::{Deserialize, Serialize};

/// A small struct: id, a ~16-character name, a ~24-character email.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The key.
    pub id: u64,
    /// About 16 characters.
    pub name: String,
    /// About 24 characters.
    pub email: String,
}

/// The "database row" for `id`.
pub fn user(id: u64) -> User {
    User {
        id,
        name: format!("user-name-{id:06}"),
        email: format!("user{id:06}@example-mail.com"),
    }
}

/// `n` ids in `0..keys`, in a fixed pseudo-random order (xorshift64*).
pub fn random_ids(n: usize, keys: u64, seed: u64) -> Vec<u64> {
    let mut state = seed.max(1);
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d) % keys
        })
        .collect()
}
