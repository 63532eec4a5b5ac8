//! `weft controller`: reconciles Brokers of Weft's class and the Triggers bound to them.
//!
//! For a Broker it creates the channel's log (topic, stream or table), resolves the
//! dead-letter sink, and writes `Addressable`, `TriggerChannelReady`,
//! `DeadLetterSinkResolved` and `Ready` with `address.url`
//! (`<ingress-url>/<namespace>/<name>`). For a Trigger it checks the Broker
//! (`BrokerReady`, or `BrokerDoesNotExist` until it appears), resolves the subscriber and
//! dead-letter sink (`SubscriberResolved`, `DeadLetterSinkResolved`, `subscriberUri`),
//! validates filters and creates the trigger's cursor at the end of the log
//! (`SubscriptionReady`: from then on, what is sent waits for the dispatchers), and sums
//! them up in `Ready`.
//!
//! Storage is deleted through finalizers: a Broker's log when the Broker is deleted, a
//! Trigger's cursor when the Trigger is; storage that still holds undelivered events waits
//! for a grace period or a purge first ([`super::retain`]). The data-plane replicas never delete anything.
//! Every object's status carries `observedGeneration`, and is written only when it changed.
//!
//! Only the replica holding the `weft-controller` Lease reconciles; one that loses the lease
//! (say, the API server was unreachable for longer than the lease lasts) stops reconciling at
//! once and stands for election again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use weft_channels::Channel;
use weft_config::ObjectKey;
use weft_config::crd::{
    self, Addressable, BrokerResource, BrokerStatus, Condition, READY, TriggerResource,
    TriggerStatus, find_condition, set_condition,
};
use weft_config::manifest::{DeliverySpec, Destination};

use super::leader::{Candidate, LeaseTiming};
use super::resolve::resolve;
use super::retain;
use super::{BrokerClass, uri_destination};
use crate::ControllerError;
use crate::reconcile::describe;
use crate::serve::{bind, open_channel, stop_signal, stopped};

/// The finalizer that holds a deleted object until its storage is gone.
pub const FINALIZER: &str = "eventing.weft.dev/storage";
/// The Lease the controller replicas compete for.
pub const LEASE_NAME: &str = "weft-controller";

/// How soon a healthy object is looked at again, to follow refs that changed.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon an object waiting for something (an unresolved ref, a missing broker) is
/// looked at again.
const WAITING: Duration = Duration::from_secs(10);
/// How long a controller that shuts down tries to give its lease up.
const RELEASE: Duration = Duration::from_secs(5);

/// What `weft controller` needs to run.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The channel URL the data plane uses.
    pub channel: String,
    /// The ingress Service's URL; a Broker's address is `<ingress_url>/<namespace>/<name>`.
    pub ingress_url: String,
    /// Watch only this namespace (every namespace when `None`).
    pub namespace: Option<String>,
    /// Which Brokers are Weft's.
    pub class: BrokerClass,
    /// The namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// The lease's timing.
    pub lease: LeaseTiming,
    /// Where `/healthz` and `/readyz` are served.
    pub addr: String,
    /// How long a deleted Broker or Trigger keeps its log or cursor (and its finalizer)
    /// while that still holds undelivered events.
    pub retention: Duration,
}

struct Context {
    client: Client,
    channel: Arc<dyn Channel>,
    options: ControllerOptions,
}

/// Runs the controller until `shutdown` completes, or fails when the lease is lost.
pub async fn run_controller(
    options: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    super::shared_channel(&options.channel)?;
    let client = Client::try_default()
        .await
        .map_err(|source| ControllerError::Kube {
            what: "cannot connect to the Kubernetes API".into(),
            source,
        })?;
    let listener = bind(&options.addr).await?;
    let health = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }));
    // Shutdown stops the health server and, once reconciling stopped, gives the lease up.
    let stopping = stop_signal(shutdown);
    let server = axum::serve(listener, health)
        .with_graceful_shutdown(stopped(stopping.clone()))
        .into_future();

    let leases: Api<Lease> = Api::namespaced(client.clone(), &options.lease_namespace);
    let candidate = Candidate::new(leases, LEASE_NAME, &options.identity, options.lease.clone());
    let work = async {
        // Wait for a channel server that is not up yet; the health server answers meanwhile.
        let channel = tokio::select! {
            channel = open_channel(&options.channel, true) => channel?,
            () = stopped(stopping.clone()) => None,
        };
        let Some(channel) = channel else {
            return Ok(()); // shut down before the channel opened
        };
        let context = Arc::new(Context {
            client: client.clone(),
            channel,
            options: options.clone(),
        });
        println!("weft controller standing by as {}", options.identity);
        loop {
            let mut leadership = tokio::select! {
                leadership = candidate.lead() => leadership,
                () = stopped(stopping.clone()) => return Ok(()),
            };
            println!("weft controller leading as {}", options.identity);
            tokio::select! {
                () = reconcile_all(context.clone()) => return Ok(()),
                () = leadership.lost() => {
                    // Stop reconciling at once; stand for election again.
                    tracing::warn!(identity = %options.identity, "lost the lease; standing by");
                }
                () = stopped(stopping.clone()) => {
                    // Bounded: an API server that is away leaves the lease to expire.
                    let _ = tokio::time::timeout(RELEASE, leadership.release()).await;
                    return Ok(());
                }
            }
        }
    };
    tokio::pin!(server, work);
    tokio::select! {
        served = &mut server => {
            served.map_err(|source| ControllerError::Io {
                what: "health server failed".into(),
                source,
            })?;
            work.await
        }
        worked = &mut work => worked,
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs the Broker and Trigger controllers side by side.
async fn reconcile_all(context: Arc<Context>) {
    let namespace = context.options.namespace.as_deref();
    let brokers: Api<BrokerResource> = scoped(&context.client, namespace);
    let triggers: Api<TriggerResource> = scoped(&context.client, namespace);

    let broker_controller = Controller::new(brokers.clone(), watcher::Config::default())
        .run(reconcile_broker, retry_later, context.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "broker reconcile failed");
            }
        });

    // A Broker's change (created, ready, deleted) is news to the Triggers bound to it.
    let trigger_controller = Controller::new(triggers, watcher::Config::default());
    let bound = trigger_controller.store();
    let trigger_controller = trigger_controller
        .watches(
            brokers,
            watcher::Config::default(),
            move |broker: BrokerResource| {
                let namespace = broker.namespace();
                let name = broker.name_any();
                bound
                    .state()
                    .iter()
                    .filter(|t| t.namespace() == namespace && t.spec.broker == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile_trigger, retry_later, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "trigger reconcile failed");
            }
        });
    tokio::join!(broker_controller, trigger_controller);
}

type ReconcileError = finalizer::Error<ControllerError>;

fn retry_later<K>(_object: Arc<K>, error: &ReconcileError, _context: Arc<Context>) -> Action {
    tracing::warn!(%error, "will retry");
    Action::requeue(Duration::from_secs(5))
}

fn key_of(object: &impl Resource) -> ObjectKey {
    let meta = object.meta();
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn has_finalizer(object: &impl Resource) -> bool {
    object
        .meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

async fn reconcile_broker(
    broker: Arc<BrokerResource>,
    context: Arc<Context>,
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
            let mut status = broker.status.clone().unwrap_or_default();
            if !find_condition(&status.conditions, READY).is_some_and(|c| c.same_as(&held.ready)) {
                set_condition(&mut status.conditions, held.ready, Utc::now());
                write_status(&api, &key, "Broker", &status)
                    .await
                    .map_err(finalizer::Error::CleanupFailed)?;
            }
            return Ok(Action::requeue(held.wait));
        }
    }
    finalizer::finalizer(&api, FINALIZER, broker, |event| async {
        match event {
            Finalizer::Apply(broker) => apply_broker(&broker, &context).await,
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

async fn apply_broker(
    broker: &BrokerResource,
    context: &Context,
) -> Result<Action, ControllerError> {
    if !context.options.class.serves(broker) {
        // Its class changed: the finalizer stays so the log goes when the broker does.
        return Ok(Action::await_change());
    }
    let key = key_of(broker);
    let now = Utc::now();
    let old = broker.status.clone().unwrap_or_default();
    let mut status = BrokerStatus {
        observed_generation: broker.metadata.generation,
        conditions: old.conditions.clone(),
        ..BrokerStatus::default()
    };
    let mut waiting = false;

    // The dead-letter sink, resolved for the data plane.
    let mut resolved = broker.clone();
    let sink = broker
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref());
    let sink_condition = match sink {
        None => sink_not_configured(),
        Some(sink) => {
            let delivery = resolved.spec.delivery.as_mut();
            let found = resolve_sink(context, &key.namespace, sink, delivery).await;
            status.dead_letter_sink_uri = found.uri;
            waiting |= !found.condition.is_true();
            found.condition
        }
    };
    set_condition(&mut status.conditions, sink_condition, now);

    let valid = match crd::load_broker_resource(&resolved).config {
        Ok(_) => Condition::true_("Valid"),
        Err(problems) => Condition::false_("Valid", "InvalidBroker", describe(&problems)),
    };
    let channel = if valid.is_true() {
        match context.channel.ensure_log(&key).await {
            Ok(()) => Condition::true_("TriggerChannelReady"),
            Err(e) => {
                waiting = true;
                Condition::false_(
                    "TriggerChannelReady",
                    "ChannelFailed",
                    format!("cannot create the log: {e}"),
                )
            }
        }
    } else {
        Condition::unknown(
            "TriggerChannelReady",
            "InvalidBroker",
            "the broker is not valid",
        )
    };
    set_condition(&mut status.conditions, valid, now);
    set_condition(&mut status.conditions, channel, now);

    let url = format!(
        "{}/{}/{}",
        context.options.ingress_url.trim_end_matches('/'),
        key.namespace,
        key.name
    );
    let address = Addressable {
        name: Some("http".into()),
        url: Some(url),
        ..Addressable::default()
    };
    status.address = Some(address.clone());
    status.addresses = vec![address];
    set_condition(&mut status.conditions, Condition::true_("Addressable"), now);
    let ready = summary(&status.conditions);
    set_condition(&mut status.conditions, ready, now);

    if status != old {
        let api: Api<BrokerResource> = Api::namespaced(context.client.clone(), &key.namespace);
        write_status(&api, &key, "Broker", &status).await?;
    }
    Ok(Action::requeue(if waiting { WAITING } else { RESYNC }))
}

async fn reconcile_trigger(
    trigger: Arc<TriggerResource>,
    context: Arc<Context>,
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
            broker_missing(&trigger, &context)
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
            let mut status = trigger.status.clone().unwrap_or_default();
            if !find_condition(&status.conditions, READY).is_some_and(|c| c.same_as(&held.ready)) {
                set_condition(&mut status.conditions, held.ready, Utc::now());
                write_status(&api, &key, "Trigger", &status)
                    .await
                    .map_err(finalizer::Error::CleanupFailed)?;
            }
            return Ok(Action::requeue(held.wait));
        }
    }
    finalizer::finalizer(&api, FINALIZER, trigger, |event| async {
        match event {
            Finalizer::Apply(trigger) => match &broker {
                Some(broker) => apply_trigger(&trigger, broker, &context).await,
                None => broker_missing(&trigger, &context).await,
            },
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

/// The status of a Trigger whose Broker does not exist (or is not Weft's any more).
async fn broker_missing(
    trigger: &TriggerResource,
    context: &Context,
) -> Result<Action, ControllerError> {
    let key = key_of(trigger);
    let now = Utc::now();
    let old = trigger.status.clone().unwrap_or_default();
    let mut status = TriggerStatus {
        observed_generation: trigger.metadata.generation,
        conditions: old.conditions.clone(),
        ..TriggerStatus::default()
    };
    let message = format!("Broker \"{}\" does not exist", trigger.spec.broker);
    set_condition(
        &mut status.conditions,
        Condition::false_("BrokerReady", "BrokerDoesNotExist", message.clone()),
        now,
    );
    set_condition(
        &mut status.conditions,
        Condition::false_(READY, "BrokerDoesNotExist", message),
        now,
    );
    if status != old {
        let api: Api<TriggerResource> = Api::namespaced(context.client.clone(), &key.namespace);
        write_status(&api, &key, "Trigger", &status).await?;
    }
    Ok(Action::requeue(RESYNC))
}

async fn apply_trigger(
    trigger: &TriggerResource,
    broker: &BrokerResource,
    context: &Context,
) -> Result<Action, ControllerError> {
    let key = key_of(trigger);
    let now = Utc::now();
    let old = trigger.status.clone().unwrap_or_default();
    let mut status = TriggerStatus {
        observed_generation: trigger.metadata.generation,
        conditions: old.conditions.clone(),
        ..TriggerStatus::default()
    };
    let mut waiting = false;

    let broker_status = broker.status.clone().unwrap_or_default();
    let broker_ready = match find_condition(&broker_status.conditions, READY) {
        Some(ready) if ready.is_true() => Condition::true_("BrokerReady"),
        Some(ready) => Condition::false_(
            "BrokerReady",
            "BrokerNotReady",
            ready
                .message
                .clone()
                .unwrap_or_else(|| "the broker is not ready".into()),
        ),
        None => {
            waiting = true;
            Condition::unknown(
                "BrokerReady",
                "BrokerUnknown",
                "the broker has no status yet",
            )
        }
    };
    set_condition(&mut status.conditions, broker_ready, now);

    let mut resolved = trigger.clone();
    let subscriber = match resolve(&context.client, &key.namespace, &trigger.spec.subscriber).await
    {
        Ok(uri) => {
            status.subscriber_uri = Some(uri.clone());
            resolved.spec.subscriber = uri_destination(uri);
            Condition::true_("SubscriberResolved")
        }
        Err(e) => {
            waiting = true;
            Condition::false_(
                "SubscriberResolved",
                "SubscriberResolveFailed",
                e.to_string(),
            )
        }
    };
    set_condition(&mut status.conditions, subscriber, now);

    // The trigger's own dead-letter sink, else its broker's.
    let own_sink = trigger
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref());
    let sink = match own_sink {
        Some(sink) => {
            let delivery = resolved.spec.delivery.as_mut();
            let found = resolve_sink(context, &key.namespace, sink, delivery).await;
            status.dead_letter_sink_uri = found.uri;
            waiting |= !found.condition.is_true();
            found.condition
        }
        None => match &broker_status.dead_letter_sink_uri {
            Some(uri) => {
                status.dead_letter_sink_uri = Some(uri.clone());
                Condition::true_("DeadLetterSinkResolved")
            }
            None => sink_not_configured(),
        },
    };
    set_condition(&mut status.conditions, sink, now);

    let subscription = if status.subscriber_uri.is_none() {
        Condition::unknown(
            "SubscriptionReady",
            "SubscriberResolveFailed",
            "waiting for the subscriber's URL",
        )
    } else {
        // The checks `weft up` makes: the manifest's rules, the filters compiled with them.
        match crd::load_trigger_resource(&resolved).config {
            // A cursor at the end of the log before the trigger says ready: what is
            // sent from then on waits for the dispatchers, however late they start.
            Ok(_) if broker_ready_now(&status) => {
                let broker = ObjectKey::new(key.namespace.clone(), trigger.spec.broker.clone());
                match context.channel.ensure_subscription(&broker, &key).await {
                    Ok(()) => Condition::true_("SubscriptionReady"),
                    Err(e) => {
                        waiting = true;
                        Condition::false_(
                            "SubscriptionReady",
                            "ChannelUnavailable",
                            format!("cannot create the trigger's cursor: {e}"),
                        )
                    }
                }
            }
            Ok(_) => Condition::unknown(
                "SubscriptionReady",
                "BrokerNotReady",
                "waiting for the broker's log",
            ),
            Err(problems) => {
                Condition::false_("SubscriptionReady", "InvalidTrigger", describe(&problems))
            }
        }
    };
    set_condition(&mut status.conditions, subscription, now);
    let ready = summary(&status.conditions);
    set_condition(&mut status.conditions, ready, now);

    if status != old {
        let api: Api<TriggerResource> = Api::namespaced(context.client.clone(), &key.namespace);
        write_status(&api, &key, "Trigger", &status).await?;
    }
    Ok(Action::requeue(if waiting { WAITING } else { RESYNC }))
}

/// Whether the trigger's `BrokerReady` condition is true, so the broker's log exists.
fn broker_ready_now(status: &TriggerStatus) -> bool {
    find_condition(&status.conditions, "BrokerReady").is_some_and(|c| c.is_true())
}

/// A dead-letter sink resolved for the data plane: its URL (for the status) and the
/// `DeadLetterSinkResolved` condition.
struct ResolvedSink {
    uri: Option<String>,
    condition: Condition,
}

/// Resolves `sink` and puts the result into `delivery`, the copy the data plane validates:
/// the URL in place of a `ref`, or no dead-letter sink while it cannot be resolved.
async fn resolve_sink(
    context: &Context,
    namespace: &str,
    sink: &Destination,
    delivery: Option<&mut DeliverySpec>,
) -> ResolvedSink {
    match resolve(&context.client, namespace, sink).await {
        Ok(uri) => {
            if let Some(delivery) = delivery {
                delivery.dead_letter_sink = Some(uri_destination(uri.clone()));
            }
            ResolvedSink {
                uri: Some(uri),
                condition: Condition::true_("DeadLetterSinkResolved"),
            }
        }
        Err(e) => {
            if let Some(delivery) = delivery {
                delivery.dead_letter_sink = None;
            }
            ResolvedSink {
                uri: None,
                condition: Condition::false_(
                    "DeadLetterSinkResolved",
                    "DeadLetterSinkResolveFailed",
                    e.to_string(),
                ),
            }
        }
    }
}

/// `DeadLetterSinkResolved` when no dead-letter sink is configured, as Knative writes it.
fn sink_not_configured() -> Condition {
    Condition::true_("DeadLetterSinkResolved").because(
        "DeadLetterSinkNotConfigured",
        "no dead-letter sink is configured",
    )
}

/// `Ready`: true when every other condition is; else the first that is not, by its reason.
fn summary(conditions: &[Condition]) -> Condition {
    let blocking = conditions
        .iter()
        .filter(|c| c.type_ != READY && !c.is_true())
        .min_by_key(|c| c.status != crd::ConditionStatus::False);
    match blocking {
        None => Condition::true_(READY),
        Some(c) => Condition {
            type_: READY.to_string(),
            last_transition_time: None,
            ..c.clone()
        },
    }
}

/// Writes `status` with a JSON merge patch; a field the new status lacks is removed.
async fn write_status<K, S>(
    api: &Api<K>,
    key: &ObjectKey,
    kind: &str,
    status: &S,
) -> Result<(), ControllerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        for cleared in ["address", "addresses", "subscriberUri", "deadLetterSinkUri"] {
            fields.entry(cleared).or_insert(Value::Null);
        }
    }
    api.patch_status(
        &key.name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": value })),
    )
    .await
    .map_err(|source| ControllerError::Kube {
        what: format!("cannot write the status of {kind} {key}"),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use weft_config::crd::{Condition, ConditionStatus, READY};

    use super::summary;

    #[test]
    fn ready_is_true_only_when_every_condition_is_and_else_takes_a_false_ones_reason() {
        let all = [
            Condition::true_("BrokerReady"),
            Condition::true_("SubscriberResolved"),
        ];
        assert!(summary(&all).is_true());

        let waiting = [
            Condition::unknown("BrokerReady", "BrokerUnknown", "no status yet"),
            Condition::false_("SubscriberResolved", "SubscriberResolveFailed", "gone"),
            Condition::true_("DeadLetterSinkResolved"),
        ];
        let ready = summary(&waiting);
        assert_eq!(ready.type_, READY);
        assert_eq!(
            ready.status,
            ConditionStatus::False,
            "False wins over Unknown"
        );
        assert_eq!(ready.reason.as_deref(), Some("SubscriberResolveFailed"));
        assert_eq!(ready.message.as_deref(), Some("gone"));

        let unknown = [Condition::unknown(
            "BrokerReady",
            "BrokerUnknown",
            "no status yet",
        )];
        assert_eq!(summary(&unknown).status, ConditionStatus::Unknown);
    }
}
