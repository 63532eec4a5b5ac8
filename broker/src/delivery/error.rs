//! [`DeliveryError`]: why one attempt to deliver an event failed, and what that means for
//! retrying, dead letters and metrics; [`ReplyError`]: why a sink's reply was not stored.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tower::BoxError;
use weft_config::EventError;

use super::classify::ResponseClass;

/// Why one attempt to deliver an event failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The sink answered with a status that is not a success.
    #[error("{status}")]
    Status {
        /// The status the sink answered with.
        status: StatusCode,
        /// The start of the response body (for the dead letter's `knativeerrordata`).
        body: Bytes,
        /// The wait the sink asked for with `Retry-After`, on a 429 or 503 only.
        retry_after: Option<Duration>,
    },
    /// The attempt did not finish within the DeliverySpec's `timeout`.
    #[error("timed out after {after:?}")]
    Timeout {
        /// The per-attempt limit that ran out.
        after: Duration,
    },
    /// The request could not be sent or the response could not be read (connection refused
    /// or reset, DNS failure, …).
    #[error("could not reach the sink")]
    Transport {
        /// What the HTTP client reported.
        #[source]
        source: BoxError,
    },
    /// A 200 response had a body that is not a CloudEvent. Knative treats this as a 502.
    #[error("the sink's reply is not a valid CloudEvent")]
    MalformedReply {
        /// The response body.
        body: Bytes,
        /// Why it could not be read as an event.
        #[source]
        source: EventError,
    },
    /// A 200 response had a body larger than Weft reads, so it cannot be a reply.
    #[error("the sink's reply is larger than {limit} bytes")]
    ReplyTooLarge {
        /// The most bytes Weft reads from a response.
        limit: usize,
    },
    /// The sink's reply event could not be stored, so the delivery is not finished.
    #[error("the sink's reply was not stored")]
    Reply {
        /// What the reply sink reported.
        #[source]
        source: ReplyError,
    },
}

impl DeliveryError {
    /// Whether another attempt could succeed: retriable statuses, timeouts, transport
    /// errors, malformed replies and failures to store a reply (unless it was rejected).
    pub fn is_retriable(&self) -> bool {
        match self {
            DeliveryError::Status { status, .. } => {
                ResponseClass::classify(*status) == ResponseClass::Retry
            }
            DeliveryError::Timeout { .. }
            | DeliveryError::Transport { .. }
            | DeliveryError::MalformedReply { .. }
            | DeliveryError::ReplyTooLarge { .. } => true,
            DeliveryError::Reply { source } => source.is_retriable(),
        }
    }

    /// The HTTP status that stands for this failure in a dead letter's `knativeerrorcode`:
    /// the sink's status, 502 for a malformed reply (as Knative reports it), and none when
    /// no response was judged (timeouts, transport errors, reply storage).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            DeliveryError::Status { status, .. } => Some(*status),
            DeliveryError::MalformedReply { .. } | DeliveryError::ReplyTooLarge { .. } => {
                Some(StatusCode::BAD_GATEWAY)
            }
            DeliveryError::Timeout { .. }
            | DeliveryError::Transport { .. }
            | DeliveryError::Reply { .. } => None,
        }
    }

    /// The response body, when there was one worth keeping.
    pub fn body(&self) -> Bytes {
        match self {
            DeliveryError::Status { body, .. } | DeliveryError::MalformedReply { body, .. } => {
                body.clone()
            }
            _ => Bytes::new(),
        }
    }

    /// The wait a 429 or 503 asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, bounded label for the `outcome` of an attempt in metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DeliveryError::Status { .. } if self.is_retriable() => "status_retriable",
            DeliveryError::Status { .. } => "status_permanent",
            DeliveryError::Timeout { .. } => "timeout",
            DeliveryError::Transport { .. } => "transport",
            DeliveryError::MalformedReply { .. } | DeliveryError::ReplyTooLarge { .. } => {
                "malformed_reply"
            }
            DeliveryError::Reply { .. } => "reply_not_stored",
        }
    }

    /// The error and its chain of causes on one line, for logs and [`Failure`](super::Failure).
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// Recovers the error of an attempt from tower's `Timeout` layer, which boxes errors:
    /// the inner service's [`DeliveryError`] comes back as it was, and `Elapsed` becomes
    /// [`DeliveryError::Timeout`] with the configured limit.
    pub(crate) fn from_timeout_layer(error: BoxError, limit: Option<Duration>) -> Self {
        match error.downcast::<DeliveryError>() {
            Ok(error) => *error,
            // `Timeout` fails only with its inner service's error (a `DeliveryError`) or with
            // `Elapsed`, which needs a configured limit.
            Err(_elapsed) => DeliveryError::Timeout {
                after: limit.unwrap_or_default(),
            },
        }
    }
}

/// Why a reply event was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The broker refuses the reply as it is (an invalid hop count, …); storing it again
    /// would fail the same way, so the delivery is not retried.
    #[error("the broker rejected it: {reason}")]
    Rejected {
        /// Why, as a short phrase.
        reason: String,
    },
    /// The broker's channel could not append the reply; a later attempt may succeed.
    #[error("the channel could not append it: {reason}")]
    Store {
        /// What the channel reported.
        reason: String,
    },
}

impl ReplyError {
    /// Whether delivering the original again (and so storing its reply again) could
    /// succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ReplyError::Rejected { .. } => false,
            ReplyError::Store { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> DeliveryError {
        DeliveryError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: Bytes::from_static(b"nope"),
            retry_after: None,
        }
    }

    #[test]
    fn classification_lives_on_the_type() {
        assert!(status(503).is_retriable());
        assert!(status(404).is_retriable());
        assert!(!status(400).is_retriable());
        assert!(!status(302).is_retriable());
        assert!(
            DeliveryError::Timeout {
                after: Duration::from_secs(1)
            }
            .is_retriable()
        );
        let rejected = DeliveryError::Reply {
            source: ReplyError::Rejected {
                reason: "bad".into(),
            },
        };
        assert!(!rejected.is_retriable());
        let unstored = DeliveryError::Reply {
            source: ReplyError::Store {
                reason: "disk full".into(),
            },
        };
        assert!(unstored.is_retriable());
        assert_eq!(unstored.metric_label(), "reply_not_stored");
        assert_eq!(status(500).metric_label(), "status_retriable");
        assert_eq!(status(401).metric_label(), "status_permanent");
    }

    #[test]
    fn messages_read_as_reasons() {
        assert_eq!(status(503).describe(), "503 Service Unavailable");
        assert_eq!(
            DeliveryError::Timeout {
                after: Duration::from_secs(1)
            }
            .describe(),
            "timed out after 1s"
        );
        let unstored = DeliveryError::Reply {
            source: ReplyError::Store {
                reason: "disk full".into(),
            },
        };
        assert_eq!(
            unstored.describe(),
            "the sink's reply was not stored: the channel could not append it: disk full"
        );
    }

    #[test]
    fn the_timeout_layer_errors_are_unboxed() {
        let inner: BoxError = Box::new(status(500));
        let back = DeliveryError::from_timeout_layer(inner, Some(Duration::from_secs(2)));
        assert_eq!(back.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let back = DeliveryError::from_timeout_layer(elapsed, Some(Duration::from_secs(2)));
        assert!(
            matches!(back, DeliveryError::Timeout { after } if after == Duration::from_secs(2))
        );
    }
}
