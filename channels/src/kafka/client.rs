//! The librdkafka side every part of the backend shares: the client context that routes
//! its logs to `tracing`, which errors are transient and a blocking call retried while
//! they last, and Kafka's errors as [`ChannelError`]s.

use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;

use crate::ChannelError;
use crate::error::BoxError;

/// The context of the channel's own clients: routes librdkafka's logs to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl ConsumerContext for Quiet {}

/// Forwards a librdkafka log line. Its errors are connection trouble that librdkafka
/// retries, so they are warnings here; losing an event is what Weft logs as an error.
pub(super) fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let message = weft_config::redact::redact_urls_in(message);
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// Forwards a client-wide error (all brokers down, a failed connection), which
/// librdkafka recovers from by itself.
pub(super) fn log_client_error(error: KafkaError, reason: &str) {
    let reason = weft_config::redact::redact_urls_in(reason);
    tracing::warn!(%error, reason = %reason, "kafka client error; reconnecting");
}

/// Whether Kafka may answer differently in a moment: leadership moving (as right after
/// a topic is created), a coordinator loading, a connection being re-established.
pub(super) fn transient(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | NetworkException
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | NotEnoughReplicas
                | KafkaStorageError
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | OffsetNotAvailable
                | BrokerTransportFailure
                | AllBrokersDown
                | OperationTimedOut
        )
    )
}

/// Repeats a blocking call while it fails transiently, for at most `within`.
pub(super) fn retrying<T>(
    within: Duration,
    mut call: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let deadline = Instant::now() + within;
    loop {
        match call() {
            Err(e) if transient(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

pub(super) fn unavailable(error: KafkaError) -> ChannelError {
    ChannelError::Unavailable {
        source: Box::new(error),
    }
}

pub(super) fn unavailable_because(reason: String) -> ChannelError {
    ChannelError::Unavailable {
        source: BoxError::from(reason),
    }
}
