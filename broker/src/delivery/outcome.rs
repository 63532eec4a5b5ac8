//! How delivering an event ended: [`Outcome`], and the [`Failure`] a dead letter and the
//! dispatcher's logs are made from.

use bytes::Bytes;

use super::error::DeliveryError;

/// How delivering an event ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sink accepted the event (and its reply, if any, was stored).
    Delivered {
        /// The sink's 2xx status.
        status: u16,
        /// Attempts made, the successful one included.
        attempts: u32,
    },
    /// The sink did not accept the event: retries are spent or the failure is permanent.
    Failed(Failure),
}

/// Why an event was not delivered: the last attempt's failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The last HTTP status (502 for a malformed reply); `None` for a connection error, a
    /// timeout or a reply that could not be stored.
    pub status: Option<u16>,
    /// The last response body (at most 1 MiB of it); empty when there was none.
    pub body: Bytes,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the last failure was retriable (retries ran out) rather than permanent.
    pub retriable: bool,
    /// The failure for logs: `503 Service Unavailable`, `timed out after 1s`, …
    pub reason: String,
}

impl Failure {
    /// The failure of a delivery whose last attempt (of `attempts`) failed with `error`.
    pub(super) fn new(error: &DeliveryError, attempts: u32) -> Self {
        Failure {
            status: error.status().map(|s| s.as_u16()),
            body: error.body(),
            attempts,
            retriable: error.is_retriable(),
            reason: error.describe(),
        }
    }
}
