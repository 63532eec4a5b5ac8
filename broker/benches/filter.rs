//! Filter evaluation per event: what the dispatcher pays for each trigger and event.
//!
//! `cargo bench -p weft-broker --bench filter`; figures go to BENCHMARKS.md ("Filters").
//! Each filter is compiled once, as the data plane does when a trigger is applied; only
//! `Filter::matches` is timed. The event carries what a binary-mode request would: the
//! required attributes, a subject, and string extensions.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use weft_broker::filter::Filter;
use weft_config::{AttributeValue, Event, ObjectKey, SubscriptionsFilter, TriggerConfig};

fn event() -> Event {
    let mut event = Event::new(
        "4f6e2a1c-9b1d-4c47-8a55-0d3c2b9e7f10",
        "https://example.com/orders",
        "com.example.order.created",
    )
    .expect("valid event");
    event
        .set_subject(Some("orders/12345".into()))
        .expect("valid subject");
    for (name, value) in [
        ("priority", "5"),
        ("region", "eu-west-1"),
        ("tenant", "acme"),
    ] {
        event
            .set_extension(name, AttributeValue::String(value.into()))
            .expect("valid extension");
    }
    event
}

fn trigger(filters: Vec<SubscriptionsFilter>) -> TriggerConfig {
    TriggerConfig {
        key: ObjectKey::new("default", "bench"),
        generation: None,
        broker: "default".into(),
        filter_attributes: BTreeMap::new(),
        filters,
        subscriber: "http://127.0.0.1:8080/".parse().expect("valid URL"),
        delivery: None,
        order: Default::default(),
        max_in_flight: None,
    }
}

fn map(name: &str, value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_owned(), value.to_owned())])
}

fn compile(filters: Vec<SubscriptionsFilter>) -> Filter {
    Filter::compile(&trigger(filters)).expect("valid filter")
}

fn bench_filters(c: &mut Criterion) {
    let event = event();
    let cases = [
        (
            "exact_type",
            compile(vec![SubscriptionsFilter::Exact(map(
                "type",
                "com.example.order.created",
            ))]),
        ),
        (
            "prefix_and_suffix",
            compile(vec![
                SubscriptionsFilter::Prefix(map("type", "com.example.")),
                SubscriptionsFilter::Suffix(map("source", "/orders")),
            ]),
        ),
        (
            "cesql_like_and_int",
            compile(vec![SubscriptionsFilter::Cesql(
                "type LIKE 'com.example.%' AND INT(priority) > 3".into(),
            )]),
        ),
    ];
    let mut group = c.benchmark_group("filter");
    for (name, filter) in &cases {
        assert!(filter.matches(&event), "{name} should match the event");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(filter).matches(black_box(&event)))
        });
    }
    group.finish();

    // A broker with a hundred triggers: every filter runs for every event. A mix of the
    // three kinds above, most of them not matching (different types and regions).
    let hundred: Vec<Filter> = (0..100)
        .map(|i| match i % 3 {
            0 => compile(vec![SubscriptionsFilter::Exact(map(
                "type",
                &format!("com.example.order.kind{i}"),
            ))]),
            1 => compile(vec![
                SubscriptionsFilter::Prefix(map("type", "com.example.")),
                SubscriptionsFilter::Suffix(map("region", &format!("-{i}"))),
            ]),
            _ => compile(vec![SubscriptionsFilter::Cesql(format!(
                "type LIKE 'com.example.%' AND INT(priority) > {i}"
            ))]),
        })
        .collect();
    c.bench_function("filter/hundred_triggers", |b| {
        b.iter(|| {
            hundred
                .iter()
                .filter(|filter| filter.matches(black_box(&event)))
                .count()
        })
    });

    c.bench_function("filter/compile_cesql", |b| {
        let trigger = trigger(vec![SubscriptionsFilter::Cesql(
            "type LIKE 'com.example.%' AND INT(priority) > 3".into(),
        )]);
        b.iter(|| Filter::compile(black_box(&trigger)))
    });
}

// The macro defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench_filters);
}
criterion_main!(group::benches);
