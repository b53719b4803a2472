//! The global cache: in memory until `set_global`, and a late `set_global` fails loudly.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachemacro::{cached, global, set_global, Cache, Error};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "g:<id>")]
async fn on_global(id: u32) -> u32 {
    LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

// One test: the global cache is process-wide state.
#[tokio::test]
async fn set_global_takes_effect_before_first_use_and_fails_loudly_after() {
    let configured = Cache::builder()
        .namespace("configured")
        .build()
        .await
        .unwrap();
    set_global(configured.clone()).unwrap();

    assert_eq!(on_global(1).await, 1);
    assert_eq!(on_global(1).await, 1);
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    assert!(
        configured.contains_local("g:1"),
        "the function used the configured cache"
    );
    assert!(global().contains_local("g:1"));

    let late = set_global(Cache::in_memory());
    assert!(matches!(late, Err(Error::GlobalAlreadySet)));
    let message = late.unwrap_err().to_string();
    assert!(message.contains("before the first"), "{message}");
    assert!(
        global().contains_local("g:1"),
        "the first cache stays in use"
    );
}
