//! One subject's L1 hit loop alone, for a profiler (`valgrind --tool=callgrind`, `perf`)
//! or for comparing two builds: `hitloop <subject> [hits]`.
//!
//! Subjects: `cachemacro` (`#[cached]`), `no_front` (the same with `l1_front_capacity(0)`:
//! every hit through L1's text key), `concurrent_cached` (the `cached` crate's),
//! `quick` (raw quick_cache, `String` key, `Arc` value), `floor` (`RwLock<HashMap>`), and
//! two layouts of quick_cache the L1 decision measured (`bench/results/L1-DECISION.md`):
//! `inline_key` (the key in the slot, the value in an `Arc`) and `inline` (both in the
//! slot); and `typed`, quick_cache keyed by the `u64` itself with the value in the slot:
//! the store a function's typed front of L1 stands on, without the front's checks. It fills
//! 10k keys, then reads them in the benchmark's random order and prints ns per hit (each
//! `cachemacro` hit after the first on its key comes from its front).
//!
//! - `INTERLEAVE=1` fills every subject id by id, as the benchmark does, so that their
//!   allocations interleave in the heap.
//! - `POLLUTE=1` walks 64 MiB between batches of 100k hits, as the benchmark's other
//!   subjects do between two measurements of one.

use std::hint::black_box;
use std::sync::Arc;

use cachemacro_bench::alternatives::concurrent_cached_user;
use cachemacro_bench::l1::{cm_user, cm_user_no_front, Floor, RawQuick};
use cachemacro_bench::model::{random_ids, user, User};

/// A key of up to 31 bytes kept inline.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Small {
    len: u8,
    bytes: [u8; 31],
}

impl Small {
    fn of(id: u64) -> Self {
        let key = format!("bench:c1:k:user:{id}");
        let mut bytes = [0; 31];
        bytes[..key.len()].copy_from_slice(key.as_bytes());
        Self {
            len: key.len() as u8,
            bytes,
        }
    }
}

/// quick_cache with the key and the value in the slot.
#[derive(Clone)]
struct Inline(Arc<quick_cache::sync::Cache<Small, User>>);

impl Inline {
    fn get(&self, id: u64) -> User {
        let key = Small::of(id);
        if let Some(hit) = self.0.get(&key) {
            return hit;
        }
        let value = user(id);
        self.0.insert(key, value.clone());
        value
    }
}

/// quick_cache with the key in the slot, the value in an `Arc`.
#[derive(Clone)]
struct InlineKey(Arc<quick_cache::sync::Cache<Small, Arc<User>>>);

impl InlineKey {
    fn get(&self, id: u64) -> User {
        let key = Small::of(id);
        if let Some(hit) = self.0.get(&key) {
            return User::clone(&hit);
        }
        let value = user(id);
        self.0.insert(key, Arc::new(value.clone()));
        value
    }
}

/// quick_cache keyed by the id itself, the value in the slot: no key to write or compare.
#[derive(Clone)]
struct Typed(Arc<quick_cache::sync::Cache<u64, User>>);

impl Typed {
    fn get(&self, id: u64) -> User {
        if let Some(hit) = self.0.get(&id) {
            return hit;
        }
        let value = user(id);
        self.0.insert(id, value.clone());
        value
    }
}

/// Every subject, filled.
struct Subjects {
    typed: Typed,
    quick: RawQuick,
    floor: Floor,
    inline: Inline,
    inline_key: InlineKey,
}

impl Subjects {
    async fn get(&self, subject: &str, id: u64) -> User {
        match subject {
            "cachemacro" => cm_user(id).await,
            "no_front" => cm_user_no_front(id).await,
            "concurrent_cached" => concurrent_cached_user(id).await,
            "quick" => self.quick.get(id),
            "floor" => self.floor.get(id),
            "inline" => self.inline.get(id),
            "inline_key" => self.inline_key.get(id),
            "typed" => self.typed.get(id),
            other => panic!("unknown subject {other}"),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "cachemacro".into());
    let hits: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    let interleave = std::env::var("INTERLEAVE").is_ok();
    let pollute = std::env::var("POLLUTE").is_ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ids = random_ids(hits, 10_000, 7);
    rt.block_on(async {
        let subjects = Subjects {
            typed: Typed(Arc::new(quick_cache::sync::Cache::new(2_000_000))),
            quick: RawQuick::default(),
            floor: Floor::default(),
            inline: Inline(Arc::new(quick_cache::sync::Cache::new(2_000_000))),
            inline_key: InlineKey(Arc::new(quick_cache::sync::Cache::new(2_000_000))),
        };
        let all = [
            "cachemacro",
            "no_front",
            "concurrent_cached",
            "quick",
            "floor",
            "inline",
            "inline_key",
            "typed",
        ];
        for id in 0..10_000 {
            if interleave {
                for other in all {
                    drop(subjects.get(other, id).await);
                }
            } else {
                drop(subjects.get(&subject, id).await);
            }
        }
        let mut junk = vec![0u8; if pollute { 64 << 20 } else { 0 }];
        let mut total = std::time::Duration::ZERO;
        for batch in ids.chunks(100_000) {
            for i in (0..junk.len()).step_by(64) {
                junk[i] = junk[i].wrapping_add(1);
            }
            black_box(&junk);
            let start = std::time::Instant::now();
            // One loop per subject, so that none pays for the dispatch.
            macro_rules! hits {
                ($id:ident => $hit:expr) => {
                    for &$id in batch {
                        black_box($hit);
                    }
                };
            }
            match subject.as_str() {
                "cachemacro" => hits!(id => cm_user(id).await),
                "no_front" => hits!(id => cm_user_no_front(id).await),
                "concurrent_cached" => hits!(id => concurrent_cached_user(id).await),
                "quick" => hits!(id => subjects.quick.get(id)),
                "floor" => hits!(id => subjects.floor.get(id)),
                "inline" => hits!(id => subjects.inline.get(id)),
                "inline_key" => hits!(id => subjects.inline_key.get(id)),
                "typed" => hits!(id => subjects.typed.get(id)),
                other => panic!("unknown subject {other}"),
            }
            total += start.elapsed();
        }
        let ns = total.as_nanos() as f64 / ids.len() as f64;
        println!("{subject}: {ns:.1} ns/hit");
    });
}
