//! The control plane's error type.

use std::path::PathBuf;

/// What can stop the control plane or its client commands.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The channel named by `--channel` could not be opened. The channel's error names
    /// the URL (without its password).
    #[error(transparent)]
    Channel(weft_channels::ChannelError),
    /// The manifest path cannot be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The manifest file or folder.
        path: PathBuf,
        /// What the file watcher reported.
        #[source]
        source: notify::Error,
    },
    /// A local file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "cannot listen on 127.0.0.1:8080".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request to a running instance or a broker failed.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// What the client reported.
        #[source]
        source: reqwest::Error,
    },
    /// A command-line value is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A request to the Kubernetes API failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done, e.g. "cannot write the status of Broker shop/orders".
        what: String,
        /// What the client reported.
        #[source]
        source: kube::Error,
    },
    /// Creating or deleting an object's storage in the channel failed.
    #[error("cannot {what}: {source}")]
    Storage {
        /// What was being done, e.g. "create the log of broker shop/orders".
        what: String,
        /// What the channel reported.
        #[source]
        source: weft_channels::ChannelError,
    },
}
