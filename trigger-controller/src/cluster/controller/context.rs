//! What every reconcile of the controller shares: its options, the context (API client,
//! channel, event recorder, backoff), the finalizer, requeue delays and small helpers. It
//! sits below the per-kind reconcilers and the writer, which all use it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer;
use kube::{Client, Resource};
use weft_channels::Channel;
use weft_config::ObjectKey;

use super::backoff::Backoff;
use super::metrics;
use crate::ControllerError;
use crate::cluster::BrokerClass;
use crate::cluster::leader::LeaseTiming;

/// The finalizer that holds a deleted object until its storage is gone.
pub const FINALIZER: &str = "eventing.weft.dev/storage";
/// How soon a healthy object is looked at again, to follow refs that changed.
pub(super) const RESYNC: Duration = Duration::from_secs(300);
/// How soon an object waiting for something (an unresolved ref, a missing broker) is
/// looked at again.
pub(super) const WAITING: Duration = Duration::from_secs(10);
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

/// What every reconcile shares.
pub(super) struct Context {
    /// The API server's client.
    pub client: Client,
    /// The channel whose logs and cursors the controller creates and deletes.
    pub channel: Arc<dyn Channel>,
    /// How it runs.
    pub options: ControllerOptions,
    /// Records Kubernetes Events on objects whose `Ready` changed.
    pub recorder: Recorder,
    /// Consecutive failures per object, for the retry delay.
    pub backoff: Backoff,
}

/// What a reconcile fails with.
pub(super) type ReconcileError = finalizer::Error<ControllerError>;

/// Runs one reconcile of `object` (a `kind`): counts and times it, and starts the object's
/// retry delay over when it succeeds.
pub(super) async fn measured<K: Resource>(
    kind: &'static str,
    object: &K,
    reconcile: impl Future<Output = Result<Action, ReconcileError>>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let timer = metrics::Timer::start(kind);
    let key = format!("{kind}/{}", key_of(object));
    let result = reconcile.await;
    if result.is_ok() {
        context.backoff.succeeded(&key);
    }
    timer.finish(result.is_ok());
    result
}

/// `namespace/name` of an object.
pub(super) fn key_of(object: &impl Resource) -> ObjectKey {
    let meta = object.meta();
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Whether the object carries Weft's finalizer.
pub(super) fn has_finalizer(object: &impl Resource) -> bool {
    object
        .meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}
