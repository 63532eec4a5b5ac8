//! The `kafka://` URL, and the names Weft gives to topics and consumer groups.
//!
//! # URL
//! `kafka://HOST:PORT[,HOST:PORT…][?partitions=N&replication=R&prefix=P&timeout_ms=T&linger_ms=L]`
//! (no `user:password@`: Weft connects without SASL, and refuses credentials rather than
//! hand them to librdkafka as part of a host name)
//! - `partitions`: partitions of a broker's new topic (default 10, as Knative's
//!   `default.topic.partitions`). Existing topics keep theirs.
//! - `replication`: replication factor of new topics (default: 3, or the number of
//!   Kafka brokers when the cluster has fewer).
//! - `prefix`: the first word of every topic and group name (default `weft`); two Weft
//!   installations on one cluster keep apart by choosing different prefixes.
//! - `timeout_ms`: how long an append may wait for Kafka before it fails (default
//!   10 000); also bounds admin requests.
//! - `linger_ms`: how long the producer may wait for more records before it sends a
//!   request (librdkafka's `linger.ms`, fractions allowed; default 0: no timer delays a
//!   lone event). Records queued while a request is in flight are batched either way; on
//!   the 2-core test machine 0 and 0.5 gave the same ingest rate with 32 producers
//!   (17,400 events/s), and 0 halved the median latency at 1,000 events/s (0.65 ms
//!   instead of 1.5 ms) for a slightly higher p99 (2.8–3.4 ms instead of 2.5–2.9 ms).
//!
//! # Names
//! Kubernetes namespaces are DNS labels (`[a-z0-9-]`, no dots) and object names DNS
//! subdomains, so `<namespace>.<name>` splits unambiguously at its first dot. Knative's
//! template `knative-broker-<namespace>-<name>` does not (`a-b`/`c` and `a`/`b-c` meet),
//! so Weft keeps its shape but joins namespace and name with a dot:
//! - broker topic: `<prefix>-broker-<namespace>.<name>`, e.g. `weft-broker-default.orders`;
//! - trigger consumer group: `<topic>/<namespace>.<name>`, e.g.
//!   `weft-broker-default.orders/default.audit` — a cursor belongs to one broker's log,
//!   so the group names both, and the broker's groups share the topic as prefix;
//! - parked events: one topic, `<prefix>-parked`.
//!
//! [`KafkaConfig::broker_of`] and [`KafkaConfig::trigger_of`] map names back, which is
//! how `logs()` and `subscriptions()` list what the cluster holds without a metadata
//! store of their own.

use std::time::Duration;

use weft_config::ObjectKey;

use crate::ChannelError;

/// Partitions of a new broker topic unless the URL says otherwise (Knative's default).
const DEFAULT_PARTITIONS: i32 = 10;
/// The replication factor of new topics unless the URL says otherwise, capped by the
/// number of Kafka brokers.
pub(super) const DEFAULT_REPLICATION: i32 = 3;
/// The first word of every name unless the URL says otherwise.
const DEFAULT_PREFIX: &str = "weft";
/// How long an append waits for Kafka unless the URL says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the producer may wait for more records unless the URL says otherwise.
const DEFAULT_LINGER_MS: f64 = 0.0;
/// Kafka rejects longer topic names.
const MAX_TOPIC_LEN: usize = 249;

/// What a `kafka://` URL configures.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct KafkaConfig {
    /// `bootstrap.servers`: the comma-separated `host:port` list.
    pub bootstrap: String,
    /// Partitions of a new broker topic.
    pub partitions: i32,
    /// Replication factor of new topics; `None` picks [`DEFAULT_REPLICATION`] capped
    /// by the cluster's size.
    pub replication: Option<i32>,
    /// The first word of every topic and group name.
    pub prefix: String,
    /// How long an append (and an admin request) may wait for Kafka.
    pub timeout: Duration,
    /// librdkafka's `linger.ms`.
    pub linger_ms: f64,
}

impl KafkaConfig {
    /// Parses a `kafka://` URL.
    pub fn parse(url: &str) -> Result<Self, ChannelError> {
        let invalid = |reason| ChannelError::InvalidUrl {
            url: crate::redact(url),
            reason,
        };
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| ChannelError::UnsupportedUrl {
                url: crate::redact(url),
            })?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        if hosts.is_empty() {
            return Err(invalid("no host:port to connect to"));
        }
        if hosts.contains('@') {
            // librdkafka would take `user:password@host` for a host name and repeat it
            // in every connection warning.
            return Err(invalid(
                "credentials (user:password@) are not supported in kafka:// URLs: Weft connects to Kafka without SASL",
            ));
        }
        for host in hosts.split(',') {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(invalid("every server must be written host:port"));
            };
            if name.is_empty() || port.parse::<u16>().is_err() || host.contains('/') {
                return Err(invalid("every server must be written host:port"));
            }
        }
        let mut config = KafkaConfig {
            bootstrap: hosts.to_owned(),
            partitions: DEFAULT_PARTITIONS,
            replication: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            linger_ms: DEFAULT_LINGER_MS,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "partitions" => {
                    config.partitions = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| invalid("partitions must be a number from 1 to 10000"))?;
                }
                "replication" => {
                    let r = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| invalid("replication must be a number from 1 to 100"))?;
                    config.replication = Some(r);
                }
                "prefix" => {
                    if value.is_empty() || value.len() > 64 || !value.bytes().all(topic_char) {
                        return Err(invalid(
                            "prefix must be 1 to 64 letters, digits, '.', '_' or '-'",
                        ));
                    }
                    config.prefix = value.to_owned();
                }
                "timeout_ms" => {
                    let ms = value
                        .parse()
                        .ok()
                        .filter(|n| (100..=600_000).contains(n))
                        .ok_or_else(|| invalid("timeout_ms must be a number from 100 to 600000"))?;
                    config.timeout = Duration::from_millis(ms);
                }
                "linger_ms" => {
                    config.linger_ms = value
                        .parse()
                        .ok()
                        .filter(|ms: &f64| (0.0..=1000.0).contains(ms))
                        .ok_or_else(|| invalid("linger_ms must be a number from 0 to 1000"))?;
                }
                _ => {
                    return Err(invalid(
                        "unknown query parameter: expected partitions, replication, prefix, timeout_ms or linger_ms",
                    ));
                }
            }
        }
        Ok(config)
    }

    fn broker_prefix(&self) -> String {
        format!("{}-broker-", self.prefix)
    }

    /// The topic holding a broker's log.
    pub fn topic(&self, broker: &ObjectKey) -> Result<String, ChannelError> {
        let topic = format!("{}{}", self.broker_prefix(), dotted(broker)?);
        if topic.len() > MAX_TOPIC_LEN {
            return Err(ChannelError::Unsupported {
                operation: "broker names longer than a kafka topic name allows (249 characters with prefix and namespace)",
            });
        }
        Ok(topic)
    }

    /// The broker whose log a topic holds, if it is a broker topic of this prefix.
    pub fn broker_of(&self, topic: &str) -> Option<ObjectKey> {
        undotted(topic.strip_prefix(&self.broker_prefix())?)
    }

    /// The consumer group holding a trigger's cursor on the log in `topic`.
    pub fn group(topic: &str, trigger: &ObjectKey) -> Result<String, ChannelError> {
        Ok(format!("{topic}/{}", dotted(trigger)?))
    }

    /// The prefix every group of the log in `topic` starts with.
    pub fn groups_of(topic: &str) -> String {
        format!("{topic}/")
    }

    /// The trigger whose cursor a group holds, if it is a group of the log in `topic`.
    pub fn trigger_of(topic: &str, group: &str) -> Option<ObjectKey> {
        undotted(group.strip_prefix(topic)?.strip_prefix('/')?)
    }

    /// The topic of parked events.
    pub fn parked_topic(&self) -> String {
        format!("{}-parked", self.prefix)
    }

    /// The group id of short-lived readers (offsets, parked events); it never joins nor
    /// commits, so it never shows up as a group on the cluster.
    pub fn reader_group(&self) -> String {
        format!("{}-reader", self.prefix)
    }
}

/// Characters Kafka allows in topic names.
fn topic_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// `<namespace>.<name>`, refusing keys that would not map back.
fn dotted(key: &ObjectKey) -> Result<String, ChannelError> {
    let fits = !key.namespace.is_empty()
        && !key.name.is_empty()
        && !key.namespace.contains('.')
        && key.namespace.bytes().all(topic_char)
        && key.name.bytes().all(topic_char);
    if !fits {
        return Err(ChannelError::Unsupported {
            operation: "names outside kubernetes' namespace and object name syntax",
        });
    }
    Ok(format!("{}.{}", key.namespace, key.name))
}

fn undotted(text: &str) -> Option<ObjectKey> {
    let (namespace, name) = text.split_once('.')?;
    (!namespace.is_empty() && !name.is_empty()).then(|| ObjectKey::new(namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = KafkaConfig::parse("kafka://127.0.0.1:9092").unwrap();
        assert_eq!(c.bootstrap, "127.0.0.1:9092");
        assert_eq!(
            (c.partitions, c.replication, c.prefix.as_str(), c.timeout),
            (10, None, "weft", Duration::from_secs(10))
        );
        assert_eq!(c.linger_ms, 0.0, "no timer delays a lone event by default");
        let c = KafkaConfig::parse(
            "kafka://a:1,b:2/?partitions=3&replication=2&prefix=t-1&timeout_ms=500&linger_ms=2.5",
        )
        .unwrap();
        assert_eq!(c.bootstrap, "a:1,b:2");
        assert_eq!(
            (c.partitions, c.replication, c.prefix.as_str(), c.timeout),
            (3, Some(2), "t-1", Duration::from_millis(500))
        );
        assert_eq!(c.linger_ms, 2.5);
        for bad in [
            "kafka://",
            "kafka://host",
            "kafka://host:port",
            "kafka://:9092",
            "kafka://h:1/path",
            "kafka://h:1?partitions=0",
            "kafka://h:1?replication=x",
            "kafka://h:1?prefix=a/b",
            "kafka://h:1?acks=1",
            "kafka://h:1?linger_ms=-1",
            "kafka://user:s3cret@h:1",
            "kafka://h:1,user:s3cret@h2:1",
        ] {
            assert!(
                matches!(
                    KafkaConfig::parse(bad),
                    Err(ChannelError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let Err(error) = KafkaConfig::parse("kafka://user:s3cret@h:9092") else {
            panic!("credentials are refused");
        };
        let text = error.to_string();
        assert!(text.contains("kafka://user:***@h:9092"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(matches!(
            KafkaConfig::parse("nats://h:1"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }

    #[test]
    fn names_map_back_even_with_dashes_and_dots() {
        let c = KafkaConfig::parse("kafka://h:1").unwrap();
        for (ns, name) in [("a-b", "c"), ("a", "b-c"), ("default", "my.broker.v2")] {
            let broker = ObjectKey::new(ns, name);
            let topic = c.topic(&broker).unwrap();
            assert_eq!(c.broker_of(&topic), Some(broker.clone()), "{topic}");
            let trigger = ObjectKey::new(ns, "t.1");
            let group = KafkaConfig::group(&topic, &trigger).unwrap();
            assert_eq!(KafkaConfig::trigger_of(&topic, &group), Some(trigger));
            assert!(group.starts_with(&KafkaConfig::groups_of(&topic)));
        }
        assert_eq!(
            c.topic(&ObjectKey::new("default", "orders")).unwrap(),
            "weft-broker-default.orders"
        );
        assert_ne!(
            c.topic(&ObjectKey::new("a-b", "c")).unwrap(),
            c.topic(&ObjectKey::new("a", "b-c")).unwrap()
        );
        // Another broker's groups do not share the prefix.
        let orders = c.topic(&ObjectKey::new("default", "orders")).unwrap();
        let group = KafkaConfig::group(&orders, &ObjectKey::new("default", "t")).unwrap();
        assert_eq!(
            KafkaConfig::trigger_of("weft-broker-default.order", &group),
            None
        );
        assert_eq!(c.broker_of("other-topic"), None);
        assert_eq!(c.broker_of("weft-broker-nodot"), None);
    }

    #[test]
    fn names_that_cannot_map_back_are_refused() {
        let c = KafkaConfig::parse("kafka://h:1").unwrap();
        for (ns, name) in [("a.b", "c"), ("", "c"), ("a", ""), ("a", "b/c")] {
            assert!(
                matches!(
                    c.topic(&ObjectKey::new(ns, name)),
                    Err(ChannelError::Unsupported { .. })
                ),
                "{ns}/{name}"
            );
        }
        let long = "x".repeat(240);
        assert!(c.topic(&ObjectKey::new("default", long)).is_err());
    }
}
