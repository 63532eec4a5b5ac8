//! Reconciling a Trigger: gather (its Broker's state, its subscriber and dead-letter sink
//! resolved, its spec validated, its cursor created), decide ([`readiness::trigger`] and
//! [`trigger_status`]), write.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use weft_config::ObjectKey;
use weft_config::crd::{
    self, BrokerResource, READY, TriggerResource, TriggerStatus, find_condition,
};

use super::context::{
    Context, FINALIZER, RESYNC, ReconcileError, WAITING, has_finalizer, key_of, measured,
};
use super::sink::{Sink, resolve_sink};
use super::write;
use crate::ControllerError;
use crate::cluster::resolve::resolve;
use crate::cluster::{retain, uri_destination};
use crate::readiness::{self, BrokerState, Fallback, Readiness, Resolution, Storage, TriggerFacts};
use crate::reconcile::describe;

/// Reconciles one Trigger, its finalizer included.
pub(super) async fn reconcile(
    trigger: Arc<TriggerResource>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let object = trigger.clone();
    measured(
        "Trigger",
        object.as_ref(),
        reconcile_inner(trigger, &context),
        &context,
    )
    .await
}

async fn reconcile_inner(
    trigger: Arc<TriggerResource>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let key = key_of(trigger.as_ref());
    let brokers: Api<BrokerResource> = Api::namespaced(context.client.clone(), &key.namespace);
    let broker = brokers
        .get_opt(&trigger.spec.broker)
        .await
        .map_err(|source| {
            finalizer::Error::ApplyFailed(ControllerError::Kube {
                what: format!("cannot read the broker of trigger {key}"),
                source,
            })
        })?;
    let ours = broker
        .as_ref()
        .is_some_and(|b| context.options.class.serves(b));
    if !ours && !has_finalizer(trigger.as_ref()) {
        if broker.is_none() && trigger.meta().deletion_timestamp.is_none() {
            // Which class will serve it is not known yet; say why it waits, as Knative does.
            apply(&trigger, None, context)
                .await
                .map_err(finalizer::Error::ApplyFailed)?;
        } else if broker.is_some() {
            tracing::info!(trigger = %key, "trigger on a broker of another class; left alone");
        }
        return Ok(Action::await_change());
    }
    let api: Api<TriggerResource> = Api::namespaced(context.client.clone(), &key.namespace);
    let broker = broker.filter(|_| ours);
    // A deleted trigger whose cursor holds events keeps its finalizer a while.
    if trigger.meta().deletion_timestamp.is_some() && has_finalizer(trigger.as_ref()) {
        let log = ObjectKey::new(key.namespace.clone(), trigger.spec.broker.clone());
        let backlog = retain::backlog(context.channel.as_ref(), &log, Some(&key)).await;
        if let Some(held) = retain::hold(
            trigger.as_ref(),
            "its cursor",
            backlog,
            context.options.retention,
        ) {
            let old = trigger.status.clone().unwrap_or_default();
            let mut new = old.clone();
            held.readiness.write_into(&mut new.conditions, Utc::now());
            write::status(context, "Trigger", trigger.as_ref(), &old, &new)
                .await
                .map_err(finalizer::Error::CleanupFailed)?;
            return Ok(Action::requeue(held.wait));
        }
    }
    finalizer::finalizer(&api, FINALIZER, trigger, |event| async {
        match event {
            Finalizer::Apply(trigger) => apply(&trigger, broker.as_ref(), context).await,
            Finalizer::Cleanup(trigger) => {
                let key = key_of(trigger.as_ref());
                let broker = ObjectKey::new(key.namespace.clone(), trigger.spec.broker.clone());
                context
                    .channel
                    .delete_subscription(&broker, &key)
                    .await
                    .map_err(|source| ControllerError::Storage {
                        what: format!("delete the cursor of trigger {key}"),
                        source,
                    })?;
                tracing::info!(trigger = %key, "trigger deleted with its cursor");
                Ok(Action::await_change())
            }
        }
    })
    .await
}

/// A Trigger's Broker as its status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum BrokerSeen {
    /// Ready, with its dead-letter sink's URL (the trigger's default).
    Ready(Option<String>),
    /// Not ready, for this reason.
    NotReady(String),
    /// No status yet.
    Unknown,
    /// Does not exist (or is not Weft's): its name.
    Missing(String),
}

/// What the controller found about a Trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// The validation's verdict (once the subscriber resolved), its problems in one line.
    pub spec: Result<(), String>,
    /// Its Broker.
    pub broker: BrokerSeen,
    /// Its subscriber's URL, or why it did not resolve.
    pub subscriber: Result<String, String>,
    /// Its own dead-letter sink, else its Broker's.
    pub sink: Sink,
    /// Its cursor: `Ok(false)` when not tried (something it needs is missing).
    pub subscription: Result<bool, String>,
}

impl Found {
    /// The facts [`readiness::trigger`] decides on.
    pub fn facts(&self) -> TriggerFacts<'_> {
        TriggerFacts {
            spec: self.spec.as_ref().map(|_| ()).map_err(String::as_str),
            broker: match &self.broker {
                BrokerSeen::Ready(_) => BrokerState::Ready,
                BrokerSeen::NotReady(why) => BrokerState::NotReady(why),
                BrokerSeen::Unknown => BrokerState::Unknown,
                BrokerSeen::Missing(name) => BrokerState::Missing(name),
            },
            subscriber: match &self.subscriber {
                Ok(_) => Resolution::Resolved,
                Err(why) => Resolution::Failed(why),
            },
            dead_letter_sink: self.sink.resolution(),
            subscription: match &self.subscription {
                Ok(true) => Storage::Ready,
                Ok(false) => Storage::NotTried,
                Err(why) => Storage::Failed(why),
            },
            // The dispatchers, not the controller, know what still runs.
            fallback: Fallback::NotKnown,
        }
    }
}

/// Gathers, decides and writes a Trigger's status; `broker` is `None` when it does not
/// exist (or is not Weft's).
async fn apply(
    trigger: &TriggerResource,
    broker: Option<&BrokerResource>,
    context: &Context,
) -> Result<Action, ControllerError> {
    let found = gather(trigger, broker, context).await;
    let readiness = readiness::trigger(&found.facts());
    let old = trigger.status.clone().unwrap_or_default();
    let new = trigger_status(&old, trigger, &found, &readiness, Utc::now());
    write::status(context, "Trigger", trigger, &old, &new).await?;
    Ok(Action::requeue(if readiness.waiting() {
        WAITING
    } else {
        RESYNC
    }))
}

/// The gather step: API and channel calls.
async fn gather(
    trigger: &TriggerResource,
    broker: Option<&BrokerResource>,
    context: &Context,
) -> Found {
    let key = key_of(trigger);
    let broker = match broker {
        None => BrokerSeen::Missing(trigger.spec.broker.clone()),
        Some(broker) => {
            let status = broker.status.clone().unwrap_or_default();
            match find_condition(&status.conditions, READY) {
                Some(ready) if ready.is_true() => BrokerSeen::Ready(status.dead_letter_sink_uri),
                Some(ready) => BrokerSeen::NotReady(
                    ready
                        .message
                        .clone()
                        .unwrap_or_else(|| "the broker is not ready".into()),
                ),
                None => BrokerSeen::Unknown,
            }
        }
    };

    // Refs resolved into the copy that is validated.
    let mut resolved = trigger.clone();
    let subscriber = match resolve(&context.client, &key.namespace, &trigger.spec.subscriber).await
    {
        Ok(uri) => {
            resolved.spec.subscriber = uri_destination(uri.clone());
            Ok(uri)
        }
        Err(e) => Err(e.to_string()),
    };
    let own_sink = trigger
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref());
    let sink = match (own_sink, &broker) {
        (Some(sink), _) => {
            let delivery = resolved.spec.delivery.as_mut();
            resolve_sink(&context.client, &key.namespace, sink, delivery).await
        }
        (None, BrokerSeen::Ready(Some(uri))) => Sink::Resolved(uri.clone()),
        (None, _) => Sink::NotConfigured,
    };

    // The checks `weft up` makes, filters compiled, once the subscriber has a URL.
    let spec = match &subscriber {
        Ok(_) => crd::load_trigger_resource(&resolved)
            .config
            .map(|_| ())
            .map_err(|problems| describe(&problems)),
        Err(_) => Ok(()),
    };
    // A cursor at the end of the log before the trigger says ready: what is sent from then
    // on waits for the dispatchers, however late they start.
    let subscription = match (&spec, &subscriber, &broker) {
        (Ok(()), Ok(_), BrokerSeen::Ready(_)) => {
            let log = ObjectKey::new(key.namespace.clone(), trigger.spec.broker.clone());
            match context.channel.ensure_subscription(&log, &key).await {
                Ok(()) => Ok(true),
                Err(e) => Err(format!("cannot create the trigger's cursor: {e}")),
            }
        }
        _ => Ok(false),
    };
    Found {
        spec,
        broker,
        subscriber,
        sink,
        subscription,
    }
}

/// The decide step's status: `old` with `readiness`'s conditions and the resolved URLs,
/// for generation `trigger.metadata.generation`.
pub(super) fn trigger_status(
    old: &TriggerStatus,
    trigger: &TriggerResource,
    found: &Found,
    readiness: &Readiness,
    now: DateTime<Utc>,
) -> TriggerStatus {
    let mut status = TriggerStatus {
        observed_generation: trigger.metadata.generation,
        conditions: old.conditions.clone(),
        subscriber_uri: found.subscriber.as_ref().ok().cloned(),
        dead_letter_sink_uri: found.sink.uri(),
        ..TriggerStatus::default()
    };
    readiness.write_into(&mut status.conditions, now);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> TriggerResource {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "t", "namespace": "shop", "generation": 2},
            "spec": {"broker": "orders", "subscriber": {"uri": "http://web"}}
        }))
        .unwrap()
    }

    fn ready_of(status: &TriggerStatus) -> (String, Option<String>) {
        let ready = find_condition(&status.conditions, READY).unwrap();
        (format!("{:?}", ready.status), ready.reason.clone())
    }

    #[test]
    fn a_trigger_status_follows_what_was_found() {
        let ok = Found {
            spec: Ok(()),
            broker: BrokerSeen::Ready(Some("http://dls".into())),
            subscriber: Ok("http://web".into()),
            sink: Sink::Resolved("http://dls".into()),
            subscription: Ok(true),
        };
        let status = |found: &Found| {
            let readiness = readiness::trigger(&found.facts());
            trigger_status(
                &TriggerStatus::default(),
                &trigger(),
                found,
                &readiness,
                Utc::now(),
            )
        };
        let s = status(&ok);
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.subscriber_uri.as_deref(), Some("http://web"));
        assert_eq!(s.dead_letter_sink_uri.as_deref(), Some("http://dls"));
        assert_eq!(ready_of(&s), ("True".into(), None));

        let missing = Found {
            broker: BrokerSeen::Missing("orders".into()),
            sink: Sink::NotConfigured,
            subscription: Ok(false),
            ..ok.clone()
        };
        assert_eq!(
            ready_of(&status(&missing)),
            ("False".into(), Some("BrokerDoesNotExist".into()))
        );

        let unresolved = Found {
            subscriber: Err("Service shop/web does not exist".into()),
            subscription: Ok(false),
            ..ok.clone()
        };
        let s = status(&unresolved);
        assert_eq!(s.subscriber_uri, None);
        assert_eq!(
            ready_of(&s),
            ("False".into(), Some("SubscriberResolveFailed".into()))
        );

        let invalid = Found {
            spec: Err("spec.filters[0].cesql: unexpected end".into()),
            subscription: Ok(false),
            ..ok
        };
        assert_eq!(
            ready_of(&status(&invalid)),
            ("False".into(), Some("InvalidTrigger".into()))
        );
    }
}
