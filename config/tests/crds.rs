//! The Broker and Trigger CRDs: the YAML checked in under `config/crds/` is what the types
//! generate, every example and fixture reads as a cluster object and back without losing
//! anything, cluster objects validate as folder manifests do, and the CRDs' CEL rules reject
//! what Knative's admission webhook rejects (evaluated here without an API server).
//!
//! When the types or rules change, regenerate the checked-in files and commit them:
//!
//! ```text
//! WEFT_UPDATE_CRDS=1 cargo test -p weft-config --test crds
//! ```
//!
//! (`weft crds` prints the same CRDs as one YAML stream, for `kubectl apply -f -`.)

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use weft_config::crd::{self, BrokerResource, TriggerResource};
use weft_config::manifest::{Broker, Trigger, load_path, load_str};
use weft_config::{Loaded, Manifests};

/// `kubectl get brokers,triggers -o yaml` on a cluster running Knative.
const KUBECTL_OUTPUT: &str = r#"
apiVersion: v1
items:
- apiVersion: eventing.knative.dev/v1
  kind: Broker
  metadata:
    annotations:
      eventing.knative.dev/broker.class: MTChannelBasedBroker
    creationTimestamp: "2024-03-01T10:00:00Z"
    generation: 1
    name: default
    namespace: shop
    resourceVersion: "12345"
    uid: 0b2f1c7e-8a51-4f60-9a39-1d1f0c5c2d11
  spec:
    config:
      apiVersion: v1
      kind: ConfigMap
      name: config-br-default-channel
      namespace: knative-eventing
    delivery:
      backoffDelay: PT0.2S
      backoffPolicy: exponential
      retry: 10
  status:
    address:
      name: http
      url: http://broker-ingress.knative-eventing.svc.cluster.local/shop/default
    conditions:
    - lastTransitionTime: "2024-03-01T10:00:05Z"
      status: "True"
      type: Ready
    observedGeneration: 1
- apiVersion: eventing.knative.dev/v1
  kind: Trigger
  metadata:
    annotations:
      kafka.eventing.knative.dev/delivery.order: ordered
    creationTimestamp: "2024-03-01T10:01:00Z"
    finalizers:
    - kafka.triggers.eventing.knative.dev
    generation: 3
    labels:
      eventing.knative.dev/broker: default
    name: orders
    namespace: shop
  spec:
    broker: default
    filter:
      attributes:
        type: com.example.order.created
    subscriber:
      uri: http://orders.shop.svc.cluster.local/
  status:
    conditions:
    - status: "True"
      type: Ready
    observedGeneration: 3
    subscriberUri: http://orders.shop.svc.cluster.local/
kind: List
metadata:
  resourceVersion: ""
"#;

/// Every filter dialect, nested, and a full delivery spec.
const FILTERED_TRIGGER: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: filtered
  namespace: shop
  annotations:
    weft.dev/max-in-flight: "10"
spec:
  broker: default
  filters:
  - all:
    - exact: {type: com.example.order.created}
    - not: {prefix: {source: /test/}}
  - any:
    - suffix: {subject: .png}
    - cesql: "source LIKE '%shop%'"
  subscriber:
    uri: http://127.0.0.1:9090/
    CACerts: PEM
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT1S
    backoffMax: PT10S
    retryAfterMax: PT30S
    timeout: PT5S
    format: json
    deadLetterSink:
      uri: http://127.0.0.1:9091/
"#;

/// Invalid for Weft's validation (a relative uri, a bad duration), though the API server would
/// take it: the controller reports it as not ready.
const INVALID_TRIGGER: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: broken
spec:
  broker: default
  subscriber:
    uri: /relative
  delivery:
    backoffDelay: 2 seconds
"#;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every Kubernetes object in a YAML stream, `List`s unpacked.
fn objects(text: &str) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .flat_map(|document| match document["kind"].as_str() {
            Some("List") => document["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![document],
        })
        .collect()
}

/// The examples and the fixtures above, as `(where, object)`.
fn all_objects() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let examples = config_dir().join("examples");
    let mut files: Vec<PathBuf> = fs::read_dir(&examples)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", examples.display());
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for object in objects(&text) {
            found.push((file.display().to_string(), object));
        }
    }
    for (name, text) in [
        ("KUBECTL_OUTPUT", KUBECTL_OUTPUT),
        ("FILTERED_TRIGGER", FILTERED_TRIGGER),
        ("INVALID_TRIGGER", INVALID_TRIGGER),
    ] {
        for object in objects(text) {
            found.push((name.to_owned(), object));
        }
    }
    found
}

fn resources() -> (Vec<BrokerResource>, Vec<TriggerResource>) {
    let (mut brokers, mut triggers) = (Vec::new(), Vec::new());
    for (source, object) in all_objects() {
        match object["kind"].as_str() {
            Some("Broker") => brokers.push(serde_json::from_value(object).unwrap_or_else(|e| {
                panic!("{source}: not a BrokerResource: {e}");
            })),
            Some("Trigger") => triggers.push(serde_json::from_value(object).unwrap_or_else(|e| {
                panic!("{source}: not a TriggerResource: {e}");
            })),
            other => panic!("{source}: unexpected kind {other:?}"),
        }
    }
    (brokers, triggers)
}

/// The files under `config/crds/` and what they should hold.
fn generated_files() -> Vec<(String, String)> {
    let crds = crd::crds();
    let mut files: Vec<(String, String)> = crds
        .iter()
        .map(|crd| (crd::file_name(crd), crd::to_yaml(crd)))
        .collect();
    let resources: String = files
        .iter()
        .map(|(name, _)| format!("- {name}\n"))
        .collect();
    files.push((
        "kustomization.yaml".to_owned(),
        format!(
            "# Generated by `WEFT_UPDATE_CRDS=1 cargo test -p weft-config --test crds`; do not \
             edit.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n{resources}"
        ),
    ));
    files
}

#[test]
fn checked_in_crds_are_up_to_date() {
    let dir = config_dir().join("crds");
    let update = std::env::var_os("WEFT_UPDATE_CRDS").is_some_and(|v| !v.is_empty());
    let mut stale = Vec::new();
    for (name, expected) in generated_files() {
        let path = dir.join(&name);
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &expected).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(format!("config/crds/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the types in config/src: {}\nregenerate them with \
         `WEFT_UPDATE_CRDS=1 cargo test -p weft-config --test crds` and commit them",
        stale.join(", ")
    );
}

#[test]
fn crds_mirror_knatives_names_and_columns() {
    let crds = crd::crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "brokers.eventing.knative.dev",
            "triggers.eventing.knative.dev"
        ]
    );
    for crd in &crds {
        let spec = &crd.spec;
        assert_eq!(spec.group, "eventing.knative.dev");
        assert_eq!(spec.scope, "Namespaced");
        assert_eq!(
            spec.names.categories.as_deref().unwrap(),
            ["all", "knative", "eventing"]
        );
        assert_eq!(spec.names.short_names, None);
        let version = &spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1", true, true)
        );
        assert!(version.subresources.as_ref().unwrap().status.is_some());
    }
    let columns = |crd: &CustomResourceDefinition| -> Vec<String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(columns(&crds[0]), ["URL", "Age", "Ready", "Reason"]);
    assert_eq!(
        columns(&crds[1]),
        ["Broker", "Subscriber_URI", "Age", "Ready", "Reason"]
    );
    let multi: Vec<Value> = serde_saphyr::from_multiple(&crd::crds_yaml()).unwrap();
    let kinds: Vec<_> = multi
        .iter()
        .map(|d| d["spec"]["names"]["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("Broker"), json!("Trigger")]);
}

#[test]
fn examples_and_fixtures_read_as_cluster_objects_and_back() {
    for (source, object) in all_objects() {
        let written = match object["kind"].as_str() {
            Some("Broker") => {
                let broker: BrokerResource = serde_json::from_value(object.clone()).unwrap();
                serde_json::to_value(&broker).unwrap()
            }
            _ => {
                let trigger: TriggerResource = serde_json::from_value(object.clone()).unwrap();
                serde_json::to_value(&trigger).unwrap()
            }
        };
        assert_eq!(written["spec"], object["spec"], "{source}: spec changed");
        assert_eq!(
            written["status"], object["status"],
            "{source}: status changed"
        );
        assert_eq!(
            written["metadata"]["name"], object["metadata"]["name"],
            "{source}"
        );
        assert_eq!(written["apiVersion"], "eventing.knative.dev/v1", "{source}");
    }
}

/// What a loaded object came to, without where it was read from.
fn outcome<T: Clone>(loaded: &Loaded<T>) -> Result<T, Vec<(Option<String>, String)>> {
    loaded.config.clone().map_err(|problems| {
        problems
            .iter()
            .map(|p| (p.field.clone(), p.message.clone()))
            .collect()
    })
}

fn outcomes(manifests: &Manifests) -> Vec<String> {
    let brokers = manifests
        .brokers
        .iter()
        .map(|b| format!("{} {:?}", b.key, outcome(b)));
    let triggers = manifests
        .triggers
        .iter()
        .map(|t| format!("{} {:?}", t.key, outcome(t)));
    brokers.chain(triggers).collect()
}

#[test]
fn cluster_objects_validate_as_folder_manifests_do() {
    let (brokers, triggers) = resources();
    let from_cluster = crd::manifests(&brokers, &triggers);

    let mut from_files = load_path(&config_dir().join("examples"));
    for (name, text) in [
        ("kubectl.yaml", KUBECTL_OUTPUT),
        ("filtered.yaml", FILTERED_TRIGGER),
        ("invalid.yaml", INVALID_TRIGGER),
    ] {
        let more = load_str(text, Path::new(name));
        from_files.brokers.extend(more.brokers);
        from_files.triggers.extend(more.triggers);
        from_files.problems.extend(more.problems);
    }
    assert_eq!(from_files.problems, []);
    assert_eq!(outcomes(&from_cluster), outcomes(&from_files));

    let invalid = from_cluster
        .triggers
        .iter()
        .find(|t| t.key.name == "broken")
        .unwrap();
    let shown: Vec<String> = invalid.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("kubernetes (Trigger default/broken): spec.subscriber.uri: "),
        "{shown:?}"
    );
    assert!(from_cluster.triggers.iter().any(|t| t.config.is_ok()));
}

#[test]
fn conversion_copies_metadata() {
    let (brokers, triggers) = resources();
    let broker = brokers
        .iter()
        .find(|b| b.metadata.namespace.as_deref() == Some("shop"));
    let broker = Broker::from(broker.unwrap());
    assert_eq!(broker.api_version, "eventing.knative.dev/v1");
    assert_eq!(broker.kind, "Broker");
    assert_eq!(broker.metadata.generation, Some(1));
    assert_eq!(
        broker.metadata.annotations["eventing.knative.dev/broker.class"],
        "MTChannelBasedBroker"
    );
    let trigger = triggers
        .iter()
        .find(|t| t.metadata.namespace.as_deref() == Some("shop"));
    let trigger = Trigger::from(trigger.unwrap());
    assert_eq!(trigger.metadata.key().to_string(), "shop/orders");
    assert_eq!(
        trigger.metadata.labels["eventing.knative.dev/broker"],
        "default"
    );
    assert_eq!(trigger.spec.broker, "default");
}

fn schema_of(crd: CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0].schema.clone().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.unwrap()).unwrap()
}

/// The messages of the CEL rules that `object` breaks (after `old`, for an update).
fn broken_rules(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn trigger_with(spec: Value) -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": spec,
    })
}

#[test]
fn every_example_and_fixture_passes_the_cel_rules() {
    let brokers = schema_of(crd::broker_crd());
    let triggers = schema_of(crd::trigger_crd());
    for (source, object) in all_objects() {
        let schema = match object["kind"].as_str() {
            Some("Broker") => &brokers,
            _ => &triggers,
        };
        assert_eq!(broken_rules(schema, &object, None), [""; 0], "{source}");
        assert_eq!(
            broken_rules(schema, &object, Some(&object)),
            [""; 0],
            "{source}"
        );
    }
}

#[test]
fn trigger_rules_reject_what_knatives_webhook_rejects() {
    let schema = schema_of(crd::trigger_crd());
    let uri = json!({"uri": "http://sink/"});
    let cases = [
        (json!({"subscriber": uri}), "missing field(s): spec.broker"),
        (
            json!({"broker": "", "subscriber": uri}),
            "missing field(s): spec.broker",
        ),
        (
            json!({"broker": "b", "brokerRef": {"name": "b"}, "subscriber": uri}),
            "expected exactly one, got both",
        ),
        (json!({"broker": "b"}), "missing field(s): spec.subscriber"),
        (
            json!({"broker": "b", "subscriber": {"CACerts": "PEM"}}),
            "expected at least one, got none: ref, uri",
        ),
        (
            json!({"broker": "b", "subscriber": uri,
                   "delivery": {"deadLetterSink": {"audience": "a"}}}),
            "expected at least one, got none: ref, uri",
        ),
        (
            json!({"broker": "b", "subscriber": uri,
                   "filters": [{"exact": {"type": "x"}, "prefix": {"type": "y"}}]}),
            "exactly one dialect",
        ),
        (
            json!({"broker": "b", "subscriber": uri, "filters": [{}]}),
            "exactly one dialect",
        ),
        (
            json!({"broker": "b", "subscriber": uri, "filters": [{"suffix": {"Type": "x"}}]}),
            "Attribute name must start with a letter",
        ),
        (
            json!({"broker": "b", "subscriber": uri, "filters": [{"prefix": {"type": ""}}]}),
            "the value to match must not be empty",
        ),
        (
            json!({"broker": "b", "subscriber": uri,
                   "filter": {"attributes": {"my-ext": "x"}}}),
            "Attribute name must start with a letter",
        ),
    ];
    for (spec, expected) in cases {
        let broken = broken_rules(&schema, &trigger_with(spec.clone()), None);
        assert_eq!(broken.len(), 1, "{spec}: {broken:?}");
        assert!(broken[0].contains(expected), "{spec}: {broken:?}");
    }

    // `""` as a legacy filter value means "present": allowed.
    let present = json!({"broker": "b", "subscriber": uri, "filter": {"attributes": {"type": ""}}});
    assert_eq!(broken_rules(&schema, &trigger_with(present), None), [""; 0]);
}

#[test]
fn a_triggers_broker_cannot_change() {
    let schema = schema_of(crd::trigger_crd());
    let old = trigger_with(json!({"broker": "a", "subscriber": {"uri": "http://sink/"}}));
    let moved = trigger_with(json!({"broker": "b", "subscriber": {"uri": "http://sink/"}}));
    let resubscribed = trigger_with(json!({"broker": "a", "subscriber": {"uri": "http://other/"}}));
    let broken = broken_rules(&schema, &moved, Some(&old));
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(
        broken[0].contains("Immutable fields changed (-old +new): spec.broker"),
        "{broken:?}"
    );
    assert_eq!(broken_rules(&schema, &resubscribed, Some(&old)), [""; 0]);
    assert_eq!(broken_rules(&schema, &moved, None), [""; 0]);
}

#[test]
fn schemas_are_bounded_for_the_rules_and_open_for_nested_filters() {
    let trigger = schema_of(crd::trigger_crd());
    let spec = &trigger["properties"]["spec"];
    assert_eq!(
        spec["x-kubernetes-validations"].as_array().unwrap().len(),
        4
    );
    assert_eq!(spec["properties"]["broker"]["maxLength"], 253);
    let filters = &spec["properties"]["filters"];
    assert_eq!(filters["maxItems"], 64);
    let filter = &filters["items"];
    assert!(filter.get("required").is_none(), "{filter}");
    for dialect in ["exact", "prefix", "suffix"] {
        assert_eq!(filter["properties"][dialect]["maxProperties"], 64);
    }
    for nested in [
        &filter["properties"]["all"]["items"],
        &filter["properties"]["not"],
    ] {
        assert_eq!(nested["x-kubernetes-preserve-unknown-fields"], true);
        assert!(nested.get("properties").is_none());
    }
    let delivery = &spec["properties"]["delivery"]["properties"];
    assert_eq!(delivery["retry"]["minimum"], 0.0);
    assert_eq!(
        delivery["backoffPolicy"]["enum"],
        json!(["linear", "exponential"])
    );
    let text = trigger.to_string();
    assert!(!text.contains("nullable"), "nullable left in {text}");
    assert!(!text.contains("$ref"), "$ref left in {text}");

    let broker = schema_of(crd::broker_crd());
    assert_eq!(broker["properties"]["spec"]["default"], json!({}));
    assert!(!broker.to_string().contains("nullable"));
}

#[test]
fn a_broker_without_spec_reads_with_an_empty_spec() {
    // The API server fills in the CRD's `spec: {}` default; the object then reads.
    let object = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {},
    });
    let broker: BrokerResource = serde_json::from_value(object).unwrap();
    assert_eq!(broker.spec, Default::default());
    let loaded = crd::load_broker_resource(&broker);
    assert!(loaded.config.is_ok(), "{:?}", loaded.problems());
}
