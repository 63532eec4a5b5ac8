//! Pure validation: turns the manifest types into the values of [`crate::model`], following
//! the rules of Knative's admission webhook plus Weft's annotations, and reports every invalid
//! field rather than only the first. Validated means ready to run: a Trigger's filters come
//! out compiled (CESQL included, by `filter`), so nothing it accepts fails later.
//!
//! No I/O happens here, so the same checks serve the folder loader and the objects read from
//! a Kubernetes cluster ([`crate::crd::convert`]). What a `ref` means comes in as a value:
//! [`LocalRefs`] standalone (`validate_with`), nothing on a cluster, whose controller
//! resolves refs beforehand (`validate`).

mod delivery;
mod filter;
mod refs;

pub use delivery::{parse_delivery_duration, parse_duration};
pub use filter::is_attribute_name;
pub use refs::{LocalRefs, join_uri, url_annotation};

use std::collections::BTreeMap;

use refs::Refs;

use crate::manifest::problem::FieldError;
use crate::manifest::types::{
    BROKER_CLASS_ANNOTATION, Broker, DELIVERY_ORDER_ANNOTATION, EVENTING_API_VERSION,
    KAFKA_DELIVERY_ORDER_ANNOTATION, KReference, MAX_IN_FLIGHT_ANNOTATION, ObjectMeta, Trigger,
};
use crate::model::{BrokerConfig, DeliveryOrder, MAX_IN_FLIGHT, TriggerConfig};

impl Broker {
    /// Checks this Broker and returns its validated form, or every problem found. A `ref`
    /// destination is a problem: the caller is expected to have resolved it to a `uri`.
    pub fn validate(&self) -> Result<BrokerConfig, Vec<FieldError>> {
        self.check(None)
    }

    /// Checks this Broker, resolving `ref` destinations with `refs`.
    pub fn validate_with(&self, refs: &LocalRefs) -> Result<BrokerConfig, Vec<FieldError>> {
        self.check(Some(refs))
    }

    fn check(&self, local: Option<&LocalRefs>) -> Result<BrokerConfig, Vec<FieldError>> {
        let refs = Refs {
            local,
            namespace: self.metadata.namespace_or_default(),
        };
        let mut errors = Vec::new();
        type_meta(&self.api_version, &self.kind, "Broker", &mut errors);
        metadata(&self.metadata, &mut errors);
        if let Some(config) = &self.spec.config {
            reference(config, "spec.config", &mut errors);
        }
        let delivery = self
            .spec
            .delivery
            .as_ref()
            .map(|spec| delivery::delivery(spec, "spec.delivery", &refs, &mut errors));
        finish(
            errors,
            BrokerConfig {
                key: self.metadata.key(),
                generation: self.metadata.generation,
                class: self
                    .metadata
                    .annotations
                    .get(BROKER_CLASS_ANNOTATION)
                    .cloned(),
                delivery,
            },
        )
    }
}

impl Trigger {
    /// Checks this Trigger and returns its validated form, or every problem found. A `ref`
    /// destination is a problem: the caller is expected to have resolved it to a `uri`.
    pub fn validate(&self) -> Result<TriggerConfig, Vec<FieldError>> {
        self.check(None)
    }

    /// Checks this Trigger, resolving `ref` destinations with `refs`.
    pub fn validate_with(&self, refs: &LocalRefs) -> Result<TriggerConfig, Vec<FieldError>> {
        self.check(Some(refs))
    }

    fn check(&self, local: Option<&LocalRefs>) -> Result<TriggerConfig, Vec<FieldError>> {
        let refs = Refs {
            local,
            namespace: self.metadata.namespace_or_default(),
        };
        let mut errors = Vec::new();
        type_meta(&self.api_version, &self.kind, "Trigger", &mut errors);
        metadata(&self.metadata, &mut errors);
        let spec = &self.spec;
        if spec.broker_ref.is_some() {
            errors.push(FieldError::new(
                "spec.brokerRef",
                "needs Kubernetes cross-namespace event links; \
                 use spec.broker with a broker in the trigger's namespace",
            ));
        } else if spec.broker.is_empty() {
            errors.push(FieldError::new(
                "spec.broker",
                "is required; give the name of a broker in the trigger's namespace",
            ));
        }
        let no_attributes = BTreeMap::new();
        let attributes = spec
            .filter
            .as_ref()
            .map_or(&no_attributes, |f| &f.attributes);
        let filter = filter::compile(attributes, &spec.filters, &mut errors);
        let subscriber =
            delivery::destination(&spec.subscriber, "spec.subscriber", &refs, &mut errors);
        let delivery = spec
            .delivery
            .as_ref()
            .map(|spec| delivery::delivery(spec, "spec.delivery", &refs, &mut errors));
        let order = delivery_order(&self.metadata, &mut errors);
        let max_in_flight = max_in_flight(&self.metadata, &mut errors);
        let Some(subscriber) = subscriber else {
            return Err(errors);
        };
        finish(
            errors,
            TriggerConfig {
                key: self.metadata.key(),
                generation: self.metadata.generation,
                broker: spec.broker.clone(),
                filter,
                subscriber,
                delivery,
                order,
                max_in_flight,
            },
        )
    }
}

fn finish<T>(errors: Vec<FieldError>, value: T) -> Result<T, Vec<FieldError>> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors)
    }
}

fn type_meta(api_version: &str, kind: &str, expected: &str, errors: &mut Vec<FieldError>) {
    if api_version != EVENTING_API_VERSION {
        errors.push(FieldError::new(
            "apiVersion",
            format!("{api_version:?} is not supported; use {EVENTING_API_VERSION}"),
        ));
    }
    if kind != expected {
        errors.push(FieldError::new(
            "kind",
            format!("{kind:?} is not {expected}"),
        ));
    }
}

/// Names must be what Kubernetes would accept, so the same manifests work on a cluster.
fn metadata(meta: &ObjectMeta, errors: &mut Vec<FieldError>) {
    if meta.name.is_empty() {
        errors.push(FieldError::new("metadata.name", "is required"));
    } else if !is_dns_subdomain(&meta.name) {
        errors.push(FieldError::new(
            "metadata.name",
            format!(
                "{:?} is not a valid name; use at most 253 lowercase letters, digits, '-' and \
                 '.', starting and ending with a letter or digit",
                meta.name
            ),
        ));
    }
    if let Some(namespace) = &meta.namespace
        && !namespace.is_empty()
        && !is_dns_label(namespace)
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            format!(
                "{namespace:?} is not a valid namespace; use at most 63 lowercase letters, \
                 digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
}

/// An RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns_label(text: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && alphanumeric(bytes[0])
        && alphanumeric(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alphanumeric(b) || b == b'-')
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// Knative requires `kind`, `name` and `apiVersion` in a reference.
fn reference(reference: &KReference, field: &str, errors: &mut Vec<FieldError>) {
    for (name, value) in [
        ("kind", &reference.kind),
        ("name", &reference.name),
        ("apiVersion", &reference.api_version),
    ] {
        if value.is_empty() {
            errors.push(FieldError::new(format!("{field}.{name}"), "is required"));
        }
    }
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

fn delivery_order(meta: &ObjectMeta, errors: &mut Vec<FieldError>) -> DeliveryOrder {
    let mut read = |key: &str| {
        let value = meta.annotations.get(key)?;
        match value.as_str() {
            "ordered" => Some(DeliveryOrder::Ordered),
            "unordered" => Some(DeliveryOrder::Unordered),
            other => {
                errors.push(FieldError::new(
                    annotation_field(key),
                    format!("{other:?} is not a delivery order; use ordered or unordered"),
                ));
                None
            }
        }
    };
    let weft = read(DELIVERY_ORDER_ANNOTATION);
    let kafka = read(KAFKA_DELIVERY_ORDER_ANNOTATION);
    match (weft, kafka) {
        (Some(weft), Some(kafka)) if weft != kafka => {
            errors.push(FieldError::new(
                annotation_field(DELIVERY_ORDER_ANNOTATION),
                format!(
                    "disagrees with {KAFKA_DELIVERY_ORDER_ANNOTATION}; give one of them, \
                     or the same value in both"
                ),
            ));
            weft
        }
        (Some(order), _) | (None, Some(order)) => order,
        (None, None) => DeliveryOrder::default(),
    }
}

fn max_in_flight(meta: &ObjectMeta, errors: &mut Vec<FieldError>) -> Option<usize> {
    let value = meta.annotations.get(MAX_IN_FLIGHT_ANNOTATION)?;
    match value.trim().parse::<usize>() {
        Ok(limit) if (1..=MAX_IN_FLIGHT).contains(&limit) => Some(limit),
        _ => {
            errors.push(FieldError::new(
                annotation_field(MAX_IN_FLIGHT_ANNOTATION),
                format!(
                    "{value:?} is not an integer from 1 to {MAX_IN_FLIGHT}; give the most \
                     events to deliver at once (e.g. \"100\")"
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
