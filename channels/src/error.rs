//! [`ChannelError`], the one error type of this crate, and its classification.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use weft_config::redact::Secrets;
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
    /// [`ChannelError::Open`] for `url`: the URL redacted, and the backend's error (with
    /// its causes) freed of the URL's secrets, which client libraries may repeat.
    pub fn open(url: &str, source: BoxError) -> Self {
        ChannelError::Open {
            url: weft_config::redact::redact(url),
            source: scrubbed(source, &Secrets::of(url)),
        }
    }

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

/// A backend error, with its causes, as text from which secrets were removed: what an
/// error that may quote a URL's credentials becomes before it is shown.
#[derive(Debug)]
pub(crate) struct Scrubbed {
    message: String,
    source: Option<Box<Scrubbed>>,
}

impl fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Scrubbed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// `error` as is when neither it nor its causes show a secret or a URL's credentials;
/// else its text, cause by cause, with them masked.
pub(crate) fn scrubbed(error: BoxError, secrets: &Secrets) -> BoxError {
    let mut texts = Vec::new();
    let mut changed = false;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&*error);
    while let Some(c) = cause {
        let text = c.to_string();
        let clean = secrets.scrub(&text).into_owned();
        changed |= clean != text;
        texts.push(clean);
        cause = c.source();
    }
    if !changed {
        return error;
    }
    let chain = texts.into_iter().rev().fold(None, |source, message| {
        Some(Box::new(Scrubbed { message, source }))
    });
    match chain {
        Some(scrubbed) => scrubbed,
        None => error,
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
    fn open_errors_show_neither_the_password_nor_a_token() {
        #[derive(Debug)]
        struct Connect(std::io::Error);
        impl fmt::Display for Connect {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connecting to nats://tok3n@h2:4222 failed")
            }
        }
        impl StdError for Connect {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("server said: bad password hunter22");
        let error = ChannelError::open(
            "nats://u:hunter22@h1:4222,tok3n@h2:4222",
            Box::new(Connect(io)),
        );
        assert_eq!(
            error.describe(),
            "cannot open channel `nats://u:***@h1:4222,***@h2:4222`: \
             connecting to nats://***@h2:4222 failed: server said: bad password ***"
        );
        // Nothing to hide: the backend's error is kept as it is.
        let plain = ChannelError::open("nats://h:4222", Box::new(std::io::Error::other("refused")));
        let ChannelError::Open { source, .. } = plain else {
            panic!("an open error");
        };
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }

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
