//! Weft on Kubernetes: Brokers and Triggers as custom resources of the API server.
//!
//! - [`controller`]: `weft controller`: creates and deletes each object's channel storage
//!   (finalizers), resolves destination refs and writes Knative's status: conditions,
//!   `address.url`, `subscriberUri`. One replica leads ([`leader`]); others wait.
//! - [`source`]: desired state for `weft ingress` and `weft dispatcher`, watched from the
//!   API server; behind the same [`crate::state::StateSource`] as the folder of `weft up`.
//! - [`resolve`]: a Knative `Destination` to a URL.
//!
//! Weft serves Brokers whose `eventing.knative.dev/broker.class` is `Weft` and the Triggers
//! bound to them, so it can run beside Knative's own brokers; [`BrokerClass`] can make it
//! serve Brokers that name no class as well.

pub mod controller;
pub mod leader;
pub mod resolve;
pub mod retain;
pub mod source;

use std::future::Future;

use kube::{Client, Resource};
use weft_broker::DataPlaneOptions;
use weft_config::manifest::Destination;
use weft_config::manifest::types::BROKER_CLASS_ANNOTATION;

pub use controller::{ControllerOptions, run_controller};
pub use leader::LeaseTiming;
pub use source::KubeSource;

use crate::ControllerError;
use crate::reconcile::Roles;
use crate::serve::{ServeOptions, serve};

/// The broker class Weft serves.
pub const WEFT_BROKER_CLASS: &str = "Weft";

/// Which Brokers are Weft's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerClass {
    /// Serve Brokers without a `broker.class` annotation too (as Knative's default class
    /// setting does), not only those of class `Weft`.
    pub default_class: bool,
}

impl BrokerClass {
    /// Whether `broker` is Weft's to serve.
    pub fn serves(&self, broker: &impl Resource) -> bool {
        match broker
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(BROKER_CLASS_ANNOTATION))
        {
            Some(class) if !class.is_empty() => class == WEFT_BROKER_CLASS,
            _ => self.default_class,
        }
    }
}

/// A client of the Kubernetes API from the kubeconfig or the pod's service account.
async fn connect() -> Result<Client, ControllerError> {
    Client::try_default()
        .await
        .map_err(|source| ControllerError::Kube {
            what: "cannot connect to the Kubernetes API".into(),
            source,
        })
}

/// A destination given by its URL alone.
fn uri_destination(uri: String) -> Destination {
    Destination {
        uri: Some(uri),
        ..Destination::default()
    }
}

/// What an ingress or dispatcher replica needs to run.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// The channel URL (the controller's).
    pub channel: String,
    /// The listen address: events (ingress), health and metrics.
    pub addr: String,
    /// Where the admin API is served (loopback by default; never exposed by a Service).
    pub admin_addr: String,
    /// Watch only this namespace (every namespace when `None`).
    pub namespace: Option<String>,
    /// Which Brokers are Weft's.
    pub class: BrokerClass,
    /// Data plane knobs.
    pub dataplane: DataPlaneOptions,
}

/// Runs an ingress ([`Roles::INGRESS`]) or dispatcher ([`Roles::DISPATCHER`]) replica with
/// desired state from the Kubernetes API, until `shutdown` completes.
pub async fn run_replica(
    roles: Roles,
    options: ReplicaOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    shared_channel(&options.channel)?;
    let client = connect().await?;
    let source = KubeSource::start(client, options.namespace.as_deref(), options.class);
    let serve_options = ServeOptions {
        addr: options.addr,
        admin_addr: options.admin_addr,
        channel: options.channel,
        roles,
        dataplane: options.dataplane,
        desired_state: match &options.namespace {
            Some(namespace) => format!("kubernetes (namespace {namespace})"),
            None => "kubernetes".into(),
        },
        wait_for_channel: true,
        // Replicas never delete storage; the controller's finalizers do.
        retention: crate::reconcile::DEFAULT_RETENTION,
    };
    serve(serve_options, source, shutdown).await
}

/// Fails unless `url` names a channel several processes can share: on Kubernetes every
/// replica must see the same logs, which an embedded SQLite file or memory cannot give.
fn shared_channel(url: &str) -> Result<(), ControllerError> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    match scheme {
        "postgres" | "postgresql" | "nats" | "kafka" => Ok(()),
        _ => Err(ControllerError::InvalidArgument {
            what: "--channel",
            reason: format!(
                "{scheme}:// is not shared between processes; on Kubernetes use kafka://, \
                 nats:// or postgres://"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use weft_config::crd::BrokerResource;
    use weft_config::manifest::BrokerSpec;

    use super::*;

    fn broker(class: Option<&str>) -> BrokerResource {
        let mut broker = BrokerResource::new("b", BrokerSpec::default());
        if let Some(class) = class {
            broker.metadata.annotations =
                Some([(BROKER_CLASS_ANNOTATION.to_string(), class.to_string())].into());
        }
        broker
    }

    #[test]
    fn weft_serves_its_class_and_classless_brokers_only_when_it_is_the_default() {
        let only_weft = BrokerClass::default();
        let default = BrokerClass {
            default_class: true,
        };
        assert!(only_weft.serves(&broker(Some("Weft"))));
        assert!(!only_weft.serves(&broker(None)));
        assert!(!only_weft.serves(&broker(Some(""))));
        assert!(default.serves(&broker(None)));
        assert!(default.serves(&broker(Some(""))));
        assert!(!default.serves(&broker(Some("MTChannelBasedBroker"))));
        assert!(
            !default.serves(&broker(Some("weft"))),
            "classes are case-sensitive"
        );
    }

    #[test]
    fn only_shared_channels_serve_several_replicas() {
        for url in ["kafka://k:9092", "nats://n:4222", "postgres://p/db"] {
            assert!(shared_channel(url).is_ok(), "{url}");
        }
        for url in ["sqlite:///tmp/w.db", "memory://"] {
            let error = shared_channel(url).unwrap_err().to_string();
            assert!(error.contains("not shared"), "{url}: {error}");
        }
    }
}
