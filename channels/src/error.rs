//! [`ChannelError`], the one error type of this crate, and its classification.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use weft_config::{EventError, ObjectKey};

/// A backend's own error, boxed so that no backend type appears in a public signature.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a channel operation failed.
///
/// [`ChannelError::is_retriable`] tells callers whether the same operation may succeed
/// later (the ingress answers 503 and the producer retries) or never will.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The URL names no backend this build supports.
    #[error(
        "unsupported channel url `{url}`: expected sqlite://, postgres://, nats://, kafka:// or memory://"
    )]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
    },
    /// The URL names a supported backend but is malformed.
    #[error("invalid channel url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, as a short phrase.
        reason: &'static str,
    },
    /// The store could not be opened or prepared (file, directory, schema migration).
    #[error("cannot open channel `{url}`")]
    Open {
        /// The URL being opened.
        url: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The broker has no log: it was never created with `ensure_log`, or it was deleted.
    #[error("broker {broker} has no log")]
    UnknownLog {
        /// The broker.
        broker: ObjectKey,
    },
    /// Events could not be made durable; none of the request's events were stored.
    #[error("cannot append to the log of broker {broker}")]
    Append {
        /// The broker whose log was written.
        broker: ObjectKey,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The store cannot serve the request right now (busy, I/O error, connection lost).
    #[error("channel storage is unavailable")]
    Unavailable {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A stored record cannot be decoded: the store holds bytes Weft did not write.
    #[error("corrupt record {seq} in the log of broker {broker}")]
    Corrupt {
        /// The broker whose log holds the record.
        broker: ObjectKey,
        /// The event's sequence number in the log (for a parked event, its parking id).
        seq: u64,
        /// What the decoder found wrong.
        #[source]
        source: EventError,
    },
    /// The channel was closed with `close`; it serves no more requests.
    #[error("the channel is closed")]
    Closed,
    /// The backend does not implement this operation.
    #[error("the channel backend does not support {operation}")]
    Unsupported {
        /// The operation, as a short phrase.
        operation: &'static str,
    },
}

impl ChannelError {
    /// Whether the same request may succeed if retried later: true when the storage is
    /// temporarily unable to serve it, false when the request itself cannot succeed
    /// (unknown broker, bad URL, corrupt data, closed channel).
    pub fn is_retriable(&self) -> bool {
        match self {
            ChannelError::Append { .. } | ChannelError::Unavailable { .. } => true,
            ChannelError::UnsupportedUrl { .. }
            | ChannelError::InvalidUrl { .. }
            | ChannelError::Open { .. }
            | ChannelError::UnknownLog { .. }
            | ChannelError::Corrupt { .. }
            | ChannelError::Closed
            | ChannelError::Unsupported { .. } => false,
        }
    }

    /// The error and its chain of causes on one line, `: `-separated, for logs and
    /// `/readyz`.
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut cause = StdError::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// A short, bounded name for the error, fit for a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ChannelError::UnsupportedUrl { .. } => "unsupported_url",
            ChannelError::InvalidUrl { .. } => "invalid_url",
            ChannelError::Open { .. } => "open",
            ChannelError::UnknownLog { .. } => "unknown_log",
            ChannelError::Append { .. } => "append",
            ChannelError::Unavailable { .. } => "unavailable",
            ChannelError::Corrupt { .. } => "corrupt",
            ChannelError::Closed => "closed",
            ChannelError::Unsupported { .. } => "unsupported",
        }
    }
}

/// One backend error reported to several callers, e.g. every request of a failed group
/// commit. Displays as, and has the same source as, the error it shares.
#[derive(Clone)]
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) struct SharedError(pub(crate) Arc<dyn StdError + Send + Sync>);

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl SharedError {
    /// Boxes a copy for one caller.
    pub(crate) fn boxed(&self) -> BoxError {
        Box::new(self.clone())
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for SharedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let broker = ObjectKey::new("default", "b");
        let busy: BoxError = "database is locked".into();
        assert!(ChannelError::Unavailable { source: busy }.is_retriable());
        let unknown = ChannelError::UnknownLog {
            broker: broker.clone(),
        };
        assert!(!unknown.is_retriable());
        assert_eq!(unknown.metric_label(), "unknown_log");
        assert_eq!(unknown.to_string(), "broker default/b has no log");
        let shared = SharedError(Arc::new(std::io::Error::other("disk full")));
        let append = ChannelError::Append {
            broker,
            source: shared.boxed(),
        };
        assert!(append.is_retriable());
        assert_eq!(append.source().unwrap().to_string(), "disk full");
        assert_eq!(
            append.describe(),
            "cannot append to the log of broker default/b: disk full"
        );
    }
}
