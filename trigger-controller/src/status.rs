//! Status of every broker and trigger: ready or not, and why, as `weft get` shows it.
//!
//! The reconciler writes each object's [`Readiness`] here (decided by
//! [`crate::readiness`], as the Kubernetes controller's are); the admin API (`GET /_weft/v1/brokers`,
//! `GET /_weft/v1/triggers`) adds live figures from the data plane: backlog per trigger
//! and outcome counts. The admin API is served on its own address (`--admin-addr`,
//! loopback by default), never with the ingress, and shows URLs without their credentials.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use weft_broker::DataPlane;
use weft_config::redact::{redact, redact_urls_in};
use weft_config::{ObjectKey, crd};

use crate::readiness::{self, Readiness, Reason};

/// An object's `Ready` condition, as `weft get` sums it up: ready or not, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Whether the object is ready.
    pub ready: bool,
    /// A short CamelCase reason when not ready (`BrokerDoesNotExist`, `InvalidTrigger`…).
    pub reason: Option<&'static str>,
    /// A human sentence explaining the reason.
    pub message: Option<String>,
}

impl From<&readiness::Condition> for Condition {
    fn from(c: &readiness::Condition) -> Self {
        Condition {
            ready: c.is_true(),
            reason: c.reason.filter(|_| !c.is_true()).map(Reason::as_str),
            message: c.message.clone().filter(|_| !c.is_true()),
        }
    }
}

/// What the reconciler knows about a trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerCondition {
    /// The broker it names (empty when the manifest is unreadable).
    pub broker: String,
    /// The subscriber URL, when valid.
    pub subscriber: Option<String>,
    /// Readiness.
    pub condition: Condition,
    /// Every condition, with its transition time, as Kubernetes would show it.
    pub conditions: Vec<crd::Condition>,
}

/// Conditions of all objects, shared between the reconciler and the admin API.
#[derive(Debug, Default)]
pub struct StatusBoard {
    inner: RwLock<Board>,
}

#[derive(Debug, Default)]
struct Board {
    base_url: String,
    brokers: BTreeMap<ObjectKey, Recorded>,
    triggers: BTreeMap<ObjectKey, RecordedTrigger>,
}

/// An object's last readiness, and its conditions with their transition times.
#[derive(Debug)]
struct Recorded {
    readiness: Readiness,
    conditions: Vec<crd::Condition>,
}

impl Recorded {
    fn new(readiness: &Readiness) -> Self {
        let mut conditions = Vec::new();
        readiness.write_into(&mut conditions, Utc::now());
        Recorded {
            readiness: readiness.clone(),
            conditions,
        }
    }

    fn update(&mut self, readiness: &Readiness) {
        readiness.write_into(&mut self.conditions, Utc::now());
        self.readiness = readiness.clone();
    }

    /// `Ready`, summed up.
    fn summary(&self) -> Condition {
        self.readiness.ready().into()
    }
}

/// A trigger's recorded readiness, with the broker it names and its subscriber.
#[derive(Debug)]
struct RecordedTrigger {
    broker: String,
    subscriber: Option<String>,
    recorded: Recorded,
}

impl RecordedTrigger {
    fn view(&self) -> TriggerCondition {
        TriggerCondition {
            broker: self.broker.clone(),
            subscriber: self.subscriber.clone(),
            condition: self.recorded.summary(),
            conditions: self.recorded.conditions.clone(),
        }
    }
}

impl StatusBoard {
    /// Sets the URL brokers are reachable under (`http://host:port`).
    pub fn set_base_url(&self, url: impl Into<String>) {
        self.write().base_url = url.into();
    }
    /// Records a broker's readiness.
    pub fn set_broker(&self, key: &ObjectKey, readiness: &Readiness) {
        let mut board = self.write();
        match board.brokers.get_mut(key) {
            Some(recorded) => recorded.update(readiness),
            None => {
                board.brokers.insert(key.clone(), Recorded::new(readiness));
            }
        }
    }
    /// Forgets a deleted broker.
    pub fn remove_broker(&self, key: &ObjectKey) {
        self.write().brokers.remove(key);
    }
    /// Records a trigger's readiness, the broker it names and its subscriber.
    pub fn set_trigger(
        &self,
        key: &ObjectKey,
        broker: String,
        subscriber: Option<String>,
        readiness: &Readiness,
    ) {
        let mut board = self.write();
        match board.triggers.get_mut(key) {
            Some(entry) => {
                entry.broker = broker;
                entry.subscriber = subscriber;
                entry.recorded.update(readiness);
            }
            None => {
                let entry = RecordedTrigger {
                    broker,
                    subscriber,
                    recorded: Recorded::new(readiness),
                };
                board.triggers.insert(key.clone(), entry);
            }
        }
    }
    /// Keeps only the brokers and triggers the predicates accept.
    pub fn retain(
        &self,
        broker: impl Fn(&ObjectKey) -> bool,
        trigger: impl Fn(&ObjectKey) -> bool,
    ) {
        let mut board = self.write();
        board.brokers.retain(|key, _| broker(key));
        board.triggers.retain(|key, _| trigger(key));
    }
    /// Forgets a deleted trigger.
    pub fn remove_trigger(&self, key: &ObjectKey) {
        self.write().triggers.remove(key);
    }
    /// A trigger's recorded condition.
    pub fn trigger(&self, key: &ObjectKey) -> Option<TriggerCondition> {
        self.read().triggers.get(key).map(RecordedTrigger::view)
    }
    /// A broker's recorded condition.
    pub fn broker(&self, key: &ObjectKey) -> Option<Condition> {
        self.read().brokers.get(key).map(Recorded::summary)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Board> {
        // Writers only insert or remove single entries; a poisoned board is consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Board> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A broker as `weft get brokers` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether it accepts and routes events.
    pub ready: bool,
    /// Why it is not ready.
    pub reason: Option<String>,
    /// The URL producers post to.
    pub address: String,
    /// Every condition, as `kubectl get -o yaml` shows a Broker's.
    #[serde(default)]
    pub conditions: Vec<crd::Condition>,
}

/// A trigger as `weft get triggers` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TriggerStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The broker it subscribes to.
    pub broker: String,
    /// Whether it delivers.
    pub ready: bool,
    /// Why it is not ready.
    pub reason: Option<String>,
    /// Where events go.
    pub subscriber: Option<String>,
    /// Events stored but not yet finished with.
    pub backlog: u64,
    /// Events the subscriber accepted.
    pub delivered: u64,
    /// Events sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Events kept because even the dead-letter sink failed.
    pub parked: u64,
    /// Events that failed with no dead-letter sink.
    pub dropped: u64,
    /// Deliveries allowed in flight now: the trigger's maximum, narrowed while its sink
    /// keeps failing.
    pub in_flight_window: u64,
    /// Every condition, as `kubectl get -o yaml` shows a Trigger's.
    #[serde(default)]
    pub conditions: Vec<crd::Condition>,
}

/// The reason as shown, any URL in it without credentials.
fn reason_text(c: &Condition) -> Option<String> {
    let text = match (c.reason, &c.message) {
        (Some(r), Some(m)) => Some(format!("{r}: {m}")),
        (Some(r), None) => Some(r.to_owned()),
        (None, m) => m.clone(),
    };
    text.map(|t| redact_urls_in(&t).into_owned())
}

/// What `weft purge` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeKind {
    /// A deleted broker's log.
    Broker,
    /// A deleted trigger's cursors.
    Trigger,
}

/// A request to delete retained storage now, answered with what was deleted.
#[derive(Debug)]
pub struct PurgeRequest {
    /// Broker or trigger.
    pub kind: PurgeKind,
    /// The deleted object.
    pub key: ObjectKey,
    /// Where the answer goes: the storage deleted, or why nothing was.
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<String>, String>>,
}

/// Conditions as shown, any URL in their messages without credentials.
fn redacted(conditions: &[crd::Condition]) -> Vec<crd::Condition> {
    conditions
        .iter()
        .map(|c| crd::Condition {
            message: c.message.as_deref().map(|m| redact_urls_in(m).into_owned()),
            ..c.clone()
        })
        .collect()
}

/// The admin API: `GET /_weft/v1/brokers` and `GET /_weft/v1/triggers`; `DELETE
/// /_weft/v1/retained/{brokers|triggers}/{namespace}/{name}` purges the storage a deleted
/// object left behind (sent to the reconciler through `purges`).
pub fn router(
    board: Arc<StatusBoard>,
    dataplane: Arc<DataPlane>,
    purges: mpsc::Sender<PurgeRequest>,
) -> Router {
    let purge_routes = Router::new()
        .route(
            "/_weft/v1/retained/{kind}/{namespace}/{name}",
            delete(purge),
        )
        .with_state(purges);
    Router::new()
        .route("/_weft/v1/brokers", get(brokers))
        .route("/_weft/v1/triggers", get(triggers))
        .with_state((board, dataplane))
        .merge(purge_routes)
}

/// What the ingress address answers under `/_weft/`: 404, saying where the admin API is.
pub fn not_on_ingress() -> Router {
    Router::new().route(
        "/_weft/{*rest}",
        any(|| async {
            (
                StatusCode::NOT_FOUND,
                "the admin API is served on the admin address (weft up --admin-addr), not here\n",
            )
        }),
    )
}

type AdminState = (Arc<StatusBoard>, Arc<DataPlane>);

/// What `DELETE /_weft/v1/retained/…` answers: the storage deleted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Purged {
    /// Each piece of storage deleted, in words.
    pub deleted: Vec<String>,
}

async fn purge(
    State(purges): State<mpsc::Sender<PurgeRequest>>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    let kind = match kind.as_str() {
        "brokers" | "broker" => PurgeKind::Broker,
        "triggers" | "trigger" => PurgeKind::Trigger,
        other => {
            let message = format!("unknown kind {other:?}; expected brokers or triggers\n");
            return (StatusCode::NOT_FOUND, message).into_response();
        }
    };
    let (reply, answer) = oneshot::channel();
    let request = PurgeRequest {
        kind,
        key: ObjectKey::new(namespace, name),
        reply,
    };
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop is not running\n",
        )
    };
    if purges.send(request).await.is_err() {
        return unavailable().into_response();
    }
    match answer.await {
        Ok(Ok(deleted)) => Json(Purged { deleted }).into_response(),
        Ok(Err(reason)) => (StatusCode::CONFLICT, format!("{reason}\n")).into_response(),
        Err(_) => unavailable().into_response(),
    }
}

async fn brokers(State((board, _)): State<AdminState>) -> Json<Vec<BrokerStatus>> {
    let b = board.read();
    Json(
        b.brokers
            .iter()
            .map(|(key, recorded)| {
                let summary = recorded.summary();
                BrokerStatus {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    ready: summary.ready,
                    reason: reason_text(&summary),
                    address: format!("{}/{}/{}", b.base_url, key.namespace, key.name),
                    conditions: redacted(&recorded.conditions),
                }
            })
            .collect(),
    )
}

async fn triggers(State((board, dataplane)): State<AdminState>) -> Json<Vec<TriggerStatus>> {
    let snapshot: Vec<(ObjectKey, TriggerCondition)> = board
        .read()
        .triggers
        .iter()
        .map(|(k, v)| (k.clone(), v.view()))
        .collect();
    let mut out = Vec::with_capacity(snapshot.len());
    for (key, t) in snapshot {
        let broker = ObjectKey::new(key.namespace.clone(), t.broker.clone());
        let backlog = if t.broker.is_empty() {
            0
        } else {
            dataplane
                .channel()
                .backlog(&broker, &key)
                .await
                .unwrap_or(0)
        };
        let stats = dataplane.stats(&key);
        out.push(TriggerStatus {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            broker: t.broker.clone(),
            ready: t.condition.ready,
            reason: reason_text(&t.condition),
            subscriber: t.subscriber.as_deref().map(redact),
            backlog,
            delivered: stats.delivered,
            dead_lettered: stats.dead_lettered,
            parked: stats.parked,
            dropped: stats.dropped,
            in_flight_window: stats.in_flight_window,
            conditions: redacted(&t.conditions),
        });
    }
    Json(out)
}
