//! Retention: which events a broker's stream keeps, by what the server can do safely.
//!
//! Knative's semantics, which the other backends follow, are JetStream's *interest*
//! retention: a message is removed once every consumer (trigger) acknowledged it, and a
//! message published while the stream has no consumer is not kept (a broker without
//! triggers keeps no events; a new trigger starts at the end anyway).
//!
//! Before NATS 2.9.16, though, a stream that shuts down stops its consumers before it stops
//! taking messages, and interest retention then acknowledges and discards what is published
//! in between: events that got a 202 are lost on a clean server restart. (Reproduced
//! against Debian's `nats-server` 2.9.10: publishers and an acknowledging consumer running
//! while the server gets SIGTERM lose the last few dozen acknowledged messages with
//! interest retention, none with limits retention; none with either on 2.10.) Purging
//! consumed messages from a limits stream instead is no way out there: before 2.9.15 a
//! purge clears the consumers' pending state, so an event handed out and then dropped, or
//! held by a process that dies, is never delivered again; and in every version a purge
//! drops the consumers' queued redeliveries.
//!
//! So a stream created on a server of [`INTEREST_SAFE_SINCE`] or later uses interest
//! retention; on an older one it uses limits retention and keeps every event until the
//! URL's `max_age` (unlimited by default), as Kafka keeps records for its retention time.
//! A stream keeps the policy it was created with.

use async_nats::jetstream::stream::RetentionPolicy;

/// The first NATS server version whose streams stop taking messages before they stop
/// their consumers.
pub(super) const INTEREST_SAFE_SINCE: (u64, u64, u64) = (2, 9, 16);

/// The retention of new broker streams on a server of this version. An unreadable version
/// counts as old.
pub(super) fn policy(version: &str) -> RetentionPolicy {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(major)), Some(Some(minor)), Some(Some(patch)))
            if (major, minor, patch) >= INTEREST_SAFE_SINCE =>
        {
            RetentionPolicy::Interest
        }
        _ => RetentionPolicy::Limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        for (version, interest) in [
            ("2.9.10", false),
            ("2.9.15", false),
            ("2.9.16", true),
            ("2.10.29", true),
            ("2.11.0-beta.1", true),
            ("3.0.0", true),
            ("", false),
            ("weird", false),
        ] {
            let expected = if interest {
                RetentionPolicy::Interest
            } else {
                RetentionPolicy::Limits
            };
            assert_eq!(policy(version), expected, "{version}");
        }
    }
}
