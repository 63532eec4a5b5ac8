//! Trigger filters as the data plane sees them: compiled from a `TriggerConfig`, invalid
//! ones reported for their own trigger (naming the filter and, for CESQL, the position),
//! every other trigger unaffected.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_broker::filter::{Filter, FilterError};
use weft_broker::{BrokerError, DataPlane, DataPlaneOptions};
use weft_channels::memory::MemoryChannel;
use weft_config::{
    AttributeValue, DeliveryConfig, Event, ObjectKey, SubscriptionsFilter, TriggerConfig,
};

fn trigger(name: &str, filters: Vec<SubscriptionsFilter>) -> TriggerConfig {
    TriggerConfig {
        key: ObjectKey::new("default", name),
        generation: None,
        broker: "default".into(),
        filter_attributes: BTreeMap::new(),
        filters,
        subscriber: "http://127.0.0.1:9/".parse().unwrap(),
        delivery: None,
        order: Default::default(),
        max_in_flight: None,
    }
}

fn exact(name: &str, value: &str) -> SubscriptionsFilter {
    SubscriptionsFilter::Exact(BTreeMap::from([(name.to_owned(), value.to_owned())]))
}

fn cesql(source: &str) -> SubscriptionsFilter {
    SubscriptionsFilter::Cesql(source.to_owned())
}

#[test]
fn an_invalid_cesql_expression_names_the_filter_and_the_position() {
    let config = trigger(
        "orders",
        vec![
            exact("type", "com.example.created"),
            SubscriptionsFilter::Any(vec![
                cesql("priority > 3"),
                cesql("subject LIKE 'orders/%' AND (region = 'eu' OR)"),
            ]),
        ],
    );
    let error = Filter::compile(&config).unwrap_err();
    let FilterError::Cesql { filter, source } = &error else {
        panic!("not a CESQL error: {error:?}");
    };
    assert_eq!(filter, "spec.filters[1].any[1].cesql");
    assert_eq!(source.position, 45);
    assert_eq!(
        error.to_string(),
        "spec.filters[1].any[1].cesql: invalid CloudEvents SQL expression at position 45: \
         expected an expression, found ')'"
    );
}

#[test]
fn unknown_functions_are_reported_when_the_trigger_is_loaded() {
    let error = Filter::compile(&trigger("t", vec![cesql("LOWERCASE(type) = 'x'")])).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("spec.filters[0].cesql: invalid CloudEvents SQL expression at position 0: unknown function LOWERCASE"),
        "{error}"
    );
}

#[test]
fn a_valid_filter_matches_per_event() {
    let filter = Filter::compile(&trigger(
        "t",
        vec![
            SubscriptionsFilter::Prefix(BTreeMap::from([("type".into(), "com.example.".into())])),
            cesql("INT(priority) > 3 AND region IN ('eu', 'us')"),
        ],
    ))
    .unwrap();
    let event = |priority: i32, region: &str| {
        let mut event = Event::new("1", "/src", "com.example.created").unwrap();
        event
            .set_extension("priority", AttributeValue::Integer(priority))
            .unwrap();
        event
            .set_extension("region", AttributeValue::String(region.into()))
            .unwrap();
        event
    };
    assert!(filter.matches(&event(5, "eu")));
    assert!(!filter.matches(&event(3, "eu")));
    assert!(!filter.matches(&event(5, "asia")));
}

#[tokio::test]
async fn an_invalid_filter_fails_only_its_own_trigger() {
    let dataplane = DataPlane::new(Arc::new(MemoryChannel::new()), DataPlaneOptions::default());
    let broker = ObjectKey::new("default", "default");
    dataplane.apply_broker(&broker).await.unwrap();
    let delivery = DeliveryConfig::default();

    let bad = trigger("bad", vec![cesql("type = 'a' AND")]);
    let error = dataplane.run_trigger(&bad, &delivery).await.unwrap_err();
    assert!(matches!(error, BrokerError::Filter { .. }), "{error:?}");
    assert_eq!(error.reason(), "InvalidFilter");
    assert_eq!(
        error.to_string(),
        "trigger default/bad: spec.filters[0].cesql: invalid CloudEvents SQL expression at \
         position 14: expected an expression, found the end of the expression"
    );
    assert!(!dataplane.is_running(&bad.key));

    let good = trigger("good", vec![cesql("type = 'a'")]);
    dataplane.run_trigger(&good, &delivery).await.unwrap();
    assert!(dataplane.is_running(&good.key));
    dataplane.stop_trigger(&good.key).await;
}
