//! Weft's data plane: the broker ingress that stores CloudEvents durably, and the
//! per-trigger dispatchers that deliver them to sinks with Knative's delivery semantics.
//!
//! This crate runs brokers and triggers it is told about; it does not read manifests or
//! decide what should exist (that is `weft-controller`). Start with [`DataPlane`], the one
//! handle the control plane drives, then [`ingress`] and [`dispatcher`].
//!
//! # Layout
//! - [`DataPlane`]: registers brokers and triggers, serves the HTTP router.
//! - [`ingress`]: `POST /<namespace>/<broker>`: validate, stamp, append durably, answer 202;
//!   [`ingress::listen`] serves a port within what one client may hold.
//! - [`dispatcher`]: one task per trigger: read from its cursor, filter, deliver, ack. The
//!   filter arrives compiled in the trigger's `TriggerConfig` (the engine, CESQL included,
//!   is `weft_config::filter`, so a validated trigger cannot fail to compile here).
//! - [`delivery`]: sending one event to one sink as a tower stack (retry, backoff, timeout,
//!   replies, dead letters).
//! - [`telemetry`]: metric names and the Prometheus endpoint.

mod dataplane;
pub mod delivery;
pub mod dispatcher;
mod error;
pub mod ingress;
pub mod telemetry;

pub use dataplane::{DataPlane, DataPlaneOptions};
pub use dispatcher::TriggerStats;
pub use error::BrokerError;
