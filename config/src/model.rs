//! The validated runtime form of the manifests: what the data plane consumes.
//!
//! Manifests are parsed into the serde types of [`crate::manifest`], checked, and turned into
//! these values. Everything here is already valid and ready to run: durations are parsed, URLs
//! are absolute, defaults are filled in, filters are compiled.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::filter::Filter;

/// The identity of a namespaced object: `namespace/name`. A trigger's cursor belongs to this
/// identity, not to the trigger's content, so editing a trigger keeps its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace (`default` when a manifest gives none).
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How the wait before retry n (n = 1, 2, …) grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackoffPolicy {
    /// `backoffDelay × 2^(n-1)`.
    #[default]
    Exponential,
    /// `backoffDelay × n`.
    Linear,
}

/// The content mode used to deliver events to a sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventFormat {
    /// Attributes in `ce-` headers (the default).
    #[default]
    Binary,
    /// Structured JSON (`delivery.format: json`).
    Json,
}

/// A validated `DeliverySpec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Retries after the first attempt (`retry`); total attempts are `1 + retry`.
    pub retry: u32,
    /// `backoffPolicy`, exponential when unset.
    pub backoff_policy: BackoffPolicy,
    /// `backoffDelay`; when unset Weft waits 200 ms (Knative's channel default).
    pub backoff_delay: Duration,
    /// `backoffMax`: no single wait exceeds it.
    pub backoff_max: Option<Duration>,
    /// `timeout`: the limit for each attempt.
    pub timeout: Option<Duration>,
    /// `retryAfterMax`: `Retry-After` on 429/503 is honoured up to this; `None` or zero
    /// ignores `Retry-After`.
    pub retry_after_max: Option<Duration>,
    /// `deadLetterSink`, resolved to a URL.
    pub dead_letter_sink: Option<Url>,
    /// `format`: binary unless `json`.
    pub format: EventFormat,
}

/// The most retries a DeliverySpec may ask for. Knative sets no bound; this one only
/// refuses the absurd (`retry: 1000000000` would hold an event for ever): linear retries
/// every second for almost three hours still fit.
pub const MAX_RETRY: u32 = 10_000;

/// The longest `backoffDelay`, `backoffMax`, `timeout` and `retryAfterMax`: one day. A wait
/// or an attempt longer than that is a typo (`PT200S` meant as `PT0.2S`, `P2D` for `PT2S`).
pub const MAX_DELIVERY_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The most events in flight per trigger (`weft.dev/max-in-flight`, `--max-in-flight`).
pub const MAX_IN_FLIGHT: usize = 100_000;

impl DeliveryConfig {
    /// What a stock Knative install gives a Broker without `spec.delivery` (its
    /// `config-br-defaults`): 10 retries, exponential from 0.2 s, no dead-letter sink. Weft
    /// delivers with this when neither the Trigger nor its Broker sets `delivery`, unless
    /// told otherwise (`--default-retry` and its siblings).
    pub fn broker_default() -> Self {
        DeliveryConfig {
            retry: 10,
            ..DeliveryConfig::default()
        }
    }
}

impl Default for DeliveryConfig {
    /// A DeliverySpec whose fields are all unset: no retries, exponential from 200 ms, no
    /// dead-letter sink (see [`DeliveryConfig::broker_default`] for a missing spec).
    fn default() -> Self {
        DeliveryConfig {
            retry: 0,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: Duration::from_millis(200),
            backoff_max: None,
            timeout: None,
            retry_after_max: None,
            dead_letter_sink: None,
            format: EventFormat::Binary,
        }
    }
}

/// A validated Broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `namespace/name`.
    pub key: ObjectKey,
    /// `metadata.generation` when the manifest gives one.
    pub generation: Option<i64>,
    /// The `eventing.knative.dev/broker.class` annotation, if any.
    pub class: Option<String>,
    /// `spec.delivery`, the default for its triggers.
    pub delivery: Option<DeliveryConfig>,
}

/// Delivery order for a trigger (`weft.dev/delivery-order` or
/// `kafka.eventing.knative.dev/delivery.order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Many events in flight, no order (the default).
    #[default]
    Unordered,
    /// One event in flight per `partitionkey`; strict order within a key.
    Ordered,
}

/// A validated Trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerConfig {
    /// `namespace/name`.
    pub key: ObjectKey,
    /// `metadata.generation` when the manifest gives one.
    pub generation: Option<i64>,
    /// `spec.broker`: a broker in the same namespace.
    pub broker: String,
    /// `spec.filters`, else `spec.filter.attributes`, compiled (CESQL included): what the
    /// dispatcher evaluates for each event.
    pub filter: Filter,
    /// `spec.subscriber`, resolved to a URL.
    pub subscriber: Url,
    /// `spec.delivery`; when set it replaces the broker's delivery as a whole.
    pub delivery: Option<DeliveryConfig>,
    /// Delivery order from the annotations.
    pub order: DeliveryOrder,
    /// `weft.dev/max-in-flight`: the most events delivered at once; `None` takes the
    /// process default.
    pub max_in_flight: Option<usize>,
}

impl TriggerConfig {
    /// The key of the broker this trigger subscribes to.
    pub fn broker_key(&self) -> ObjectKey {
        ObjectKey::new(self.key.namespace.clone(), self.broker.clone())
    }
}
