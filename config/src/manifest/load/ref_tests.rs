//! Loader tests for `ref` destinations standalone: a ref to a Broker in the manifests, to an
//! object annotated with `weft.dev/url`, with a relative `uri` beside it, and the errors that
//! say what to add.

use super::*;

fn ingress() -> Url {
    Url::parse("http://127.0.0.1:8080").unwrap()
}

/// Loads `text` for an ingress at `http://127.0.0.1:8080`.
fn load(text: &str) -> Manifests {
    load_str_with(text, Path::new("refs.yaml"), Some(&ingress()))
}

fn broker(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n"
    )
}

/// A Trigger in namespace `shop` whose subscriber is `subscriber` (YAML flow mapping).
fn trigger(name: &str, subscriber: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n\
         metadata: {{name: {name}, namespace: shop}}\n\
         spec: {{broker: orders, subscriber: {subscriber}}}\n"
    )
}

fn annotated(api_version: &str, kind: &str, name: &str, url: &str) -> String {
    format!(
        "apiVersion: {api_version}\nkind: {kind}\n\
         metadata:\n  name: {name}\n  namespace: shop\n  annotations:\n    weft.dev/url: {url:?}\n\
         spec: {{ports: [{{port: 80}}]}}\n"
    )
}

fn subscriber(manifests: &Manifests, name: &str) -> Result<String, Vec<String>> {
    let trigger = manifests
        .triggers
        .iter()
        .find(|t| t.key.name == name)
        .unwrap_or_else(|| panic!("trigger {name} is loaded"));
    match &trigger.config {
        Ok(config) => Ok(config.subscriber.to_string()),
        Err(problems) => Err(problems.iter().map(Problem::to_string).collect()),
    }
}

#[test]
fn a_ref_to_a_broker_is_its_ingress_url_wherever_the_broker_is_defined() {
    // The triggers come before the brokers they name: every document is read first.
    let text = [
        trigger(
            "same-namespace",
            "{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: audit}}",
        ),
        trigger(
            "other-namespace",
            "{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: audit, \
             namespace: ops}}",
        ),
        broker("orders", "shop"),
        broker("audit", "shop"),
        broker("audit", "ops"),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert!(manifests.problems.is_empty(), "{:?}", manifests.problems);
    assert_eq!(
        subscriber(&manifests, "same-namespace").unwrap(),
        "http://127.0.0.1:8080/shop/audit"
    );
    assert_eq!(
        subscriber(&manifests, "other-namespace").unwrap(),
        "http://127.0.0.1:8080/ops/audit"
    );
}

#[test]
fn a_dead_letter_sink_ref_of_a_broker_or_a_trigger_resolves_too() {
    let text = [
        broker("orders", "shop")
            + "spec:\n  delivery:\n    deadLetterSink:\n      ref: \
               {apiVersion: v1, kind: Service, name: dead-letters}\n",
        annotated("v1", "Service", "dead-letters", "http://127.0.0.1:9091/"),
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n\
         metadata: {name: t, namespace: shop}\n\
         spec:\n  broker: orders\n  subscriber: {uri: http://127.0.0.1:9090/}\n  delivery:\n    \
         deadLetterSink:\n      ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: \
         orders}\n      uri: /dead\n"
            .to_owned(),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert!(manifests.problems.is_empty(), "{:?}", manifests.problems);
    let broker = manifests.brokers[0].config.as_ref().unwrap();
    let sink = broker.delivery.as_ref().unwrap().dead_letter_sink.as_ref();
    assert_eq!(sink.unwrap().as_str(), "http://127.0.0.1:9091/");
    let trigger = manifests.triggers[0].config.as_ref().unwrap();
    let sink = trigger.delivery.as_ref().unwrap().dead_letter_sink.as_ref();
    assert_eq!(sink.unwrap().as_str(), "http://127.0.0.1:8080/dead");
}

#[test]
fn a_ref_to_an_annotated_service_is_its_url_and_the_service_is_not_a_problem() {
    let text = [
        broker("orders", "shop"),
        trigger(
            "core",
            "{ref: {apiVersion: v1, kind: Service, name: event-display}}",
        ),
        trigger(
            "knative",
            "{ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: event-display}}",
        ),
        annotated("v1", "Service", "event-display", "http://127.0.0.1:9090/"),
        annotated(
            "serving.knative.dev/v1",
            "Service",
            "event-display",
            "http://127.0.0.1:9092/display",
        ),
        // Without the annotation, another kind is still ignored with a problem.
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
            .to_owned(),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert_eq!(
        subscriber(&manifests, "core").unwrap(),
        "http://127.0.0.1:9090/"
    );
    assert_eq!(
        subscriber(&manifests, "knative").unwrap(),
        "http://127.0.0.1:9092/display"
    );
    let problems: Vec<_> = manifests.problems.iter().map(Problem::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("refs.yaml (document 6, Deployment shop/web): is ignored"),
        "{problems:?}"
    );
}

#[test]
fn a_uri_beside_a_ref_is_resolved_relative_to_the_refs_url() {
    let text = [
        broker("orders", "shop"),
        annotated("v1", "Service", "display", "http://127.0.0.1:9090/base/"),
        trigger(
            "relative",
            "{ref: {apiVersion: v1, kind: Service, name: display}, uri: orders?x=1}",
        ),
        trigger(
            "rooted",
            "{ref: {apiVersion: v1, kind: Service, name: display}, uri: /orders}",
        ),
        trigger(
            "to-broker",
            "{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}, \
             uri: extra}",
        ),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert_eq!(
        subscriber(&manifests, "relative").unwrap(),
        "http://127.0.0.1:9090/base/orders?x=1"
    );
    assert_eq!(
        subscriber(&manifests, "rooted").unwrap(),
        "http://127.0.0.1:9090/orders"
    );
    assert_eq!(
        subscriber(&manifests, "to-broker").unwrap(),
        "http://127.0.0.1:8080/shop/extra"
    );
}

#[test]
fn an_unknown_ref_says_what_to_add() {
    let text = [
        broker("orders", "shop"),
        trigger(
            "display",
            "{ref: {apiVersion: v1, kind: Service, name: event-display}}",
        ),
        trigger(
            "missing-broker",
            "{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: audit}}",
        ),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert_eq!(
        subscriber(&manifests, "display").unwrap_err(),
        [
            "refs.yaml (document 2, Trigger shop/display): spec.subscriber.ref: Service \
          shop/event-display is not known standalone; add a Service manifest (apiVersion v1) \
          named event-display in namespace shop with the annotation weft.dev/url: <its URL> \
          (see README)"
        ]
    );
    assert_eq!(
        subscriber(&manifests, "missing-broker").unwrap_err(),
        [
            "refs.yaml (document 3, Trigger shop/missing-broker): spec.subscriber.ref: Broker \
          shop/audit is not in the manifests; add it, or name a broker that is there"
        ]
    );
}

#[test]
fn a_bad_annotation_is_a_problem_on_its_object_and_on_refs_to_it() {
    let text = [
        broker("orders", "shop"),
        annotated("v1", "Service", "display", "/relative"),
        trigger("t", "{ref: {apiVersion: v1, kind: Service, name: display}}"),
    ]
    .join("---\n");
    let manifests = load(&text);
    let problems: Vec<_> = manifests.problems.iter().map(Problem::to_string).collect();
    assert_eq!(
        problems,
        [
            "refs.yaml (document 2, Service shop/display): metadata.annotations[weft.dev/url]: \
          \"/relative\" is not a valid URL (relative URL without a base); give the absolute \
          http or https URL the object answers on"
        ]
    );
    let error = subscriber(&manifests, "t").unwrap_err();
    assert!(
        error[0].ends_with(
            "Service shop/display has an invalid weft.dev/url annotation (see \
                            the problem reported on it)"
        ),
        "{error:?}"
    );
}

#[test]
fn without_an_ingress_a_broker_ref_has_no_url_yet() {
    let text = [
        broker("orders", "shop"),
        trigger(
            "t",
            "{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}",
        ),
    ]
    .join("---\n");
    let manifests = load_str(&text, Path::new("refs.yaml"));
    let error = subscriber(&manifests, "t").unwrap_err();
    assert!(error[0].contains("once weft up listens"), "{error:?}");
}
