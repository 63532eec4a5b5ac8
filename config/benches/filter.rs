//! Filter evaluation per event: what the dispatcher pays for each trigger and event.
//!
//! `cargo bench -p weft-config --bench filter`; figures go to BENCHMARKS.md ("Filters").
//! Each filter is compiled once, as validation does when a trigger is loaded; only
//! `Filter::matches` is timed, and separately the compilation of a CESQL expression. The event carries what a binary-mode request would: the
//! required attributes, a subject, and string extensions.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use weft_config::filter::Filter;
use weft_config::filter::cesql::Expression;
use weft_config::manifest::Trigger;
use weft_config::{AttributeValue, Event};

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

/// Compiles `filters`, the YAML list of a Trigger's `spec.filters`, as validation does.
fn compile(filters: &str) -> Filter {
    let manifest = format!(
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: bench}}
spec:
  broker: default
  subscriber: {{uri: \"http://127.0.0.1:8080/\"}}
  filters:
{filters}"
    );
    let trigger: Trigger = serde_saphyr::from_str(&manifest).expect("a Trigger manifest");
    trigger.validate().expect("a valid trigger").filter
}

fn bench_filters(c: &mut Criterion) {
    let event = event();
    let cases = [
        (
            "exact_type",
            compile("  - exact: {type: com.example.order.created}"),
        ),
        (
            "prefix_and_suffix",
            compile(
                "  - prefix: {type: com.example.}
  - suffix: {source: /orders}",
            ),
        ),
        (
            "cesql_like_and_int",
            compile("  - cesql: \"type LIKE 'com.example.%' AND INT(priority) > 3\""),
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
            0 => compile(&format!("  - exact: {{type: com.example.order.kind{i}}}")),
            1 => compile(&format!(
                "  - prefix: {{type: com.example.}}
  - suffix: {{region: \"-{i}\"}}"
            )),
            _ => compile(&format!(
                "  - cesql: \"type LIKE 'com.example.%' AND INT(priority) > {i}\""
            )),
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
        let source = "type LIKE 'com.example.%' AND INT(priority) > 3";
        b.iter(|| Expression::compile(black_box(source)))
    });
}

// The macro defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench_filters);
}
criterion_main!(group::benches);
