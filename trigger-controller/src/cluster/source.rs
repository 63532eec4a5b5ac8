//! Desired state from the Kubernetes API for the data-plane replicas (`weft ingress`,
//! `weft dispatcher`): Brokers of Weft's class and the Triggers bound to them, watched (not
//! polled) through kube-runtime reflectors.
//!
//! The data plane reads what the controller wrote: a destination given as a `ref` is taken
//! from the object's status (`subscriberUri`, `deadLetterSinkUri`), so the replicas need
//! only read access to Brokers and Triggers. A Trigger whose subscriber the controller has
//! not resolved yet is left out until it is, and an object being deleted (it carries a
//! `deletionTimestamp`) is left out at once.
//!
//! When the API server is unreachable the watches retry with backoff while the data plane
//! keeps running on the last snapshot.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weft_config::crd::{self, BrokerResource, TriggerResource};
use weft_config::manifest::{DeliverySpec, Manifests};

use super::{BrokerClass, uri_destination};
use crate::state::StateSource;

/// Changes closer together than this make one snapshot.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// The longest wait between two attempts to watch again. kube-runtime's default (30 s,
/// kind to a struggling API server) would leave a replica blind for that long after a
/// short outage; a replica's watch is two cheap requests.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Brokers and Triggers from the Kubernetes API.
pub struct KubeSource {
    brokers: Store<BrokerResource>,
    triggers: Store<TriggerResource>,
    changed: Arc<Notify>,
    class: BrokerClass,
    started: bool,
    watches: Vec<JoinHandle<()>>,
}

impl KubeSource {
    /// Starts watching Brokers and Triggers in `namespace` (every namespace when `None`).
    pub fn start(client: Client, namespace: Option<&str>, class: BrokerClass) -> Self {
        let changed = Arc::new(Notify::new());
        let (brokers, broker_watch) = watch::<BrokerResource>(&client, namespace, &changed);
        let (triggers, trigger_watch) = watch::<TriggerResource>(&client, namespace, &changed);
        KubeSource {
            brokers,
            triggers,
            changed,
            class,
            started: false,
            watches: vec![broker_watch, trigger_watch],
        }
    }

    fn snapshot(&self) -> Manifests {
        let brokers: Vec<BrokerResource> = self
            .brokers
            .state()
            .iter()
            .filter(|b| b.meta().deletion_timestamp.is_none() && self.class.serves(b.as_ref()))
            .map(|b| data_plane_broker(b))
            .collect();
        let served = |t: &TriggerResource| {
            let namespace = t.metadata.namespace.as_deref().unwrap_or_default();
            brokers.iter().any(|b| {
                b.metadata.namespace.as_deref() == Some(namespace)
                    && b.metadata.name.as_deref() == Some(t.spec.broker.as_str())
            })
        };
        let triggers: Vec<TriggerResource> = self
            .triggers
            .state()
            .iter()
            .filter(|t| t.meta().deletion_timestamp.is_none() && served(t))
            .filter_map(|t| data_plane_trigger(t))
            .collect();
        crd::manifests(&brokers, &triggers)
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

#[async_trait]
impl StateSource for KubeSource {
    async fn next(&mut self) -> Option<Manifests> {
        if !self.started {
            // The first snapshot waits for both lists, so nothing is stopped for lack of it.
            self.brokers.wait_until_ready().await.ok()?;
            self.triggers.wait_until_ready().await.ok()?;
            self.started = true;
        } else {
            self.changed.notified().await;
            tokio::time::sleep(DEBOUNCE).await;
        }
        Some(self.snapshot())
    }
}

/// A reflector of `K` kept up to date by a background task that wakes `changed`.
fn watch<K>(
    client: &Client,
    namespace: Option<&str>,
    changed: &Arc<Notify>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_RETRY)
        .with_jitter()
        .without_max_times();
    let backoff = ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(backoff),
        Duration::from_secs(60),
    );
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).backoff(backoff);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) => {
                    changed.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying")
                }
            }
        }
    });
    (reader, task)
}

/// The broker as the data plane serves it: a dead-letter `ref` replaced by the URL the
/// controller resolved.
fn data_plane_broker(broker: &BrokerResource) -> BrokerResource {
    let mut broker = broker.clone();
    let resolved = broker
        .status
        .as_ref()
        .and_then(|s| s.dead_letter_sink_uri.clone());
    use_resolved_sink(broker.spec.delivery.as_mut(), resolved);
    broker
}

/// The trigger as the data plane runs it, or `None` while its subscriber is unresolved.
fn data_plane_trigger(trigger: &TriggerResource) -> Option<TriggerResource> {
    let mut trigger = trigger.clone();
    let status = trigger.status.clone().unwrap_or_default();
    if trigger.spec.subscriber.reference.is_some() {
        trigger.spec.subscriber = uri_destination(status.subscriber_uri?);
    }
    use_resolved_sink(trigger.spec.delivery.as_mut(), status.dead_letter_sink_uri);
    Some(trigger)
}

/// Replaces a dead-letter `ref` with the URL the controller resolved. Unresolved, events
/// are delivered without a dead-letter sink rather than not at all; the controller reports
/// `DeadLetterSinkResolved=False` meanwhile.
fn use_resolved_sink(delivery: Option<&mut DeliverySpec>, resolved: Option<String>) {
    if let Some(delivery) = delivery
        && let Some(sink) = delivery.dead_letter_sink.as_mut()
        && sink.reference.is_some()
    {
        match resolved {
            Some(uri) => *sink = uri_destination(uri),
            None => delivery.dead_letter_sink = None,
        }
    }
}
