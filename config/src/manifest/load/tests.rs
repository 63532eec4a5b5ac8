//! Loader tests: multi-document files, folders, real Knative output, and how each kind of
//! problem is reported without stopping the rest.

use std::fs;

use super::*;
use crate::filter::Filter;
use crate::model::{BackoffPolicy, DeliveryOrder};

fn load(text: &str) -> Manifests {
    load_str(text, Path::new("test.yaml"))
}

fn keys<T>(loaded: &[Loaded<T>]) -> Vec<String> {
    loaded.iter().map(|l| l.key.to_string()).collect()
}

fn messages(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(Problem::to_string).collect()
}

const BROKER: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
";

fn trigger(name: &str, uri: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: {name}
spec:
  broker: default
  subscriber:
    uri: {uri}
"
    )
}

#[test]
fn one_bad_object_among_good_ones() {
    let text = [
        BROKER.to_owned(),
        trigger("first", "http://127.0.0.1:9090/"),
        trigger("bad", "not a url"),
        trigger("last", "http://127.0.0.1:9090/last"),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert!(manifests.problems.is_empty(), "{:?}", manifests.problems);
    assert_eq!(keys(&manifests.brokers), ["default/default"]);
    assert!(manifests.brokers[0].config.is_ok());
    assert_eq!(
        keys(&manifests.triggers),
        ["default/first", "default/bad", "default/last"]
    );
    let [first, bad, last] = &manifests.triggers[..] else {
        panic!("three triggers expected");
    };
    assert!(first.config.is_ok());
    assert!(last.config.is_ok());
    assert_eq!(bad.source.document, 3);
    assert_eq!(
        messages(bad.problems()),
        [
            "test.yaml (document 3, Trigger default/bad): spec.subscriber.uri: \"not a url\" is \
          relative, which needs a ref; use an absolute http or https URL"
        ]
    );
    assert_eq!(manifests.all_problems().count(), 1);
}

#[test]
fn yaml_syntax_error_spoils_only_its_document() {
    let text = format!(
        "{BROKER}---\nkind: Trigger\nmetadata: [oops\n---\n{}",
        trigger("t", "http://x/")
    );
    let manifests = load(&text);
    assert_eq!(keys(&manifests.brokers), ["default/default"]);
    assert_eq!(keys(&manifests.triggers), ["default/t"]);
    assert_eq!(manifests.problems.len(), 1);
    let problem = &manifests.problems[0];
    assert_eq!(problem.document, 2);
    assert!(
        problem.message.starts_with("is not valid YAML: "),
        "{problem}"
    );
    // The line is counted in the file, not in the document.
    assert!(problem.message.contains("line 8"), "{problem}");
}

#[test]
fn typo_in_a_spec_field_names_the_field() {
    let text = trigger("t", "http://x/") + "  delivery:\n    retries: 3\n";
    let manifests = load(&text);
    let problems = manifests.triggers[0].problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field.as_deref(), Some("spec.delivery.retries"));
    assert!(
        problems[0].message.starts_with("unknown field `retries`"),
        "{}",
        problems[0]
    );

    let text = trigger("t", "http://x/") + "  delivery:\n    retry: \"3\"\n";
    let problems = load(&text).triggers[0].config.clone().unwrap_err();
    assert_eq!(problems[0].field.as_deref(), Some("spec.delivery.retry"));
    assert!(
        problems[0].message.contains("expected i32"),
        "{}",
        problems[0]
    );
}

#[test]
fn documents_without_kind_or_name_are_problems() {
    let manifests = load(
        "apiVersion: eventing.knative.dev/v1\nmetadata: {name: x}\n---\n\
         apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {}\n---\n\
         - just\n- a list\n",
    );
    assert!(manifests.triggers.is_empty());
    assert_eq!(
        messages(&manifests.problems),
        [
            "test.yaml (document 1): kind: is missing; every manifest needs apiVersion, kind \
             and metadata.name",
            "test.yaml (document 2, Trigger): metadata.name: is missing; every Trigger needs a \
             name",
            "test.yaml (document 3): is not a Kubernetes object; expected a mapping with \
             apiVersion, kind and metadata",
        ]
    );
}

#[test]
fn other_kinds_and_versions_are_ignored_with_a_problem() {
    let manifests = load(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\n\
         apiVersion: eventing.knative.dev/v1beta1\nkind: Trigger\nmetadata: {name: old}\n",
    );
    assert!(manifests.triggers.is_empty());
    assert_eq!(
        messages(&manifests.problems),
        [
            "test.yaml (document 1, Deployment shop/web): is ignored; weft reads only \
             eventing.knative.dev/v1 Broker and Trigger objects, not apps/v1 Deployment",
            "test.yaml (document 2, Trigger default/old): apiVersion: \
             \"eventing.knative.dev/v1beta1\" is not read, so this object is ignored; use \
             eventing.knative.dev/v1",
        ]
    );
}

#[test]
fn a_name_defined_twice_is_an_error_on_both_and_neither_is_used() {
    let text = [
        trigger("t", "http://first/"),
        trigger("t", "http://second/"),
        trigger("t", "http://other-namespace/").replace("name: t", "name: t\n  namespace: ns"),
    ]
    .join("---\n");
    let manifests = load(&text);
    assert_eq!(keys(&manifests.triggers), ["default/t", "ns/t"]);
    assert_eq!(
        messages(manifests.triggers[0].problems()),
        [
            "test.yaml (document 1, Trigger default/t): is defined more than once (in \
             test.yaml (document 1) and test.yaml (document 2)); names must be unique per \
             namespace, so none of these is used until only one remains"
        ]
    );
    assert!(
        manifests.triggers[1].config.is_ok(),
        "another namespace is another name"
    );
    assert_eq!(
        messages(&manifests.problems),
        [
            "test.yaml (document 2, Trigger default/t): duplicates the Trigger in test.yaml \
          (document 1); neither is used"
        ]
    );
}

#[test]
fn what_cannot_be_parsed_is_unread_and_keeps_what_it_held() {
    let good = [BROKER.to_owned(), trigger("t", "http://sink/")].join("---\n");
    let previous = load(&good);
    // A typo in the trigger's document: the broker still loads, the trigger is unknown.
    let typo = [
        BROKER.to_owned(),
        trigger("t", "http://sink/").replace("spec:", "spec: ["),
    ]
    .join("---\n");
    let mut broken = load(&typo);
    assert_eq!(broken.unread.len(), 1, "{:?}", broken.problems);
    assert_eq!(broken.unread[0].document, 2);
    assert!(broken.triggers.is_empty());
    broken.carry_over(&previous);
    assert_eq!(keys(&broken.triggers), ["default/t"]);
    let problem = messages(broken.triggers[0].problems()).join("");
    assert!(
        problem.starts_with(
            "test.yaml (document 2, Trigger default/t): cannot be read now, so nothing it \
             held was changed or deleted: is not valid YAML"
        ),
        "{problem}"
    );
    assert!(problem.contains("line"), "the error says where: {problem}");
    // The broker was read: it is not carried over a second time.
    assert_eq!(keys(&broken.brokers), ["default/default"]);
    assert!(broken.brokers[0].config.is_ok());

    // Still broken next time: carried over again, from the carried-over snapshot.
    let mut again = load(&typo);
    again.carry_over(&broken);
    assert_eq!(keys(&again.triggers), ["default/t"]);

    // Valid manifests without the trigger: a real deletion, nothing carried over.
    let mut deleted = load(BROKER);
    deleted.carry_over(&previous);
    assert!(deleted.triggers.is_empty());
}

#[test]
fn an_unreadable_folder_keeps_everything_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("manifests");
    fs::create_dir_all(root.join("team")).unwrap();
    fs::write(root.join("team/broker.yaml"), BROKER).unwrap();
    let previous = load_path(&root);
    assert_eq!(keys(&previous.brokers), ["default/default"]);

    // The file is replaced by something that cannot be read (here: not UTF-8).
    fs::write(root.join("team/broker.yaml"), [0xff, 0xfe]).unwrap();
    let mut now = load_path(&root);
    now.carry_over(&previous);
    assert_eq!(keys(&now.brokers), ["default/default"]);
    assert!(now.brokers[0].config.is_err());

    // The root itself disappears (a wrong path, a failed mount): everything is kept.
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    let mut gone = load_path(&root);
    assert_eq!(gone.unread.len(), 1);
    gone.carry_over(&previous);
    assert_eq!(keys(&gone.brokers), ["default/default"]);
}

#[test]
fn empty_documents_and_files_are_fine() {
    let manifests = load("# nothing yet\n---\n---\n\n");
    assert_eq!(manifests, Manifests::default());
    let manifests = load(&format!("---\n---\n{BROKER}"));
    assert_eq!(manifests.brokers[0].source.document, 2);
}

/// `kubectl get broker,trigger -o yaml` output: a List, with status, uid, managedFields,
/// creationTimestamp and labels added by the cluster.
const KUBECTL_OUTPUT: &str = r#"apiVersion: v1
items:
- apiVersion: eventing.knative.dev/v1
  kind: Broker
  metadata:
    annotations:
      eventing.knative.dev/broker.class: MTChannelBasedBroker
      eventing.knative.dev/creator: kubernetes-admin
      eventing.knative.dev/lastModifier: kubernetes-admin
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
      eventing.knative.dev/creator: kubernetes-admin
      kafka.eventing.knative.dev/delivery.order: ordered
    creationTimestamp: "2024-03-01T10:01:00Z"
    finalizers:
    - kafka.triggers.eventing.knative.dev
    generation: 3
    labels:
      eventing.knative.dev/broker: default
    managedFields:
    - apiVersion: eventing.knative.dev/v1
      fieldsType: FieldsV1
      manager: kubectl-client-side-apply
      operation: Update
    name: orders
    namespace: shop
    resourceVersion: "12399"
    uid: 5a3e9d4c-3b1f-4d7e-8a55-2f6b7c8d9e01
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

#[test]
fn kubectl_output_loads_unchanged() {
    let manifests = load(KUBECTL_OUTPUT);
    assert!(
        manifests.all_problems().next().is_none(),
        "{:?}",
        messages(&manifests.problems)
    );
    let broker = manifests.brokers[0].config.as_ref().unwrap();
    assert_eq!(broker.key, ObjectKey::new("shop", "default"));
    assert_eq!(broker.class.as_deref(), Some("MTChannelBasedBroker"));
    assert_eq!(broker.generation, Some(1));
    let delivery = broker.delivery.as_ref().unwrap();
    assert_eq!(
        (delivery.retry, delivery.backoff_policy),
        (10, BackoffPolicy::Exponential)
    );
    let trigger = manifests.triggers[0].config.as_ref().unwrap();
    assert_eq!(trigger.key, ObjectKey::new("shop", "orders"));
    assert_eq!(trigger.generation, Some(3));
    assert_eq!(trigger.order, DeliveryOrder::Ordered);
    assert_eq!(
        trigger.filter,
        Filter::Attributes(vec![("type".into(), "com.example.order.created".into())])
    );
}

#[test]
fn folder_is_searched_recursively_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("b/nested")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join("a-broker.yaml"), BROKER).unwrap();
    fs::write(root.join("b/nested/t2.yml"), trigger("t2", "http://x/2")).unwrap();
    fs::write(root.join("b/t1.yaml"), trigger("t1", "http://x/1")).unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
    fs::write(root.join("b/deployment.yaml"), deployment).unwrap();
    // Not manifests: hidden, editor leftovers, other extensions.
    for skipped in [
        ".hidden.yaml",
        ".#t.yaml",
        "t.yaml~",
        "t.yaml.swp",
        "notes.txt",
    ] {
        fs::write(root.join(skipped), trigger("skipped", "http://x/")).unwrap();
    }
    fs::write(root.join(".git/config.yaml"), trigger("git", "http://x/")).unwrap();

    let manifests = load_path(root);
    assert_eq!(keys(&manifests.brokers), ["default/default"]);
    assert_eq!(keys(&manifests.triggers), ["default/t2", "default/t1"]);
    assert_eq!(
        manifests.triggers[0].source.file,
        root.join("b/nested/t2.yml")
    );
    assert_eq!(manifests.problems.len(), 1, "{:?}", manifests.problems);
    let ignored = &manifests.problems[0];
    assert_eq!(ignored.file, root.join("b/deployment.yaml"));
    assert_eq!(ignored.object.as_deref(), Some("Deployment default/web"));
    assert!(ignored.message.starts_with("is ignored"), "{ignored}");
}

#[test]
fn fingerprint_changes_with_the_manifest_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("broker.yaml"), BROKER).unwrap();
    let first = fingerprint(root);
    assert_eq!(fingerprint(root), first, "nothing changed");

    // Files the loader skips do not count.
    fs::write(root.join("notes.txt"), "hello").unwrap();
    fs::write(root.join(".hidden.yaml"), BROKER).unwrap();
    assert_eq!(fingerprint(root), first, "only skipped files changed");

    fs::write(root.join("t1.yaml"), trigger("t1", "http://x/1")).unwrap();
    let added = fingerprint(root);
    assert_ne!(added, first, "a file was added");

    fs::write(root.join("t1.yaml"), trigger("t1", "http://x/11")).unwrap();
    let edited = fingerprint(root);
    assert_ne!(edited, added, "a file was rewritten with another size");

    // An editor's save: a new file renamed over the old one, same size.
    fs::write(root.join("t1.yaml.tmp"), trigger("t1", "http://x/12")).unwrap();
    fs::rename(root.join("t1.yaml.tmp"), root.join("t1.yaml")).unwrap();
    let replaced = fingerprint(root);
    assert_ne!(replaced, edited, "a file was replaced by rename");

    fs::remove_file(root.join("t1.yaml")).unwrap();
    assert_ne!(fingerprint(root), replaced, "a file was removed");
}

#[test]
fn a_single_file_is_loaded_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.txt");
    fs::write(&file, BROKER).unwrap();
    assert_eq!(keys(&load_path(&file).brokers), ["default/default"]);
}

#[test]
fn unreadable_paths_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let manifests = load_path(&missing);
    assert_eq!(
        messages(&manifests.problems),
        [format!(
            "{}: cannot be read: it does not exist",
            missing.display()
        )]
    );

    let binary = dir.path().join("binary.yaml");
    fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let manifests = load_path(dir.path());
    assert_eq!(manifests.problems.len(), 1);
    assert_eq!(manifests.problems[0].document, 0);
    assert!(manifests.problems[0].message.contains("not UTF-8"));
    assert_eq!(manifests.unread.len(), 1);
    assert_eq!(manifests.unread[0].file, binary);
}

#[test]
fn examples_load_cleanly() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let manifests = load_path(&examples);
    let problems: Vec<_> = manifests.all_problems().map(Problem::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(keys(&manifests.brokers), ["default/default"]);
    assert_eq!(
        keys(&manifests.triggers),
        ["default/all-events", "default/orders"]
    );
    let broker = manifests.brokers[0].config.as_ref().unwrap();
    let delivery = broker.delivery.as_ref().unwrap();
    assert_eq!(delivery.retry, 3);
    assert_eq!(
        delivery.backoff_delay,
        std::time::Duration::from_millis(200)
    );
    assert_eq!(
        delivery.dead_letter_sink.as_ref().unwrap().as_str(),
        "http://127.0.0.1:9091/dead-letters"
    );
    let orders = manifests.triggers[1].config.as_ref().unwrap();
    assert_eq!(orders.subscriber.as_str(), "http://127.0.0.1:9090/orders");
    assert_eq!(
        orders.filter,
        Filter::Attributes(vec![("type".into(), "com.example.order.created".into())])
    );
}
