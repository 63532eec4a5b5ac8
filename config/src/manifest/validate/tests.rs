//! Tests of Broker and Trigger validation as a whole: required fields, metadata, annotations,
//! and that every problem is reported at once.

use std::time::Duration;

use super::*;
use crate::filter::Filter;
use crate::manifest::types::SubscriptionsAPIFilter;
use crate::model::{DeliveryConfig, ObjectKey};

fn trigger(yaml: &str) -> Trigger {
    serde_saphyr::from_str(yaml).unwrap()
}

fn broker(yaml: &str) -> Broker {
    serde_saphyr::from_str(yaml).unwrap()
}

const MINIMAL_TRIGGER: &str = "
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders
spec:
  broker: default
  subscriber:
    uri: http://127.0.0.1:9090/orders
";

/// The single error of an invalid trigger.
fn only_error(trigger: Trigger) -> FieldError {
    let errors = trigger.validate().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

fn with_annotations(pairs: &[(&str, &str)]) -> Trigger {
    let mut t = trigger(MINIMAL_TRIGGER);
    for (key, value) in pairs {
        t.metadata
            .annotations
            .insert(key.to_string(), value.to_string());
    }
    t
}

#[test]
fn minimal_trigger_gets_defaults() {
    let config = trigger(MINIMAL_TRIGGER).validate().unwrap();
    assert_eq!(config.key, ObjectKey::new("default", "orders"));
    assert_eq!(config.broker_key(), ObjectKey::new("default", "default"));
    assert_eq!(config.subscriber.as_str(), "http://127.0.0.1:9090/orders");
    assert_eq!(config.generation, None);
    assert_eq!(config.filter, Filter::All);
    assert_eq!(config.delivery, None);
    assert_eq!(config.order, DeliveryOrder::Unordered);
    assert_eq!(config.max_in_flight, None);
}

#[test]
fn full_trigger_is_converted() {
    let config = trigger(
        "
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders
  namespace: shop
  generation: 4
  annotations:
    weft.dev/delivery-order: ordered
    weft.dev/max-in-flight: \"8\"
spec:
  broker: main
  filter:
    attributes:
      type: com.example.order.created
      source: \"\"
  subscriber:
    uri: https://orders.example/in
  delivery:
    retry: 2
    backoffDelay: PT1S
",
    )
    .validate()
    .unwrap();
    assert_eq!(config.key, ObjectKey::new("shop", "orders"));
    assert_eq!(config.broker_key(), ObjectKey::new("shop", "main"));
    assert_eq!(config.generation, Some(4));
    assert_eq!(
        config.filter,
        Filter::Attributes(vec![
            ("source".to_owned(), String::new()),
            ("type".to_owned(), "com.example.order.created".to_owned()),
        ])
    );
    assert_eq!(config.order, DeliveryOrder::Ordered);
    assert_eq!(config.max_in_flight, Some(8));
    assert_eq!(
        config.delivery,
        Some(DeliveryConfig {
            retry: 2,
            backoff_delay: Duration::from_secs(1),
            ..DeliveryConfig::default()
        })
    );
}

#[test]
fn broker_name_is_required() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.spec.broker.clear();
    let error = only_error(t);
    assert_eq!(error.field, "spec.broker");
    assert!(error.message.contains("name of a broker"), "{error}");
}

#[test]
fn broker_ref_is_reported() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.spec.broker_ref = Some(KReference {
        kind: "Broker".into(),
        name: "other".into(),
        api_version: EVENTING_API_VERSION.into(),
        namespace: Some("elsewhere".into()),
        ..KReference::default()
    });
    let error = only_error(t);
    assert_eq!(error.field, "spec.brokerRef");
    assert!(error.message.contains("use spec.broker"), "{error}");
}

#[test]
fn subscriber_ref_and_bad_uri_are_reported() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.spec.subscriber.reference = Some(KReference {
        kind: "Service".into(),
        name: "display".into(),
        api_version: "serving.knative.dev/v1".into(),
        ..KReference::default()
    });
    let error = only_error(t);
    assert_eq!(error.field, "spec.subscriber.ref");
    assert!(error.message.contains("use spec.subscriber.uri"), "{error}");

    let mut t = trigger(MINIMAL_TRIGGER);
    t.spec.subscriber.uri = Some("/orders".into());
    let error = only_error(t);
    assert_eq!(error.field, "spec.subscriber.uri");
}

#[test]
fn names_must_be_valid_kubernetes_names() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.metadata.name = "Orders_1".into();
    let error = only_error(t);
    assert_eq!(error.field, "metadata.name");
    assert!(
        error.message.contains("lowercase letters, digits"),
        "{error}"
    );

    let mut t = trigger(MINIMAL_TRIGGER);
    t.metadata.namespace = Some("my.ns".into());
    let error = only_error(t);
    assert_eq!(error.field, "metadata.namespace");

    for good in ["a", "orders-1", "a.b-c", "0abc"] {
        assert!(is_dns_subdomain(good), "{good}");
    }
    for bad in ["", "-a", "a-", "a..b", "A", &"a".repeat(64)] {
        assert!(!is_dns_subdomain(bad), "{bad}");
    }
}

#[test]
fn wrong_api_version_or_kind_is_reported() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.api_version = "eventing.knative.dev/v1beta1".into();
    let error = only_error(t);
    assert_eq!(error.field, "apiVersion");
    assert!(
        error.message.contains("use eventing.knative.dev/v1"),
        "{error}"
    );
}

#[test]
fn delivery_order_annotations() {
    let order = |pairs: &[(&str, &str)]| with_annotations(pairs).validate().map(|c| c.order);
    assert_eq!(
        order(&[(KAFKA_DELIVERY_ORDER_ANNOTATION, "ordered")]),
        Ok(DeliveryOrder::Ordered)
    );
    assert_eq!(
        order(&[(DELIVERY_ORDER_ANNOTATION, "unordered")]),
        Ok(DeliveryOrder::Unordered)
    );
    assert_eq!(
        order(&[
            (DELIVERY_ORDER_ANNOTATION, "ordered"),
            (KAFKA_DELIVERY_ORDER_ANNOTATION, "ordered")
        ]),
        Ok(DeliveryOrder::Ordered)
    );

    let error = only_error(with_annotations(&[(DELIVERY_ORDER_ANNOTATION, "fifo")]));
    assert_eq!(error.field, "metadata.annotations[weft.dev/delivery-order]");
    assert!(
        error.message.contains("use ordered or unordered"),
        "{error}"
    );

    let error = only_error(with_annotations(&[(
        KAFKA_DELIVERY_ORDER_ANNOTATION,
        "Ordered",
    )]));
    assert_eq!(
        error.field,
        "metadata.annotations[kafka.eventing.knative.dev/delivery.order]"
    );

    let error = only_error(with_annotations(&[
        (DELIVERY_ORDER_ANNOTATION, "ordered"),
        (KAFKA_DELIVERY_ORDER_ANNOTATION, "unordered"),
    ]));
    assert!(error.message.contains("disagrees"), "{error}");
}

#[test]
fn max_in_flight_must_be_an_integer_from_1_to_100000() {
    for bad in ["0", "-1", "many", "1.5", "", "100001", "100000000000"] {
        let error = only_error(with_annotations(&[(MAX_IN_FLIGHT_ANNOTATION, bad)]));
        assert_eq!(error.field, "metadata.annotations[weft.dev/max-in-flight]");
        assert!(
            error.message.contains("is not an integer from 1 to 100000"),
            "{error}"
        );
    }
    let most = with_annotations(&[(MAX_IN_FLIGHT_ANNOTATION, "100000")]);
    assert_eq!(most.validate().unwrap().max_in_flight, Some(100_000));
}

/// A trigger with `delivery` given as YAML lines under `spec.delivery`.
fn with_delivery(lines: &str) -> Trigger {
    trigger(&format!("{MINIMAL_TRIGGER}  delivery:\n{lines}"))
}

#[test]
fn retry_is_bounded_by_10000() {
    for bad in ["1000000000", "10001", "-1"] {
        let error = only_error(with_delivery(&format!("    retry: {bad}\n")));
        assert_eq!(error.field, "spec.delivery.retry");
        assert!(
            error.message.starts_with(bad) && error.message.contains("give 0 to 10000 retries"),
            "{error}"
        );
    }
    let most = with_delivery("    retry: 10000\n").validate().unwrap();
    assert_eq!(most.delivery.unwrap().retry, 10_000);
}

#[test]
fn delivery_durations_are_at_most_a_day() {
    for field in ["backoffDelay", "backoffMax", "timeout", "retryAfterMax"] {
        for bad in ["P1DT1S", "P2W", "PT100000S"] {
            let error = only_error(with_delivery(&format!("    {field}: {bad}\n")));
            assert_eq!(error.field, format!("spec.delivery.{field}"));
            assert!(
                error
                    .message
                    .contains("is longer than a day; give a duration from PT0S to P1D"),
                "{error}"
            );
        }
        let day = with_delivery(&format!("    {field}: P1D\n")).validate();
        assert!(day.is_ok(), "{field}: P1D is allowed: {day:?}");
    }
    let broker = broker(
        "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
spec:
  delivery:
    retry: 1000000000
    backoffDelay: P3D
",
    );
    let fields: Vec<_> = broker
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        ["spec.delivery.retry", "spec.delivery.backoffDelay"]
    );
}

#[test]
fn a_cesql_syntax_error_is_a_problem_of_the_manifest() {
    let mut t = trigger(MINIMAL_TRIGGER);
    t.spec.filters = vec![
        SubscriptionsAPIFilter {
            prefix: Some([("type".to_owned(), "com.example.".to_owned())].into()),
            ..Default::default()
        },
        SubscriptionsAPIFilter {
            cesql: Some("type = 'x' AND (".into()),
            ..Default::default()
        },
    ];
    let error = only_error(t);
    assert_eq!(error.field, "spec.filters[1].cesql");
    assert_eq!(
        error.to_string(),
        "spec.filters[1].cesql: invalid CloudEvents SQL expression at position 16: expected \
         an expression, found the end of the expression"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = trigger(
        "
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: broken
  annotations:
    weft.dev/max-in-flight: none
spec:
  filter:
    attributes:
      Type: x
  filters:
    - {}
  subscriber: {}
  delivery:
    retry: -2
    backoffPolicy: sometimes
",
    )
    .validate()
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.broker",
            "spec.filter.attributes[Type]",
            "spec.filters[0]",
            "spec.subscriber",
            "spec.delivery.retry",
            "spec.delivery.backoffPolicy",
            "metadata.annotations[weft.dev/max-in-flight]",
        ]
    );
}

#[test]
fn broker_is_converted() {
    let config = broker(
        "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  generation: 2
  annotations:
    eventing.knative.dev/broker.class: Weft
spec:
  config:
    apiVersion: v1
    kind: ConfigMap
    name: config-br-defaults
    namespace: knative-eventing
  delivery:
    retry: 3
    deadLetterSink:
      uri: http://127.0.0.1:9091/dead-letters
",
    )
    .validate()
    .unwrap();
    assert_eq!(config.key, ObjectKey::new("default", "default"));
    assert_eq!(config.generation, Some(2));
    assert_eq!(config.class.as_deref(), Some("Weft"));
    let delivery = config.delivery.unwrap();
    assert_eq!(delivery.retry, 3);
    assert_eq!(
        delivery.dead_letter_sink.unwrap().as_str(),
        "http://127.0.0.1:9091/dead-letters"
    );
}

#[test]
fn broker_without_spec_is_valid() {
    let config = broker("{apiVersion: eventing.knative.dev/v1, kind: Broker, metadata: {name: b}}")
        .validate()
        .unwrap();
    assert_eq!(config.class, None);
    assert_eq!(config.delivery, None);
}

#[test]
fn broker_config_reference_needs_kind_name_and_api_version() {
    let errors = broker(
        "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: b}
spec:
  config: {name: config-br-defaults}
  delivery:
    deadLetterSink:
      ref: {apiVersion: v1, kind: Service, name: dls}
",
    )
    .validate()
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.config.kind",
            "spec.config.apiVersion",
            "spec.delivery.deadLetterSink.ref"
        ]
    );
    assert_eq!(errors[0].message, "is required");
}
