//! A body whose future is not `Send` (an `Rc` held across an `.await`, as on actix-web's
//! single-threaded workers), a `mut` parameter, a parameter only the key reads, and
//! memoized recursion compile, without warnings, and cache.

#![deny(warnings)]

use std::rc::Rc;

use cachemacro::cached;

#[cached(key = "rc:<id>")]
async fn rc_across_await(id: u64) -> u64 {
    let rc = Rc::new(id);
    tokio::task::yield_now().await;
    *rc
}

#[cached(key = "m:<id>")]
async fn mutates(mut id: u64) -> u64 {
    id += 1;
    id
}

#[cached(key = "unused:<id>")]
async fn key_only(id: u64) -> u64 {
    7
}

#[cached(key = "fib:<n>")]
async fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    Box::pin(fib(n - 1)).await + Box::pin(fib(n - 2)).await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(rc_across_await(1).await, 1);
        assert_eq!(mutates(1).await, 2);
        assert_eq!(key_only(1).await, 7);
        assert_eq!(fib(50).await, 12_586_269_025);
        assert!(cachemacro::global().contains_local(&rc_across_await::key(1)));
    });
}
