//! What an operator sees: a `tracing` span per cached call (named after the function, with
//! the key, the outcome and the load time), counters per function in `Cache::stats`, and
//! the same figures through the `metrics` facade.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachemacro::{cached, Cache, FunctionStats};
use cachemacro_tests::{current, instance, on, RedisServer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A closed span: its name, its fields, and the name of its parent.
#[derive(Clone, Debug, Default)]
struct Closed {
    name: &'static str,
    fields: HashMap<String, String>,
    parent: Option<&'static str>,
}

/// Collects every span that closes, with its fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Closed>>>);

struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the span exists");
        let mut fields = Fields(HashMap::new());
        attrs.record(&mut fields);
        span.extensions_mut().insert(Closed {
            name: span.name(),
            fields: fields.0,
            parent: span.parent().map(|p| p.name()),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the span exists");
        let mut extensions = span.extensions_mut();
        let closed = extensions
            .get_mut::<Closed>()
            .expect("recorded on creation");
        let mut fields = Fields(std::mem::take(&mut closed.fields));
        values.record(&mut fields);
        closed.fields = fields.0;
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).expect("the span exists");
        let closed = span
            .extensions()
            .get::<Closed>()
            .cloned()
            .unwrap_or_default();
        self.0.lock().unwrap().push(closed);
    }
}

impl Spans {
    /// The closed spans named `name`, and forgets them.
    fn take(&self, name: &str) -> Vec<Closed> {
        let mut all = self.0.lock().unwrap();
        let (mine, rest) = all.drain(..).partition(|c| c.name == name);
        *all = rest;
        mine
    }
}

static FAIL: AtomicBool = AtomicBool::new(false);

#[cached(key = "profile:<id>", ttl = "1m", cache = current())]
async fn profile(id: u64) -> Result<String, String> {
    use tracing::Instrument;
    async move {
        if FAIL.load(Ordering::SeqCst) {
            return Err("database down".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(format!("profile {id}"))
    }
    .instrument(tracing::info_span!("db_query"))
    .await
}

#[tokio::test]
async fn every_call_runs_in_a_span_named_after_the_function() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = RedisServer::start();
    let (a, b) = (
        instance(&server, "app").await,
        instance(&server, "app").await,
    );

    on(&a, profile(1)).await.unwrap();
    on(&a, profile(1)).await.unwrap();
    on(&b, profile(1)).await.unwrap();
    // Two callers of one cold key: one loads, the other joins its load.
    let (first, second) = tokio::join!(on(&a, profile(2)), on(&a, profile(2)));
    assert_eq!(
        (first.unwrap(), second.unwrap()),
        ("profile 2".into(), "profile 2".into())
    );
    FAIL.store(true, Ordering::SeqCst);
    on(&a, profile(3)).await.unwrap_err();
    FAIL.store(false, Ordering::SeqCst);

    let calls = spans.take("profile");
    let outcomes: Vec<&str> = calls.iter().map(|c| c.fields["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        ["loaded", "l1_hit", "l2_hit", "loaded", "joined", "failed"],
        "{calls:#?}"
    );
    let load = &calls[0];
    assert!(
        load.fields["key"].ends_with(":profile:1"),
        "the storage key"
    );
    assert!(load.fields["function"].ends_with("observability::profile"));
    let load_ms: f64 = load.fields["load_ms"].parse().unwrap();
    assert!(load_ms >= 20.0, "the load's time: {load_ms}");
    assert!(
        !calls[1].fields.contains_key("load_ms"),
        "a hit loads nothing"
    );
    // The body's own spans are children of the call's.
    let queries = spans.take("db_query");
    assert_eq!(queries.len(), 3, "one per load");
    assert!(queries.iter().all(|q| q.parent == Some("profile")));
}

#[cached(key = "catalog:<id>", ttl = "1m", cache = current())]
async fn catalog(id: u64) -> Option<String> {
    (id < 100).then(|| format!("item {id}"))
}

fn figures(cache: &Cache, name: &str) -> FunctionStats {
    cache
        .stats()
        .functions
        .into_iter()
        .find(|f| f.function.ends_with(name))
        .unwrap_or_else(|| panic!("{name} has figures"))
}

#[tokio::test]
async fn stats_has_figures_per_function() {
    let server = RedisServer::start();
    let (a, b) = (
        instance(&server, "app").await,
        instance(&server, "app").await,
    );
    for id in 0..5 {
        on(&a, catalog(id)).await;
        on(&a, catalog(id)).await;
        on(&b, catalog(id)).await;
    }
    on(&a, catalog(500)).await;
    on(&a, catalog::remove_cached(1)).await.unwrap();
    on(&a, catalog::remove_cached(2)).await.unwrap();
    let f = figures(&a, "::catalog");
    assert_eq!((f.l1_hits, f.l2_hits), (5, 5));
    assert_eq!(
        (f.loads, f.load_errors),
        (6, 1),
        "item 500 is a None: not cached"
    );
    assert_eq!(f.invalidations_sent, 2);
    assert_eq!(f.load_time.count, 6);
    assert_eq!(
        f.load_time.buckets.last().unwrap().1,
        6,
        "every load within 10 s"
    );
    let stats = a.stats();
    assert!(stats.l1_entries >= 3, "{stats:?}");
    assert_eq!(
        stats
            .functions
            .iter()
            .filter(|f| f.function.ends_with("::catalog"))
            .count(),
        1,
        "the companion's invalidations count for the function, in one entry"
    );
}

#[tokio::test]
async fn evictions_are_counted() {
    let cache = Cache::builder().l1_capacity(100).build_in_memory().unwrap();
    for i in 0..1_000u64 {
        cache.set(&format!("k{i}"), i, None).await.unwrap();
    }
    let stats = cache.stats();
    assert!(stats.l1_evictions >= 800, "{stats:?}");
    assert!(stats.l1_entries <= 110, "{stats:?}");
}

#[cached(key = "price:<id>", ttl = "1m", cache = current())]
async fn price(id: u64) -> u64 {
    id * 100
}

#[tokio::test]
async fn the_metrics_facade_gets_the_figures() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
    let cache = Cache::in_memory();
    for _ in 0..3 {
        on(&cache, price(7)).await;
    }
    on(&cache, price::remove_cached(7)).await.unwrap();
    cachemacro::metrics::sync();
    let mut seen: HashMap<String, DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        if labels
            .iter()
            .any(|l| l.starts_with("function=") && !l.ends_with("::price"))
        {
            continue;
        }
        seen.insert(format!("{} {}", key.name(), labels.join(",")), value);
    }
    let path = seen
        .keys()
        .find_map(|k| k.split("function=").nth(1)?.split(',').next())
        .expect("a function label")
        .to_owned();
    let counter =
        |name: &str, extra: &str| match seen.get(&format!("{name} function={path}{extra}")) {
            Some(DebugValue::Counter(v)) => *v,
            other => panic!("{name}: {other:?} in {:?}", seen.keys()),
        };
    assert_eq!(counter("cachemacro_hits_total", ",tier=l1"), 2);
    assert_eq!(counter("cachemacro_loads_total", ""), 1);
    assert_eq!(counter("cachemacro_invalidations_sent_total", ""), 1);
    match seen.get(&format!("cachemacro_load_duration_seconds function={path}")) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 1),
        other => panic!("the histogram: {other:?}"),
    }
    assert!(
        seen.keys()
            .any(|k| k.starts_with("cachemacro_l1_entries namespace=")),
        "the cache-wide gauges: {:?}",
        seen.keys()
    );
}
