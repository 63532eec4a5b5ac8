//! A dead-letter sink as the gather step finds it, and its resolution into the copy of the
//! spec that is validated.

use kube::Client;
use weft_config::manifest::{DeliverySpec, Destination};

use crate::cluster::resolve::resolve;
use crate::cluster::uri_destination;
use crate::readiness::Resolution;

/// A dead-letter sink: none, its URL, or why it did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Sink {
    /// None is configured.
    NotConfigured,
    /// Resolved to this URL.
    Resolved(String),
    /// Did not resolve, for this reason.
    Failed(String),
}

impl Sink {
    /// As a fact for [`crate::readiness`].
    pub(super) fn resolution(&self) -> Resolution<'_> {
        match self {
            Sink::NotConfigured => Resolution::NotConfigured,
            Sink::Resolved(_) => Resolution::Resolved,
            Sink::Failed(why) => Resolution::Failed(why),
        }
    }

    /// The URL for `status.deadLetterSinkUri`.
    pub(super) fn uri(&self) -> Option<String> {
        match self {
            Sink::Resolved(uri) => Some(uri.clone()),
            Sink::NotConfigured | Sink::Failed(_) => None,
        }
    }
}

/// Resolves `sink` and puts the result into `delivery`, the copy that is validated: the URL
/// in place of a `ref`, or no dead-letter sink while it cannot be resolved.
pub(super) async fn resolve_sink(
    client: &Client,
    namespace: &str,
    sink: &Destination,
    delivery: Option<&mut DeliverySpec>,
) -> Sink {
    match resolve(client, namespace, sink).await {
        Ok(uri) => {
            if let Some(delivery) = delivery {
                delivery.dead_letter_sink = Some(uri_destination(uri.clone()));
            }
            Sink::Resolved(uri)
        }
        Err(e) => {
            if let Some(delivery) = delivery {
                delivery.dead_letter_sink = None;
            }
            Sink::Failed(e.to_string())
        }
    }
}
