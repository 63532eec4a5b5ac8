//! `weft controller`: reconciles Brokers of Weft's class and the Triggers bound to them.
//!
//! Each reconcile has three steps, as in controller-rs:
//!
//! 1. **gather** ([`broker`], [`trigger`]): the API calls and channel calls that find the
//!    facts: resolve the dead-letter sink and subscriber, validate the spec (as `weft up`
//!    does), create the Broker's log or the Trigger's cursor at the end of the log (from
//!    then on what is sent waits for the dispatchers);
//! 2. **decide**: [`crate::readiness`] turns the facts into Knative's conditions, the same
//!    function `weft up` calls, and a pure function builds the `status` (`address.url` is
//!    `<ingress-url>/<namespace>/<name>`; `subscriberUri`, `deadLetterSinkUri`);
//! 3. **write** ([`write`]): the status, only when it changed, with `observedGeneration`,
//!    and a Kubernetes Event when `Ready` changes.
//!
//! Storage is deleted through finalizers: a Broker's log when the Broker is deleted, a
//! Trigger's cursor when the Trigger is; storage that still holds undelivered events waits
//! for a grace period or a purge first ([`super::retain`]). The data-plane replicas never
//! delete anything.
//!
//! A failed reconcile is retried with a per-object exponential backoff ([`backoff`]); every
//! reconcile is counted and timed on `/metrics` ([`metrics`]).
//!
//! Only the replica holding the `weft-controller` Lease reconciles; one that loses the lease
//! (say, the API server was unreachable for longer than the lease lasts) stops reconciling at
//! once and stands for election again.

mod backoff;
mod broker;
mod context;
mod metrics;
mod sink;
mod trigger;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use weft_config::crd::{BrokerResource, TriggerResource};

use self::backoff::Backoff;
use self::context::{Context, ReconcileError, key_of};
pub use self::context::{ControllerOptions, FINALIZER};
use super::leader::Candidate;
use crate::ControllerError;
use crate::serve::{bind, local_addr, open_channel, stop_signal, stopped};

/// The Lease the controller replicas compete for.
pub const LEASE_NAME: &str = "weft-controller";

/// How long a controller that shuts down tries to give its lease up.
const RELEASE: Duration = Duration::from_secs(5);

/// Runs the controller until `shutdown` completes, or fails when the lease is lost. Prints
/// `weft controller serving /healthz and /metrics on http://ADDR` once it listens.
pub async fn run_controller(
    options: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    super::shared_channel(&options.channel)?;
    let client = super::connect().await?;
    let listener = bind(&options.addr).await?;
    println!(
        "weft controller serving /healthz and /metrics on http://{}",
        local_addr(&listener)?
    );
    let prometheus = weft_broker::telemetry::prometheus();
    let health = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || std::future::ready(prometheus.render())),
        );
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
        let reporter = Reporter {
            controller: "weft-controller".into(),
            instance: Some(options.identity.clone()),
        };
        let context = Arc::new(Context {
            client: client.clone(),
            channel,
            options: options.clone(),
            recorder: Recorder::new(client.clone(), reporter),
            backoff: Backoff::default(),
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
        .run(broker::reconcile, retry_later, context.clone())
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
        .run(trigger::reconcile, retry_later, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "trigger reconcile failed");
            }
        });
    tokio::join!(broker_controller, trigger_controller);
}

/// A failed reconcile is tried again after a delay that doubles with each consecutive
/// failure of the same object (1 s up to 5 min); a success starts it over.
fn retry_later<K: Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &ReconcileError,
    context: Arc<Context>,
) -> Action {
    let key = format!("{}/{}", K::kind(&()), key_of(object.as_ref()));
    let delay = context.backoff.failed(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed; will retry");
    Action::requeue(delay)
}
