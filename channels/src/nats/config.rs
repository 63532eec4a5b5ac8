//! The `nats://` URL: servers for async-nats, and Weft's own knobs in the query string.

use std::time::Duration;

use crate::ChannelError;

/// How the channel talks to JetStream, read from the URL's query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Config {
    /// What async-nats connects to: the URL without its query string (`nats://host:port`,
    /// several comma-separated, credentials allowed).
    pub(super) servers: String,
    /// Starts every stream name and subject, so several Weft installations (or test runs)
    /// can share one server without seeing each other's logs.
    pub(super) prefix: String,
    /// How long JetStream waits for an acknowledgement before it delivers the event again.
    /// Subscriptions report progress on held events well within it, so it bounds how soon
    /// another replica takes over the events of one that died, not how long a delivery
    /// may take.
    pub(super) ack_wait: Duration,
    /// The trigger's in-flight limit on the server: events handed out and not yet
    /// acknowledged, across all replicas sharing the trigger.
    pub(super) max_ack_pending: i64,
    /// Stream replicas in a JetStream cluster (1 on a single server).
    pub(super) replicas: usize,
    /// How long one request to the server (a publish acknowledgement, an API call) may
    /// take before the operation fails as unavailable.
    pub(super) timeout: Duration,
    /// How long a broker's stream keeps an event whatever its triggers did; zero keeps it
    /// until every trigger acknowledged it. Bounds the store on servers whose streams keep
    /// consumed events (see `retention`).
    pub(super) max_age: Duration,
}

/// The prefix when the URL names none.
const DEFAULT_PREFIX: &str = "weft";
/// The longest prefix accepted; names must stay well below file-name limits.
const MAX_PREFIX: usize = 32;

impl Config {
    /// Reads `nats://HOST:PORT[,HOST:PORT…][?prefix=weft&ack_wait=30s&max_ack_pending=1024&replicas=1&timeout=5s&max_age=0]`.
    pub(super) fn parse(url: &str) -> Result<Self, ChannelError> {
        let invalid = |reason| ChannelError::InvalidUrl {
            url: crate::redact(url),
            reason,
        };
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| ChannelError::UnsupportedUrl {
                url: crate::redact(url),
            })?;
        if rest.contains('#') {
            return Err(invalid("fragments are not supported"));
        }
        let (servers, query) = rest.split_once('?').unwrap_or((rest, ""));
        if servers.is_empty() || servers.split(',').any(str::is_empty) {
            return Err(invalid("the server address is empty"));
        }
        let mut config = Config {
            servers: servers
                .split(',')
                .map(|s| format!("nats://{}", s.strip_prefix("nats://").unwrap_or(s)))
                .collect::<Vec<_>>()
                .join(","),
            prefix: DEFAULT_PREFIX.to_owned(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            replicas: 1,
            timeout: Duration::from_secs(5),
            max_age: Duration::ZERO,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("query parameters take the form key=value"))?;
            match key {
                "prefix" => {
                    let valid = !value.is_empty()
                        && value.len() <= MAX_PREFIX
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !valid {
                        return Err(invalid("prefix must be 1 to 32 of A-Z, a-z, 0-9, - and _"));
                    }
                    config.prefix = value.to_owned();
                }
                "ack_wait" => {
                    config.ack_wait = duration(value)
                        .filter(|d| *d >= Duration::from_secs(1))
                        .ok_or_else(|| invalid("ack_wait must be a duration of 1s or more"))?;
                }
                "max_ack_pending" => {
                    config.max_ack_pending = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid("max_ack_pending must be a positive integer"))?;
                }
                "replicas" => {
                    config.replicas = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=5).contains(n))
                        .ok_or_else(|| invalid("replicas must be between 1 and 5"))?;
                }
                "timeout" => {
                    config.timeout = duration(value)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| invalid("timeout must be a positive duration"))?;
                }
                "max_age" => {
                    config.max_age =
                        duration(value).ok_or_else(|| invalid("max_age must be a duration"))?;
                }
                _ => {
                    return Err(invalid(
                        "unknown query parameter: expected prefix, ack_wait, max_ack_pending, replicas, timeout or max_age",
                    ));
                }
            }
        }
        Ok(config)
    }
}

impl Config {
    /// [`Config::servers`] fit for logs: each server's credentials masked.
    pub(super) fn shown_servers(&self) -> String {
        crate::redact(&self.servers)
    }
}

/// `250ms`, `30s`, `2m`, `6h`, `7d`, or a bare number of seconds.
fn duration(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86_400).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_servers() {
        let c = Config::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(c.servers, "nats://127.0.0.1:4222");
        assert_eq!(c.prefix, "weft");
        assert_eq!(c.ack_wait, Duration::from_secs(30));
        assert_eq!(c.max_ack_pending, 1024);
        let c = Config::parse("nats://u:p@a:1,b:2").unwrap();
        assert_eq!(c.servers, "nats://u:p@a:1,nats://b:2");
        let c = Config::parse("nats://u:s3cret@a:1,u:s3cret@b:2,t0ken@c:3").unwrap();
        assert_eq!(
            c.shown_servers(),
            "nats://u:***@a:1,nats://u:***@b:2,nats://***@c:3"
        );
    }

    #[test]
    fn query_parameters() {
        let c = Config::parse(
            "nats://h:1?prefix=T_1-x&ack_wait=500ms&max_ack_pending=8&replicas=3&timeout=2m",
        );
        // 500ms is below the 1s minimum.
        assert!(matches!(c, Err(ChannelError::InvalidUrl { .. })));
        let c = Config::parse(
            "nats://h:1?prefix=T_1-x&ack_wait=2s&max_ack_pending=8&replicas=3&timeout=2m&max_age=7d",
        )
        .unwrap();
        assert_eq!(c.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(c.prefix, "T_1-x");
        assert_eq!(c.ack_wait, Duration::from_secs(2));
        assert_eq!(c.max_ack_pending, 8);
        assert_eq!(c.replicas, 3);
        assert_eq!(c.timeout, Duration::from_secs(120));
        assert_eq!(c.servers, "nats://h:1");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "nats://",
            "nats://h:1?prefix=a.b",
            "nats://h:1?prefix=",
            "nats://h:1?bogus=1",
            "nats://h:1?ack_wait=soon",
            "nats://h:1?max_ack_pending=0",
            "nats://h:1?replicas",
            "nats://h:1#frag",
            "nats://a:1,,b:2",
        ] {
            assert!(
                matches!(Config::parse(bad), Err(ChannelError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Config::parse("sqlite://x"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }
}
