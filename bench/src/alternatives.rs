//! The other crates a user might pick, set up as their documentation shows.

use std::sync::Arc;
use std::time::Duration;

use cached::macros::{cached, concurrent_cached};
use multi_tier_cache::{
    Bytes, CacheBackend, CacheManager, CacheStrategy, L1Cache, L2Cache, MokaCacheConfig,
};

use crate::model::{user, User};

/// The `cached` crate's `#[cached]` on an async fn, with a size and a time limit (one
/// `LruTtlCache` behind an async lock).
#[cached(max_size = 10_000, ttl_secs = 600)]
pub async fn cached_user(id: u64) -> User {
    user(id)
}

/// The `cached` crate's sharded `#[concurrent_cached]`, with a size and a time limit.
#[concurrent_cached(max_size = 10_000, ttl_secs = 600)]
pub async fn concurrent_cached_user(id: u64) -> User {
    user(id)
}

/// `multi-tier-cache`: moka L1 + Redis L2, a key/value API over serde_json.
pub struct MultiTier {
    /// Its L1, to empty between L2 measurements.
    pub l1: Arc<L1Cache>,
    manager: CacheManager,
}

impl MultiTier {
    /// A cache on the Redis at `url`.
    pub async fn new(url: &str) -> Self {
        let l1 = Arc::new(
            L1Cache::new(MokaCacheConfig {
                max_capacity: 2_000_000,
                time_to_live: Duration::from_secs(600),
                time_to_idle: Duration::from_secs(600),
            })
            .expect("multi-tier L1"),
        );
        let l2 = Arc::new(L2Cache::with_url(url).await.expect("multi-tier L2"));
        let manager = CacheManager::new(Arc::clone(&l1), l2)
            .await
            .expect("multi-tier manager");
        Self { l1, manager }
    }

    fn key(id: u64) -> String {
        format!("mtc:user:{id}")
    }

    /// Stores `user(id)` in both tiers.
    pub async fn fill(&self, id: u64) {
        let bytes = Bytes::from(serde_json::to_vec(&user(id)).expect("json"));
        self.manager
            .set_with_strategy(
                &Self::key(id),
                bytes,
                CacheStrategy::Custom(Duration::from_secs(600)),
            )
            .await
            .expect("multi-tier set");
    }

    /// A typed read through both tiers.
    pub async fn get(&self, id: u64) -> User {
        self.manager
            .get_typed::<User>(&Self::key(id))
            .await
            .expect("multi-tier get")
            .expect("filled")
    }

    /// Drops `id` from L1 only.
    pub async fn evict_l1(&self, id: u64) {
        let _ = self.l1.remove(&Self::key(id)).await;
    }
}
