//! Builders for Knative Broker and Trigger manifests, rendered as the YAML a user would
//! write (`eventing.knative.dev/v1`).
//!
//! ```
//! use weft_bench::{Delivery, broker, trigger};
//! let yaml = format!(
//!     "{}---\n{}",
//!     broker("default").delivery(Delivery::new().retry(2).linear("PT0.2S")),
//!     trigger("t1").broker("default").subscriber("http://127.0.0.1:9/").filter_attr("type", "x"),
//! );
//! assert!(yaml.contains("kind: Trigger"));
//! ```

use std::fmt::{self, Display, Formatter, Write as _};

/// Quotes a scalar as a YAML double-quoted string. A JSON string literal is one, and
/// quoting everything keeps values such as `"5"` or `"on"` strings.
fn q(value: &str) -> String {
    // Serializing a &str to JSON cannot fail.
    serde_json::to_string(value).expect("a string serializes")
}

/// A `DeliverySpec`: retries, backoff, timeout, dead-letter sink, format.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    retry: Option<u32>,
    backoff_policy: Option<&'static str>,
    backoff_delay: Option<String>,
    backoff_max: Option<String>,
    timeout: Option<String>,
    retry_after_max: Option<String>,
    dead_letter_sink: Option<String>,
    format: Option<String>,
}

impl Delivery {
    /// An empty DeliverySpec (no retries unless set).
    pub fn new() -> Self {
        Self::default()
    }

    /// `retry`: retries after the first attempt.
    pub fn retry(mut self, retries: u32) -> Self {
        self.retry = Some(retries);
        self
    }

    /// `backoffPolicy: linear` with `backoffDelay` (ISO-8601, e.g. `PT0.2S`).
    pub fn linear(mut self, delay: &str) -> Self {
        self.backoff_policy = Some("linear");
        self.backoff_delay = Some(delay.into());
        self
    }

    /// `backoffPolicy: exponential` with `backoffDelay`.
    pub fn exponential(mut self, delay: &str) -> Self {
        self.backoff_policy = Some("exponential");
        self.backoff_delay = Some(delay.into());
        self
    }

    /// `backoffMax`: the cap on any single wait.
    pub fn backoff_max(mut self, max: &str) -> Self {
        self.backoff_max = Some(max.into());
        self
    }

    /// `timeout`: the limit for each attempt.
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// `retryAfterMax`: how long a `Retry-After` may make the dispatcher wait.
    pub fn retry_after_max(mut self, max: &str) -> Self {
        self.retry_after_max = Some(max.into());
        self
    }

    /// `deadLetterSink.uri`.
    pub fn dead_letter_sink(mut self, uri: impl Into<String>) -> Self {
        self.dead_letter_sink = Some(uri.into());
        self
    }

    /// `format`: `json` (structured mode) or `binary`.
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.into());
        self
    }

    /// Writes `delivery:` and its fields, indented by `indent` spaces.
    fn write(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        let _ = writeln!(out, "{pad}delivery:");
        let field = |out: &mut String, name: &str, value: &Option<String>| {
            if let Some(v) = value {
                let _ = writeln!(out, "{pad}  {name}: {}", q(v));
            }
        };
        if let Some(retry) = self.retry {
            let _ = writeln!(out, "{pad}  retry: {retry}");
        }
        if let Some(policy) = self.backoff_policy {
            let _ = writeln!(out, "{pad}  backoffPolicy: {policy}");
        }
        field(out, "backoffDelay", &self.backoff_delay);
        field(out, "backoffMax", &self.backoff_max);
        field(out, "timeout", &self.timeout);
        field(out, "retryAfterMax", &self.retry_after_max);
        field(out, "format", &self.format);
        if let Some(uri) = &self.dead_letter_sink {
            let _ = writeln!(out, "{pad}  deadLetterSink:\n{pad}    uri: {}", q(uri));
        }
    }
}

/// The metadata every object has.
#[derive(Clone, Debug)]
struct Metadata {
    name: String,
    namespace: String,
    annotations: Vec<(String, String)>,
}

impl Metadata {
    fn new(name: &str) -> Self {
        Metadata {
            name: name.into(),
            namespace: "default".into(),
            annotations: Vec::new(),
        }
    }

    fn write(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "apiVersion: eventing.knative.dev/v1\nkind: {kind}");
        let _ = writeln!(
            out,
            "metadata:\n  name: {}\n  namespace: {}",
            q(&self.name),
            q(&self.namespace)
        );
        if !self.annotations.is_empty() {
            out.push_str("  annotations:\n");
            for (k, v) in &self.annotations {
                let _ = writeln!(out, "    {}: {}", q(k), q(v));
            }
        }
    }
}

/// A Broker manifest; see [`broker`].
#[derive(Clone, Debug)]
pub struct Broker {
    meta: Metadata,
    delivery: Option<Delivery>,
}

/// Starts a Broker manifest named `name` in namespace `default`.
pub fn broker(name: &str) -> Broker {
    Broker {
        meta: Metadata::new(name),
        delivery: None,
    }
}

impl Broker {
    /// Sets `metadata.namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.meta.namespace = namespace.into();
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.meta.annotations.push((key.into(), value.into()));
        self
    }

    /// Sets `spec.delivery`.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = Some(delivery);
        self
    }
}

impl Display for Broker {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.meta.write(&mut out, "Broker");
        match &self.delivery {
            Some(d) => {
                out.push_str("spec:\n");
                d.write(&mut out, 2);
            }
            None => out.push_str("spec: {}\n"),
        }
        f.write_str(&out)
    }
}

/// A Trigger manifest; see [`trigger`].
#[derive(Clone, Debug)]
pub struct Trigger {
    meta: Metadata,
    broker: String,
    subscriber: String,
    filter: Vec<(String, String)>,
    delivery: Option<Delivery>,
}

/// Starts a Trigger manifest named `name` in namespace `default`, on broker `default`.
pub fn trigger(name: &str) -> Trigger {
    Trigger {
        meta: Metadata::new(name),
        broker: "default".into(),
        subscriber: String::new(),
        filter: Vec::new(),
        delivery: None,
    }
}

impl Trigger {
    /// Sets `metadata.namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.meta.namespace = namespace.into();
        self
    }

    /// Sets `spec.broker`.
    pub fn broker(mut self, broker: &str) -> Self {
        self.broker = broker.into();
        self
    }

    /// Sets `spec.subscriber.uri`.
    pub fn subscriber(mut self, uri: impl Into<String>) -> Self {
        self.subscriber = uri.into();
        self
    }

    /// Adds an exact-match entry to `spec.filter.attributes`.
    pub fn filter_attr(mut self, attribute: &str, value: &str) -> Self {
        self.filter.push((attribute.into(), value.into()));
        self
    }

    /// Adds an annotation, e.g. `weft.dev/delivery-order: ordered`.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.meta.annotations.push((key.into(), value.into()));
        self
    }

    /// Sets `spec.delivery`, which replaces the broker's as a whole.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = Some(delivery);
        self
    }
}

impl Display for Trigger {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.meta.write(&mut out, "Trigger");
        let _ = writeln!(out, "spec:\n  broker: {}", q(&self.broker));
        if !self.filter.is_empty() {
            out.push_str("  filter:\n    attributes:\n");
            for (k, v) in &self.filter {
                let _ = writeln!(out, "      {k}: {}", q(v));
            }
        }
        let _ = writeln!(out, "  subscriber:\n    uri: {}", q(&self.subscriber));
        if let Some(d) = &self.delivery {
            d.write(&mut out, 2);
        }
        f.write_str(&out)
    }
}

/// Joins manifests into one multi-document YAML file.
pub fn documents(docs: &[&dyn Display]) -> String {
    docs.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_yaml_has_every_field() {
        let yaml = trigger("t1")
            .broker("b")
            .subscriber("http://127.0.0.1:1/x")
            .filter_attr("type", "a.b")
            .annotation("weft.dev/max-in-flight", "3")
            .delivery(
                Delivery::new()
                    .retry(2)
                    .linear("PT0.2S")
                    .dead_letter_sink("http://127.0.0.1:1/dls"),
            )
            .to_string();
        let expected = r#"apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: "t1"
  namespace: "default"
  annotations:
    "weft.dev/max-in-flight": "3"
spec:
  broker: "b"
  filter:
    attributes:
      type: "a.b"
  subscriber:
    uri: "http://127.0.0.1:1/x"
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: "PT0.2S"
    deadLetterSink:
      uri: "http://127.0.0.1:1/dls"
"#;
        assert_eq!(yaml, expected);
    }

    #[test]
    fn broker_without_delivery_has_an_empty_spec() {
        let yaml = documents(&[&broker("a"), &broker("b").namespace("ns")]);
        assert_eq!(yaml.matches("spec: {}").count(), 2);
        assert!(yaml.contains("---\napiVersion"));
        assert!(yaml.contains("namespace: \"ns\""));
    }
}
