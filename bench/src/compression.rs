//! Compression of a 64 KiB value: bytes in Redis, the L2 hit (another instance's `get`:
//! `GET`, decompress, decode), the write (`set`: encode, compress, `SET`), and the CPU cost
//! of compressing and decompressing alone, for no compression, LZ4 and zstd (levels 1, 3).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cachemacro::{Cache, Compression};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::stats::median;
use crate::Redis;

/// A row of a listing, as a service caches pages of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    email: String,
    status: String,
    created_at: String,
    tags: Vec<String>,
}

/// About 64 KiB of bincode: 640 rows of a listing.
fn page() -> Vec<Row> {
    (0..640u64)
        .map(|i| Row {
            id: 1_000_000 + i * 7919 % 100_000,
            name: format!(
                "Customer {} {}",
                ["Ada", "Grace", "Linus", "Barbara"][i as usize % 4],
                i * 31 % 997
            ),
            email: format!("customer{}@example{}.com", i * 7919 % 100_000, i % 13),
            status: ["active", "suspended", "trial"][i as usize % 3].into(),
            created_at: format!(
                "2026-{:02}-{:02}T{:02}:{:02}:00Z",
                i % 12 + 1,
                i % 28 + 1,
                i % 24,
                i * 7 % 60
            ),
            tags: vec![format!("region-{}", i % 7), "newsletter".into()],
        })
        .collect()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One algorithm's figures.
struct Figures {
    name: &'static str,
    stored: usize,
    hit_us: f64,
    set_us: f64,
    compress_us: f64,
    decompress_us: f64,
}

async fn measure(
    redis: &Redis,
    name: &'static str,
    compression: Compression,
    rounds: usize,
) -> Figures {
    let build = |compression| {
        Cache::builder()
            .namespace("bench-compression")
            .redis(&redis.url)
            .compression(compression)
            .default_ttl(Duration::from_secs(600))
            .build()
    };
    let writer = build(compression).await.expect("cache builds");
    let reader = build(Compression::None).await.expect("cache builds");
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let value = page();
    let raw = bincode::serialize(&value).unwrap();
    let (mut hits, mut sets) = (Vec::new(), Vec::new());
    let mut stored = 0;
    for round in 0..rounds {
        let key = format!("{name}:{round}");
        let start = Instant::now();
        writer.set(&key, value.clone(), None).await.unwrap();
        sets.push(micros(start.elapsed()));
        if round == 0 {
            stored = conn
                .strlen(format!("bench-compression:c1:k:{key}"))
                .await
                .unwrap();
        }
        // A fresh key: the reader's L1 does not hold it, so this is an L2 hit.
        let start = Instant::now();
        let got: Option<Vec<Row>> = reader.get(&key).await.unwrap();
        hits.push(micros(start.elapsed()));
        assert_eq!(got.as_ref(), Some(&value));
    }
    let (compress_us, decompress_us) = cpu(compression, &raw, rounds);
    Figures {
        name,
        stored,
        hit_us: median(&mut hits),
        set_us: median(&mut sets),
        compress_us,
        decompress_us,
    }
}

/// The algorithm alone on the value's bincode bytes: medians in µs.
fn cpu(compression: Compression, raw: &[u8], rounds: usize) -> (f64, f64) {
    let (mut c, mut d) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        let packed = match compression {
            Compression::Lz4 => lz4_flex::block::compress(raw),
            Compression::Zstd { level } => zstd::bulk::compress(raw, level).unwrap(),
            _ => return (0.0, 0.0),
        };
        c.push(micros(start.elapsed()));
        let start = Instant::now();
        let unpacked = match compression {
            Compression::Lz4 => lz4_flex::block::decompress(&packed, raw.len()).unwrap(),
            _ => zstd::bulk::decompress(&packed, raw.len()).unwrap(),
        };
        d.push(micros(start.elapsed()));
        black_box(unpacked);
    }
    (median(&mut c), median(&mut d))
}

/// The compression table, written to `bench/results/compression.md`.
pub fn compression(redis: &Redis, rounds: usize) {
    let figures = crate::multi_thread().block_on(async {
        let mut out = Vec::new();
        // Interleaved over 3 passes, so that drift on a noisy machine hits every algorithm.
        let algorithms = [
            ("none", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd 1", Compression::Zstd { level: 1 }),
            ("zstd 3", Compression::Zstd { level: 3 }),
        ];
        let mut passes: Vec<Vec<Figures>> = Vec::new();
        for _ in 0..3 {
            let mut pass = Vec::new();
            for (name, c) in algorithms {
                pass.push(measure(redis, name, c, rounds).await);
            }
            passes.push(pass);
        }
        for i in 0..algorithms.len() {
            let pick = |f: fn(&Figures) -> f64| {
                let mut v: Vec<f64> = passes.iter().map(|p| f(&p[i])).collect();
                median(&mut v)
            };
            out.push(Figures {
                name: passes[0][i].name,
                stored: passes[0][i].stored,
                hit_us: pick(|f| f.hit_us),
                set_us: pick(|f| f.set_us),
                compress_us: pick(|f| f.compress_us),
                decompress_us: pick(|f| f.decompress_us),
            });
        }
        out
    });
    let raw = bincode::serialize(&page()).unwrap().len();
    let none = &figures[0];
    let mut md = format!(
        "A page of 640 rows: {raw} bytes of bincode. One writer instance `set`s it (encode, \
         compress, `SET`), another `get`s it from Redis (`GET`, decompress, decode; its L1 \
         does not hold the key). Medians of {rounds} rounds, median of 3 interleaved passes; \
         the last two columns are the algorithm alone on the bincode bytes.\n\n\
         | compression | bytes in Redis | vs none | L2 hit | vs none | set | vs none | compress | decompress |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for f in &figures {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2}× | {:.0} µs | {:.2}× | {:.0} µs | {:.2}× | {:.0} µs | {:.0} µs |",
            f.name,
            f.stored,
            f.stored as f64 / none.stored as f64,
            f.hit_us,
            f.hit_us / none.hit_us,
            f.set_us,
            f.set_us / none.set_us,
            f.compress_us,
            f.decompress_us,
        );
    }
    crate::report("compression", "Compression of a 64 KiB value", &md);
}
