//! From cluster objects to folder manifests, so that a Broker or Trigger read from Kubernetes
//! is checked by the same [`crate::manifest::validate`] rules as one read from a file.
//!
//! The folder rules resolve no `ref`: a destination given as a `ref` is reported as needing
//! Kubernetes. A cluster state source resolves refs first (to a `uri`) and converts after.

use std::path::PathBuf;

use crate::manifest::load::{Loaded, Manifests, load_broker, load_trigger};
use crate::manifest::problem::Location;
use crate::manifest::types::{
    Broker, BrokerResource, EVENTING_API_VERSION, ObjectMeta, Trigger, TriggerResource,
};
use crate::model::{BrokerConfig, TriggerConfig};

/// The `file` of the [`Location`] of objects read from Kubernetes; problems then read
/// `kubernetes (Trigger shop/orders): spec.broker: is required…`.
pub const CLUSTER_SOURCE: &str = "kubernetes";

/// The [`Location`] of objects read from Kubernetes.
pub fn cluster_source() -> Location {
    Location {
        file: PathBuf::from(CLUSTER_SOURCE),
        document: 0,
    }
}

fn metadata(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        generation: meta.generation,
    }
}

impl From<&BrokerResource> for Broker {
    fn from(resource: &BrokerResource) -> Self {
        Broker {
            api_version: EVENTING_API_VERSION.to_owned(),
            kind: "Broker".to_owned(),
            metadata: metadata(&resource.metadata),
            spec: resource.spec.clone(),
            status: None,
        }
    }
}

impl From<&TriggerResource> for Trigger {
    fn from(resource: &TriggerResource) -> Self {
        Trigger {
            api_version: EVENTING_API_VERSION.to_owned(),
            kind: "Trigger".to_owned(),
            metadata: metadata(&resource.metadata),
            spec: resource.spec.clone(),
            status: None,
        }
    }
}

/// Validates a Broker read from Kubernetes.
pub fn load_broker_resource(resource: &BrokerResource) -> Loaded<BrokerConfig> {
    load_broker(&Broker::from(resource), &cluster_source())
}

/// Validates a Trigger read from Kubernetes.
pub fn load_trigger_resource(resource: &TriggerResource) -> Loaded<TriggerConfig> {
    load_trigger(&Trigger::from(resource), &cluster_source())
}

/// A snapshot of the cluster's Brokers and Triggers, each validated as if read from a folder.
/// The order of the lists is kept.
pub fn manifests<'a>(
    brokers: impl IntoIterator<Item = &'a BrokerResource>,
    triggers: impl IntoIterator<Item = &'a TriggerResource>,
) -> Manifests {
    Manifests {
        brokers: brokers.into_iter().map(load_broker_resource).collect(),
        triggers: triggers.into_iter().map(load_trigger_resource).collect(),
        problems: Vec::new(),
        unread: Vec::new(),
    }
}
