//! The data plane's error type for control-plane calls.

use weft_channels::ChannelError;
use weft_config::ObjectKey;

/// Why the data plane could not apply a broker or trigger.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The channel could not create, open or delete what the object needs.
    #[error("channel error for {object}: {source}")]
    Channel {
        /// The broker or trigger being applied.
        object: ObjectKey,
        /// What the channel reported.
        #[source]
        source: ChannelError,
    },
    /// A trigger refers to a broker the data plane does not run.
    #[error("broker {broker} does not exist")]
    BrokerDoesNotExist {
        /// The missing broker.
        broker: ObjectKey,
    },
}

impl BrokerError {
    /// A short, bounded reason suitable for a status condition (`BrokerDoesNotExist`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            BrokerError::Channel { .. } => "ChannelUnavailable",
            BrokerError::BrokerDoesNotExist { .. } => "BrokerDoesNotExist",
        }
    }
}
