// A cached function declared inside another function's body (a test's, typically), beside
// the types and statics it uses: the function and its companion see what the body sees.
use cachemacro::{cached, Cache};
use std::sync::LazyLock;

fn main() {
    static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Local {
        id: u64,
    }

    #[cached(key = "local:<id>", cache = CACHE)]
    async fn local(id: u64) -> Local {
        Local { id }
    }

    #[cached(cache = CACHE)]
    async fn without_template(id: u64) -> u64 {
        id
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(local(7).await.id, 7);
        assert_eq!(local::key(7), "local:7");
        local::remove_cached(7).await.unwrap();
        assert_eq!(local::uncached(8).await.id, 8);
        assert_eq!(without_template(1).await, 1);
        // The body's function is part of the path, beside the module's.
        assert_eq!(
            without_template::key(1),
            format!("{}::main::without_template:1", module_path!())
        );
    });
}
