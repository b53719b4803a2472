//! Codecs: types that bincode cannot read back (common serde attributes) still share
//! their values through Redis, and the JSON codec works as the configured one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::codec::Json;
use cachemacro::{cached, Cache};
use cachemacro_tests::{current, instance, on, RedisServer};
use serde::{Deserialize, Serialize};

/// A row whose optional field is left out when empty: bincode writes fewer bytes than it
/// reads back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    nickname: Option<String>,
    #[serde(flatten)]
    audit: Audit,
    contact: Contact,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Audit {
    created_by: String,
}

/// Read by trying each shape in turn: needs a self-describing format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Contact {
    Email { email: String },
    Phone { phone: u64 },
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        nickname: id.is_multiple_of(2).then(|| format!("nick{id}")),
        audit: Audit {
            created_by: "import".into(),
        },
        contact: if id.is_multiple_of(3) {
            Contact::Phone {
                phone: 5550000 + id,
            }
        } else {
            Contact::Email {
                email: format!("{id}@example.com"),
            }
        },
    }
}

static PROFILE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "profile:<id>", cache = current())]
async fn load_profile(id: u64) -> Profile {
    PROFILE_LOADS.fetch_add(1, Ordering::SeqCst);
    profile(id)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Plain {
    id: u64,
    name: String,
}

#[cached(key = "plain:<id>", cache = current())]
async fn load_plain(id: u64) -> Plain {
    Plain {
        id,
        name: format!("plain {id}"),
    }
}

/// The codec's bytes of the value under `key` (after the 20-byte envelope header).
fn payload(server: &RedisServer, key: &str) -> Vec<u8> {
    server.stored_bytes(key).expect("a stored value")[20..].to_vec()
}

#[tokio::test]
async fn types_with_skip_serializing_if_flatten_and_untagged_are_shared_through_redis() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    for id in 0..12 {
        assert_eq!(on(&a, load_profile(id)).await, profile(id));
    }
    assert_eq!(PROFILE_LOADS.load(Ordering::SeqCst), 12);
    for id in 0..12 {
        assert_eq!(
            on(&b, load_profile(id)).await,
            profile(id),
            "B reads A's value"
        );
    }
    assert_eq!(
        PROFILE_LOADS.load(Ordering::SeqCst),
        12,
        "every read on B came from Redis, rows with an empty field included"
    );
    assert_eq!(b.stats().unusable_values, 0);
    assert_eq!(b.stats().l2_hits, 12);
    // The type went to JSON; a plain type stays in bincode.
    let stored = payload(&server, "app:c1:k:profile:1");
    assert!(
        stored.starts_with(b"{"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    on(&a, load_plain(1)).await;
    let stored = payload(&server, "app:c1:k:plain:1");
    assert!(!stored.starts_with(b"{"), "bincode for a plain type");
}

static JSON_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "json:<id>", cache = current())]
async fn json_row(id: u64) -> HashMap<String, Vec<u32>> {
    JSON_LOADS.fetch_add(1, Ordering::SeqCst);
    HashMap::from([(format!("row{id}"), vec![1, 2, 3])])
}

#[tokio::test]
async fn the_json_codec_stores_readable_values() {
    let server = RedisServer::start();
    let json = || {
        Cache::builder()
            .namespace("app")
            .redis(server.url())
            .codec(Json)
            .build()
    };
    let a = json().await.unwrap();
    let b = json().await.unwrap();
    let row = on(&a, json_row(7)).await;
    assert_eq!(on(&b, json_row(7)).await, row);
    assert_eq!(JSON_LOADS.load(Ordering::SeqCst), 1);
    let stored = payload(&server, "app:c1:k:json:7");
    assert_eq!(stored, br#"{"row7":[1,2,3]}"#);
    // An instance on the default codec reads JSON values too (the envelope says which
    // codec wrote them): a switch of codec does not empty the cache.
    let bincode = instance(&server, "app").await;
    assert_eq!(on(&bincode, json_row(7)).await, row);
    assert_eq!(JSON_LOADS.load(Ordering::SeqCst), 1);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Grid {
    cells: HashMap<(u8, u8), u8>,
}

#[tokio::test]
async fn a_value_json_cannot_write_stays_in_this_process() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .namespace("app")
        .redis(server.url())
        .codec(Json)
        .build()
        .await
        .unwrap();
    let grid = Grid {
        cells: HashMap::from([((1, 2), 3)]),
    };
    let err = cache.set("grid", grid.clone(), None).await.unwrap_err();
    assert!(
        matches!(err, cachemacro::Error::Encode { .. }),
        "tuple keys cannot be JSON object keys: {err}"
    );
    assert_eq!(cache.get::<Grid>("grid").await.unwrap(), Some(grid));
}
