//! Weft's types at the bottom of the stack: Knative manifests (Broker, Trigger, DeliverySpec,
//! filters) with YAML loading and validation, the CloudEvent model every other crate
//! shares, and the trigger filter engine (CESQL included) that validation compiles into.
//!
//! This crate does no I/O beyond reading manifest files. Start with [`model`], the validated
//! values the data plane consumes: validating a Trigger compiles its filter, so what
//! validation accepts cannot fail later.
//!
//! # Layout
//! - [`crd`]: Broker and Trigger as Kubernetes custom resources: CRDs, conversions.
//! - [`event`]: the CloudEvent type, its header binding (HTTP, Kafka, NATS), its HTTP
//!   binding and its storage codec.
//! - [`filter`]: trigger filters, compiled: the Subscriptions API dialects and the CESQL
//!   engine, evaluated per event by the dispatcher.
//! - [`manifest`]: Knative Broker/Trigger manifests: serde types, YAML loading, validation
//!   (`manifest::validate`; its `filter` module is the one place that says which filters
//!   are valid, and compiles them).
//! - [`model`]: validated Broker/Trigger/DeliverySpec values.
//! - [`redact`]: credentials masked in URLs and text before anything shows them.
//! - [`status`]: Knative `status` of Broker and Trigger: conditions and how to set them.

pub mod crd;
pub mod event;
pub mod filter;
pub mod manifest;
pub mod model;
pub mod redact;
pub mod status;

pub use event::{AttributeValue, Event, EventError};
pub use manifest::{Loaded, Location, Manifests, Problem, load_path, load_str};
pub use model::{
    BackoffPolicy, BrokerConfig, DeliveryConfig, DeliveryOrder, EventFormat, ObjectKey,
    TriggerConfig,
};
