//! Serde mirrors of Knative Eventing's `eventing.knative.dev/v1` Broker and Trigger, field for
//! field as Knative's Go types spell them (`deadLetterSink`, `CACerts`, `cesql`, …).
//!
//! These types hold what the manifest says, unchecked: strings stay strings and durations stay
//! ISO-8601 text. Spec types deny unknown fields so a typo is an error rather than a silently
//! ignored setting; `metadata` accepts every Kubernetes `ObjectMeta` field and keeps only what
//! Weft uses; a `status` block is accepted and ignored. [`crate::manifest::validate`] turns
//! these into the values of [`crate::model`].
//!
//! The spec types also serialize (leaving out what is unset, so a value round-trips without
//! nulls) and describe their JSON schema: [`BrokerSpec`] and [`TriggerSpec`] derive
//! [`kube::CustomResource`], which generates the cluster objects [`BrokerResource`] and
//! [`TriggerResource`] and their CRDs, with the status types of [`crate::status`];
//! [`crate::crd`] holds the CRDs' validation rules and the conversions back to [`Broker`]
//! and [`Trigger`].

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::ObjectKey;
use crate::status::{BrokerStatus, TriggerStatus};

/// The API group and version of Broker and Trigger.
pub const EVENTING_API_VERSION: &str = "eventing.knative.dev/v1";
/// The namespace of an object whose manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Broker annotation that selects the broker implementation.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// Trigger annotation for Weft's delivery order: `ordered` or `unordered`.
pub const DELIVERY_ORDER_ANNOTATION: &str = "weft.dev/delivery-order";
/// The Knative Kafka broker's delivery-order annotation, accepted as a synonym.
pub const KAFKA_DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
/// Trigger annotation limiting how many events are delivered at once.
pub const MAX_IN_FLIGHT_ANNOTATION: &str = "weft.dev/max-in-flight";
/// Annotation on any object in a manifest folder: the URL a `ref` to it means standalone
/// (see [`crate::manifest::validate::LocalRefs`]).
pub const URL_ANNOTATION: &str = "weft.dev/url";

/// The part of Kubernetes `ObjectMeta` that Weft uses. Every other metadata field (`uid`,
/// `resourceVersion`, `creationTimestamp`, `managedFields`, …) is accepted and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name, required for Brokers and Triggers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The namespace; [`DEFAULT_NAMESPACE`] when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels, kept for display and selection.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Annotations: the broker class, delivery order and in-flight limit live here.
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
    /// Bumped by Kubernetes on each spec change; reported back as `observedGeneration`.
    #[serde(default)]
    pub generation: Option<i64>,
}

impl ObjectMeta {
    /// The namespace, or [`DEFAULT_NAMESPACE`] when the manifest gives none.
    pub fn namespace_or_default(&self) -> &str {
        match self.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => namespace,
            _ => DEFAULT_NAMESPACE,
        }
    }

    /// The object's `namespace/name` identity.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.namespace_or_default(), self.name.clone())
    }
}

/// An `eventing.knative.dev/v1` Broker.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Broker {
    /// `eventing.knative.dev/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Broker`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state; a Broker without `spec` is valid.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: BrokerSpec,
    /// Accepted so that `kubectl get -o yaml` output loads; its content is ignored.
    #[serde(default)]
    pub status: Option<IgnoredAny>,
}

/// The desired state of a Broker (`Broker.spec`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, CustomResource,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Broker",
    root = "BrokerResource",
    doc = "Broker collects a pool of events that are consumable using Triggers. Brokers provide \
           a well-known endpoint for event delivery that senders can use with minimal knowledge \
           of the event routing strategy. Subscribers use Triggers to request delivery of events \
           from a Broker's pool to a specific URL or Addressable endpoint.",
    namespaced,
    status = "BrokerStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "all",
    category = "knative",
    category = "eventing",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string",
                      "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string",
                      "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Class", "type": "string", "priority": 1,
                      "jsonPath": ".metadata.annotations.eventing\\.knative\\.dev/broker\\.class"}"#
)]
pub struct BrokerSpec {
    /// Implementation-specific configuration (usually a ConfigMap); accepted, unused so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// The delivery defaults for this broker's triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// An `eventing.knative.dev/v1` Trigger.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// `eventing.knative.dev/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Trigger`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state. Missing fields are reported by validation, as Knative's webhook does.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: TriggerSpec,
    /// Accepted so that `kubectl get -o yaml` output loads; its content is ignored.
    #[serde(default)]
    pub status: Option<IgnoredAny>,
}

/// The desired state of a Trigger (`Trigger.spec`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, CustomResource,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Trigger",
    root = "TriggerResource",
    doc = "Trigger represents a request to have events delivered to a subscriber from a \
           Broker's event pool.",
    namespaced,
    status = "TriggerStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "all",
    category = "knative",
    category = "eventing",
    printcolumn = r#"{"name": "Broker", "type": "string", "jsonPath": ".spec.broker"}"#,
    printcolumn = r#"{"name": "Subscriber_URI", "type": "string", "jsonPath": ".status.subscriberUri"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string",
                      "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string",
                      "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
pub struct TriggerSpec {
    /// The name of a broker in the trigger's namespace (required).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker: String,
    /// A broker in another namespace (Knative's `cross-namespace-event-links` feature); parsed
    /// so it can be reported, not supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_ref: Option<KReference>,
    /// The legacy exact-match filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// Subscriptions API filters; when non-empty they override `filter`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub filters: Vec<SubscriptionsAPIFilter>,
    /// Where matching events go (required).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub subscriber: Destination,
    /// Delivery settings; when set they replace the broker's as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// `Trigger.spec.filter`: every attribute must equal its value; `""` means "present".
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerFilter {
    /// Attribute name to required value.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attributes: BTreeMap<String, String>,
}

/// One entry of `Trigger.spec.filters`: exactly one dialect must be set. Fields are `Option`
/// so that a dialect given but left empty (`exact: {}`) can be told apart from one not given.
///
/// The type is recursive, which a CRD's structural schema cannot express: in the schema, the
/// nested filters of `all`, `any` and `not` are objects of any content, as in Knative's CRD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionsAPIFilter {
    /// Every child filter must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nested_filters")]
    pub all: Option<Vec<SubscriptionsAPIFilter>>,
    /// At least one child filter must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nested_filters")]
    pub any: Option<Vec<SubscriptionsAPIFilter>>,
    /// The child filter must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nested_filter")]
    pub not: Option<Box<SubscriptionsAPIFilter>>,
    /// Attributes that must equal their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<BTreeMap<String, String>>,
    /// Attributes that must start with their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<BTreeMap<String, String>>,
    /// Attributes that must end with their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<BTreeMap<String, String>>,
    /// A CloudEvents SQL expression that must evaluate to true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cesql: Option<String>,
}

/// The schema of `all` and `any`: a list of filters whose content is not described.
fn nested_filters(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

/// The schema of `not`: a filter whose content is not described.
fn nested_filter(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A Knative `Destination`: a `ref` to an Addressable, a `uri`, or a `uri` relative to the
/// `ref`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// An Addressable object whose URL Kubernetes resolves.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// An absolute URL, or a path relative to the `ref`'s URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PEM CA certificates to trust for this destination; accepted, unused so far.
    #[serde(rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// The OIDC audience of the destination; accepted, unused so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// A Knative `KReference`: enough to find another Kubernetes object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KReference {
    /// The referent's kind, e.g. `Service`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The referent's namespace; the referring object's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The referent's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The referent's API version, e.g. `serving.knative.dev/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The API group instead of a version (Knative's experimental `kreference-group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A specific address of the referent, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A Knative `DeliverySpec`: retries, backoff, timeout, dead-letter sink and format.
/// Durations are ISO-8601 text (`PT0.2S`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliverySpec {
    /// Where events go once retries are exhausted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// Retries after the first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    /// The limit for each attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `linear` or `exponential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<String>,
    /// The base wait between attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// The longest single wait between attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    /// The longest `Retry-After` that is honoured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// `json` (structured) or `binary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Whether `value` is its type's default, so that serializing can leave it out.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Reads `null` as the type's default, as Go's JSON decoding does for maps, lists and
/// strings (`labels: null`, `filters:` with nothing after it).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
