//! Weft's channel layer: the durable, ordered log each broker writes to, with one
//! independent cursor per trigger.
//!
//! A channel is not a queue library: it stores CloudEvents for brokers and hands them to
//! trigger dispatchers, at least once. Everything backend-specific (offsets, consumer
//! groups, leases, SQL) stays inside one module per backend; the rest of Weft sees only
//! the [`Channel`] and [`Subscription`] traits below. Start with [`Channel`], then
//! [`sqlite`], the embedded default.
//!
//! # Layout
//! - `contract`: [`Channel`], [`Subscription`], [`Delivery`]: the whole contract.
//! - `scheme`: [`open`], which picks a backend from a URL (`sqlite://…`, `memory://`).
//! - [`ack`]: cursor tracking when acknowledgements arrive out of order.
//! - [`memory`]: an in-process backend for tests.
//! - [`sqlite`]: the embedded default (feature `sqlite`).
//! - [`kafka`]: a topic per broker, a consumer group per trigger (feature `kafka`).
//! - [`postgres`]: PostgreSQL, shared by several processes (feature `postgres`).
//! - `sql`: what the SQL backends share: their group commit, parked-event rows.
//! - [`nats`]: a JetStream stream per broker, a durable consumer per trigger (feature `nats`).
//! - [`ChannelError`]: the crate's one error type.

pub mod ack;
mod contract;
mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
mod scheme;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod telemetry;

pub use contract::{AckHandle, Channel, ChannelOptions, Delivery, ParkedEvent, Subscription};
pub use error::ChannelError;
pub use scheme::open;

/// A channel URL fit for logs and error messages: passwords, tokens and secret query
/// values become `***`, in every host of a multi-host URL. Every error that names a
/// channel URL carries it in this form.
pub use weft_config::redact::redact;

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_the_channel_url_is_not_shown() {
        assert_eq!(
            super::redact("postgres://weft:s3cret@db:5432/weft?lease=PT10S"),
            "postgres://weft:***@db:5432/weft?lease=PT10S"
        );
        assert_eq!(super::redact("kafka://k:9092"), "kafka://k:9092");
        assert_eq!(
            super::redact("postgres://db/weft?user=weft&password=s3cret"),
            "postgres://db/weft?user=weft&password=***"
        );
        assert_eq!(
            super::redact("nats://u:s3cret@h1:4222,u:s3cret@h2:4222"),
            "nats://u:***@h1:4222,u:***@h2:4222"
        );
        assert_eq!(super::redact("nats://s3cret@h:4222"), "nats://***@h:4222");
        assert_eq!(super::redact("not a url"), "not a url");
    }
}
