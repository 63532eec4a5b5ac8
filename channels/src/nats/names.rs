//! Names of streams, subjects and consumers, derived from broker and trigger keys.
//!
//! JetStream names may not contain `.`, `*`, `>`, whitespace or path separators, and
//! subject tokens may not contain `.`, `*`, `>` or whitespace. A key part is therefore
//! *escaped*: `a-z`, `0-9` and `-` (everything a Kubernetes name uses but `.`) stay as
//! they are, and every other byte of its UTF-8 becomes `Z` and two upper-case hex digits
//! (`my.broker` → `myZ2Ebroker`). Escaped parts contain neither `_` nor `.`, so
//! `<ns>_<name>` (names) and `<ns>.<name>` (subjects) are injective.
//!
//! | what | name |
//! |---|---|
//! | a broker's stream | `<prefix>_<ns>_<name>`, subject `<prefix>.<ns>.<name>` |
//! | a trigger's durable consumer | `<ns>_<name>` on its broker's stream |
//! | parked events | stream `<prefix>_parked`, subjects `<prefix>._parked.<ns>.<name>` |
//!
//! A name longer than [`MAX_NAME`] bytes (names become directory names on the server)
//! is replaced by `H` and a 64-bit FNV-1a hash of the escaped key. Either way the
//! description of the stream or consumer holds the escaped key, from which [`Names::key`]
//! recovers the broker or trigger when listing.

use std::fmt::Write;

use weft_config::ObjectKey;

/// The longest stream or consumer name used as is.
const MAX_NAME: usize = 160;

/// Derives names under one prefix.
#[derive(Clone, Debug)]
pub(super) struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (already validated: `[A-Za-z0-9_-]+`).
    pub(super) fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The stream holding the broker's log.
    pub(super) fn stream(&self, broker: &ObjectKey) -> String {
        bounded(format!("{}_", self.prefix), &escape_key(broker))
    }

    /// The subject the broker's events are published on.
    pub(super) fn subject(&self, broker: &ObjectKey) -> String {
        format!(
            "{}.{}.{}",
            self.prefix,
            escape(&broker.namespace),
            escape(&broker.name)
        )
    }

    /// The trigger's durable consumer on its broker's stream.
    pub(super) fn consumer(&self, trigger: &ObjectKey) -> String {
        bounded(String::new(), &escape_key(trigger))
    }

    /// The stream holding parked events of every broker.
    pub(super) fn parked_stream(&self) -> String {
        format!("{}_parked", self.prefix)
    }

    /// The subject of the events parked for a broker.
    pub(super) fn parked_subject(&self, broker: &ObjectKey) -> String {
        format!(
            "{}._parked.{}.{}",
            self.prefix,
            escape(&broker.namespace),
            escape(&broker.name)
        )
    }

    /// The subjects of the parked-events stream.
    pub(super) fn parked_subjects(&self) -> String {
        format!("{}._parked.*.*", self.prefix)
    }

    /// What a stream's or consumer's description says about the key it belongs to.
    pub(super) fn description(key: &ObjectKey) -> String {
        escape_key(key)
    }

    /// The broker owning `stream`, if it is one of ours: its description decodes to a key
    /// whose stream name is `stream`.
    pub(super) fn broker_of(&self, stream: &str, description: Option<&str>) -> Option<ObjectKey> {
        let key = unescape_key(description?)?;
        (self.stream(&key) == stream).then_some(key)
    }

    /// The trigger owning `consumer`, if it is one of ours.
    pub(super) fn trigger_of(
        &self,
        consumer: &str,
        description: Option<&str>,
    ) -> Option<ObjectKey> {
        let key = unescape_key(description?)?;
        (self.consumer(&key) == consumer).then_some(key)
    }
}

/// `prefix` and `escaped`, or `prefix` and a hash of `escaped` when that is too long.
fn bounded(mut prefix: String, escaped: &str) -> String {
    if prefix.len() + escaped.len() <= MAX_NAME {
        prefix.push_str(escaped);
    } else {
        let _ = write!(prefix, "H{:016x}", fnv1a(escaped.as_bytes()));
    }
    prefix
}

/// The 64-bit FNV-1a hash: stable across Rust versions and platforms, unlike `std`'s.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn escape_key(key: &ObjectKey) -> String {
    format!("{}_{}", escape(&key.namespace), escape(&key.name))
}

/// The key that [`Names::description`] describes.
pub(super) fn parse_key(escaped: &str) -> Option<ObjectKey> {
    unescape_key(escaped)
}

fn unescape_key(escaped: &str) -> Option<ObjectKey> {
    let (namespace, name) = escaped.split_once('_')?;
    Some(ObjectKey::new(unescape(namespace)?, unescape(name)?))
}

/// Escapes one part of a key (see the module documentation).
pub(super) fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "Z{b:02X}");
        }
    }
    out
}

/// Reverses [`escape`]; `None` for anything `escape` does not produce.
fn unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'Z' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return None;
            }
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let part = String::from_utf8(bytes).ok()?;
    // Only the canonical form: `Z61` is not another spelling of `a`.
    (escape(&part) == escaped).then_some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_injective_and_reversible() {
        for part in ["default", "my.broker", "a_b", "Caps", "ü", "", "Z", "x-1"] {
            let escaped = escape(part);
            assert!(
                !escaped.contains(['_', '.', '*', '>', ' ', '/']),
                "{escaped}"
            );
            assert_eq!(unescape(&escaped).as_deref(), Some(part));
        }
        assert_eq!(escape("my.broker"), "myZ2Ebroker");
        assert_eq!(unescape("Z61"), None, "not canonical");
        assert_eq!(unescape("Z2"), None);
        assert_eq!(unescape("a_b"), None);
        // `a_b/c` and `a/b_c` are different keys with different names.
        let names = Names::new("weft");
        assert_ne!(
            names.stream(&ObjectKey::new("a_b", "c")),
            names.stream(&ObjectKey::new("a", "b_c"))
        );
    }

    #[test]
    fn names_and_subjects() {
        let names = Names::new("weft");
        let broker = ObjectKey::new("default", "orders.v1");
        assert_eq!(names.stream(&broker), "weft_default_ordersZ2Ev1");
        assert_eq!(names.subject(&broker), "weft.default.ordersZ2Ev1");
        assert_eq!(
            names.parked_subject(&broker),
            "weft._parked.default.ordersZ2Ev1"
        );
        assert_eq!(names.parked_stream(), "weft_parked");
        let trigger = ObjectKey::new("team-a", "t1");
        assert_eq!(names.consumer(&trigger), "team-a_t1");
        let description = Names::description(&broker);
        assert_eq!(
            names.broker_of("weft_default_ordersZ2Ev1", Some(&description)),
            Some(broker.clone())
        );
        assert_eq!(names.broker_of("other", Some(&description)), None);
        assert_eq!(names.broker_of("weft_parked", None), None);
        assert_eq!(
            names.trigger_of("team-a_t1", Some(&Names::description(&trigger))),
            Some(trigger)
        );
    }

    #[test]
    fn long_keys_are_hashed_and_still_listed() {
        let names = Names::new("weft");
        let broker = ObjectKey::new("default", "x".repeat(300));
        let stream = names.stream(&broker);
        assert!(stream.len() <= MAX_NAME, "{stream}");
        assert!(stream.starts_with("weft_H"));
        assert_eq!(
            names.broker_of(&stream, Some(&Names::description(&broker))),
            Some(broker.clone())
        );
        let other = ObjectKey::new("default", "y".repeat(300));
        assert_ne!(names.stream(&other), stream);
    }
}
