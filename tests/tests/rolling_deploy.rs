//! What an instance of this release does so that instances of the previous one (0.1) beside
//! it, during a rolling deploy, keep every invalidation promise: checked here against what
//! 0.1 does in Redis (its commands, sent by hand), and end to end, with real 0.1 processes,
//! by `tests/mixed_versions.rs`.

use std::time::{Duration, Instant};

use cachemacro::{cached, Cache};
use cachemacro_tests::{current, instance, on, RedisServer};

#[cached(key = "article:<id>", tags = ["author:<author>"], ignore = [author], cache = current())]
async fn article(author: u64, id: u64) -> String {
    format!("article {id} by {author}")
}

fn is_member(server: &RedisServer, set: &str, member: &str) -> bool {
    redis::cmd("SISMEMBER")
        .arg(set)
        .arg(member)
        .query(&mut server.connection())
        .unwrap()
}

#[tokio::test]
async fn tagged_entries_are_registered_where_0_1_looks_for_them() {
    let server = RedisServer::start();
    let new = instance(&server, "app").await;
    // 0.1's `invalidate_tag("author:7")` reads only the plain set `app:c1:t:author:7`: a new
    // instance registers there too, whether or not a 0.1 instance made the set first.
    on(&new, article(7, 1)).await;
    assert!(
        is_member(&server, "app:c1:t:author:7", "app:c1:k:article:1"),
        "registered in 0.1's set, which did not exist"
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg("app:c1:t:author:7")
        .query(&mut server.connection())
        .unwrap();
    assert!(ttl > 0, "the set ends with its entries ({ttl} ms)");
    // After a new instance invalidated the tag (which drains that set), the next load
    // registers there again.
    new.invalidate_tag("author:7").await.unwrap();
    on(&new, article(7, 2)).await;
    assert!(is_member(
        &server,
        "app:c1:t:author:7",
        "app:c1:k:article:2"
    ));

    // Once no 0.1 instance runs, it can be turned off.
    let alone = Cache::builder()
        .namespace("solo")
        .redis(server.url())
        .compat_0_1(false)
        .build()
        .await
        .unwrap();
    on(&alone, article(8, 3)).await;
    assert!(!is_member(
        &server,
        "solo:c1:t:author:8",
        "solo:c1:k:article:3"
    ));
}

#[tokio::test]
async fn a_bump_by_0_1_which_announces_nothing_is_seen_within_100_ms() {
    let server = RedisServer::start();
    let new = instance(&server, "app").await;
    let before = new.bump_version("catalog").await.unwrap();
    assert_eq!(new.version("catalog").await.unwrap(), before);
    // 0.1's bump: INCR, and no bus message.
    let bumped: u64 = redis::cmd("INCR")
        .arg("app:c1:v:catalog")
        .query(&mut server.connection())
        .unwrap();
    let started = Instant::now();
    while new.version("catalog").await.unwrap() != bumped {
        // The bound is 100 ms (a version is read again every 50 ms); 150 ms of margin for
        // a loaded machine.
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "the bump is seen within 100 ms"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("a 0.1 bump was seen after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_version_that_went_back_is_moved_past_the_last_one_known() {
    let server = RedisServer::start();
    let a = instance(&server, "app").await;
    let b = instance(&server, "app").await;
    let known = a.bump_version("catalog").await.unwrap();
    assert!(known > 1_000_000, "a bump starts from the time in ms");
    // 0.1's purge deletes the counter, and its next bump counts from 1.
    let mut conn = server.connection();
    let _: () = redis::cmd("DEL")
        .arg("app:c1:v:catalog")
        .query(&mut conn)
        .unwrap();
    let one: u64 = redis::cmd("INCR")
        .arg("app:c1:v:catalog")
        .query(&mut conn)
        .unwrap();
    assert_eq!(one, 1);
    // The new instances see that bump as a bump: a version past every one they used, and
    // the same for both, which 0.1 reads from Redis too.
    let started = Instant::now();
    let moved = loop {
        let version = a.version("catalog").await.unwrap();
        if version != known {
            break version;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the bump is seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(moved > known, "never back: {moved} after {known}");
    let in_redis: u64 = redis::cmd("GET")
        .arg("app:c1:v:catalog")
        .query(&mut conn)
        .unwrap();
    assert_eq!(in_redis, moved, "0.1 reads the same version from Redis");
    let started = Instant::now();
    while b.version("catalog").await.unwrap() != moved {
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "the other new instance follows"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 0.1 bumps again from there: seen as any bump.
    let next: u64 = redis::cmd("INCR")
        .arg("app:c1:v:catalog")
        .query(&mut conn)
        .unwrap();
    assert_eq!(next, moved + 1);
    let started = Instant::now();
    while a.version("catalog").await.unwrap() != next {
        assert!(started.elapsed() < Duration::from_millis(250));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
