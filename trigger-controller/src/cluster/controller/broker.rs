//! Reconciling a Broker: gather (resolve its dead-letter sink, validate, create its log),
//! decide ([`readiness::broker`] and [`broker_status`]), write.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::{Resource, ResourceExt};
use weft_config::crd::{self, Addressable, BrokerResource, BrokerStatus};

use super::context::{
    Context, FINALIZER, RESYNC, ReconcileError, WAITING, has_finalizer, key_of, measured,
};
use super::write;
use crate::ControllerError;
use crate::cluster::retain;
use crate::readiness::{self, BrokerFacts, Fallback, Readiness, Storage};
use crate::reconcile::describe;

use super::sink::{Sink, resolve_sink};

/// Reconciles one Broker, its finalizer included.
pub(super) async fn reconcile(
    broker: Arc<BrokerResource>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let object = broker.clone();
    measured(
        "Broker",
        object.as_ref(),
        reconcile_inner(broker, &context),
        &context,
    )
    .await
}

async fn reconcile_inner(
    broker: Arc<BrokerResource>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    if !context.options.class.serves(broker.as_ref()) && !has_finalizer(broker.as_ref()) {
        let broker = key_of(broker.as_ref());
        tracing::info!(%broker, "broker of another class; left alone");
        return Ok(Action::await_change());
    }
    let api: Api<BrokerResource> = Api::namespaced(
        context.client.clone(),
        &broker.namespace().unwrap_or_default(),
    );
    // A deleted broker whose log holds events keeps its finalizer a while: returning from
    // the finalizer's cleanup would remove it.
    if broker.meta().deletion_timestamp.is_some() && has_finalizer(broker.as_ref()) {
        let key = key_of(broker.as_ref());
        let backlog = retain::backlog(context.channel.as_ref(), &key, None).await;
        if let Some(held) = retain::hold(
            broker.as_ref(),
            "its log",
            backlog,
            context.options.retention,
        ) {
            let old = broker.status.clone().unwrap_or_default();
            let mut new = old.clone();
            held.readiness.write_into(&mut new.conditions, Utc::now());
            write::status(context, "Broker", broker.as_ref(), &old, &new)
                .await
                .map_err(finalizer::Error::CleanupFailed)?;
            return Ok(Action::requeue(held.wait));
        }
    }
    finalizer::finalizer(&api, FINALIZER, broker, |event| async {
        match event {
            Finalizer::Apply(broker) => apply(&broker, context).await,
            Finalizer::Cleanup(broker) => {
                let key = key_of(broker.as_ref());
                context.channel.delete_log(&key).await.map_err(|source| {
                    ControllerError::Storage {
                        what: format!("delete the log of broker {key}"),
                        source,
                    }
                })?;
                tracing::info!(broker = %key, "broker deleted with its log");
                Ok(Action::await_change())
            }
        }
    })
    .await
}

/// What the controller found about a Broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// The validation's verdict, its problems in one line.
    pub spec: Result<(), String>,
    /// Its dead-letter sink.
    pub sink: Sink,
    /// Its log: `Ok(false)` when not tried (the spec is invalid).
    pub log: Result<bool, String>,
}

impl Found {
    /// The facts [`readiness::broker`] decides on.
    pub fn facts(&self) -> BrokerFacts<'_> {
        BrokerFacts {
            spec: self.spec.as_ref().map(|_| ()).map_err(String::as_str),
            dead_letter_sink: self.sink.resolution(),
            log: match &self.log {
                Ok(true) => Storage::Ready,
                Ok(false) => Storage::NotTried,
                Err(why) => Storage::Failed(why),
            },
            // The data plane's replicas, not the controller, know what still runs.
            fallback: Fallback::NotKnown,
        }
    }
}

async fn apply(broker: &BrokerResource, context: &Context) -> Result<Action, ControllerError> {
    if !context.options.class.serves(broker) {
        // Its class changed: the finalizer stays so the log goes when the broker does.
        return Ok(Action::await_change());
    }
    let found = gather(broker, context).await;
    let readiness = readiness::broker(&found.facts());
    let old = broker.status.clone().unwrap_or_default();
    let new = broker_status(
        &old,
        broker,
        &found,
        &readiness,
        &context.options.ingress_url,
        Utc::now(),
    );
    write::status(context, "Broker", broker, &old, &new).await?;
    Ok(Action::requeue(if readiness.waiting() {
        WAITING
    } else {
        RESYNC
    }))
}

/// The gather step: API and channel calls.
async fn gather(broker: &BrokerResource, context: &Context) -> Found {
    let key = key_of(broker);
    // The dead-letter sink, resolved into the copy that is validated.
    let mut resolved = broker.clone();
    let sink = match broker
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
    {
        None => Sink::NotConfigured,
        Some(sink) => {
            let delivery = resolved.spec.delivery.as_mut();
            resolve_sink(&context.client, &key.namespace, sink, delivery).await
        }
    };
    let spec = crd::load_broker_resource(&resolved)
        .config
        .map(|_| ())
        .map_err(|problems| describe(&problems));
    let log = match spec {
        Ok(()) => match context.channel.ensure_log(&key).await {
            Ok(()) => Ok(true),
            Err(e) => Err(format!("cannot create the log: {e}")),
        },
        Err(_) => Ok(false),
    };
    Found { spec, sink, log }
}

/// The decide step's status: `old` with `readiness`'s conditions, the address and the
/// dead-letter sink's URL, for generation `broker.metadata.generation`.
pub(super) fn broker_status(
    old: &BrokerStatus,
    broker: &BrokerResource,
    found: &Found,
    readiness: &Readiness,
    ingress_url: &str,
    now: DateTime<Utc>,
) -> BrokerStatus {
    let key = key_of(broker);
    let url = format!(
        "{}/{}/{}",
        ingress_url.trim_end_matches('/'),
        key.namespace,
        key.name
    );
    let address = Addressable {
        name: Some("http".into()),
        url: Some(url),
        ..Addressable::default()
    };
    let mut status = BrokerStatus {
        observed_generation: broker.metadata.generation,
        conditions: old.conditions.clone(),
        address: Some(address.clone()),
        addresses: vec![address],
        dead_letter_sink_uri: found.sink.uri(),
        ..BrokerStatus::default()
    };
    readiness.write_into(&mut status.conditions, now);
    status
}

#[cfg(test)]
mod tests {
    use weft_config::crd::{READY, find_condition};

    use super::*;

    fn broker(json: serde_json::Value) -> BrokerResource {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_broker_status_carries_its_address_sink_and_conditions() {
        let b = broker(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "orders", "namespace": "shop", "generation": 3},
            "spec": {}
        }));
        let found = Found {
            spec: Ok(()),
            sink: Sink::Resolved("http://dls.shop.svc.cluster.local".into()),
            log: Err("cannot create the log: refused".into()),
        };
        let readiness = readiness::broker(&found.facts());
        let status = broker_status(
            &BrokerStatus::default(),
            &b,
            &found,
            &readiness,
            "http://weft-ingress.weft-system.svc.cluster.local/",
            Utc::now(),
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            status.address.unwrap().url.as_deref(),
            Some("http://weft-ingress.weft-system.svc.cluster.local/shop/orders")
        );
        assert_eq!(
            status.dead_letter_sink_uri.as_deref(),
            Some("http://dls.shop.svc.cluster.local")
        );
        let ready = find_condition(&status.conditions, READY).unwrap();
        assert_eq!(ready.reason.as_deref(), Some("ChannelUnavailable"));
        assert!(
            find_condition(&status.conditions, "Addressable")
                .unwrap()
                .is_true()
        );
    }
}
