//! Weft's types at the bottom of the stack: Knative manifests (Broker, Trigger, DeliverySpec,
//! filters) with YAML loading and validation, and the CloudEvent model every other crate
//! shares.
//!
//! This crate does no I/O beyond reading manifest files, and holds no runtime logic. Start
//! with [`model`], the validated values the data plane consumes.
//!
//! # Layout
//! - [`crd`]: Broker and Trigger as Kubernetes custom resources: CRDs, conversions.
//! - [`event`]: the CloudEvent type, its HTTP binding and its storage codec.
//! - [`manifest`]: Knative Broker/Trigger manifests: serde types, YAML loading, validation.
//! - [`model`]: validated Broker/Trigger/DeliverySpec values.
//! - [`redact`]: credentials masked in URLs and text before anything shows them.
//! - [`status`]: Knative `status` of Broker and Trigger: conditions and how to set them.

pub mod crd;
pub mod event;
pub mod manifest;
pub mod model;
pub mod redact;
pub mod status;

pub use event::{AttributeValue, Event, EventError};
pub use manifest::{Loaded, Location, Manifests, Problem, load_path, load_str};
pub use model::{
    BackoffPolicy, BrokerConfig, DeliveryConfig, DeliveryOrder, EventFormat, ObjectKey,
    SubscriptionsFilter, TriggerConfig,
};
