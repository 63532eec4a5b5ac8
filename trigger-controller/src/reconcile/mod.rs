//! Applying desired state to the data plane.
//!
//! Each snapshot is compared with what runs: new brokers get a log and start accepting
//! events; new or changed triggers (re)start their dispatcher, keeping their cursor. Nothing
//! that holds events is deleted by accident:
//!
//! - An invalid object never stops the others, and never loses what it had: it is reported
//!   not ready with the reason, its storage is kept, and if a valid version of it runs, that
//!   version keeps running (as Knative's webhook would refuse the bad update). A manifest
//!   that cannot be read at all arrives here as such an invalid object (see
//!   [`weft_config::manifest::Manifests::carry_over`]).
//! - An object that leaves the desired state stops; its storage is deleted at once only if
//!   it holds no undelivered event. Otherwise it is kept for a grace period ([`retained`]).
//!
//! [`Roles`] say which part of the data plane this process runs. `weft up` runs all of it
//! and owns the storage. On Kubernetes the ingress and dispatcher replicas each run one
//! part and never delete storage: an object leaving their desired state only stops what
//! they ran, and the controller deletes the log or cursor (through a finalizer).

pub mod retained;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_broker::DataPlane;
use weft_config::manifest::{Manifests, Problem};
use weft_config::{BrokerConfig, DeliveryConfig, ObjectKey, TriggerConfig};

use self::retained::{RetainedStorage, Retention, Stored};
use crate::readiness::{
    self, BrokerFacts, BrokerState, Fallback, Readiness, Reason, Resolution, Storage, TriggerFacts,
};
use crate::status::{PurgeKind, StatusBoard};

/// How long storage that still holds events is kept after its object was deleted, unless
/// configured otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Which parts of the data plane a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Accept events for brokers (the ingress serves them).
    pub ingress: bool,
    /// Run triggers' dispatchers.
    pub dispatch: bool,
    /// Delete the log of a broker and the cursor of a trigger that left the desired state.
    pub manage_storage: bool,
    /// At start, delete every log and cursor in the channel that no object of the desired
    /// state owns (objects deleted while the process was down). Only safe when no other
    /// installation shares the channel.
    pub collect_at_start: bool,
}

impl Roles {
    /// Every role, storage included: `weft up`.
    pub const ALL: Roles = Roles {
        ingress: true,
        dispatch: true,
        manage_storage: true,
        collect_at_start: true,
    };
    /// An ingress replica: accepts events, never deletes storage.
    pub const INGRESS: Roles = Roles {
        ingress: true,
        dispatch: false,
        manage_storage: false,
        collect_at_start: false,
    };
    /// A dispatcher replica: delivers events, never deletes storage.
    pub const DISPATCHER: Roles = Roles {
        ingress: false,
        dispatch: true,
        manage_storage: false,
        collect_at_start: false,
    };
}

/// Drives the data plane towards the desired state.
pub struct Reconciler {
    dataplane: Arc<DataPlane>,
    status: Arc<StatusBoard>,
    roles: Roles,
    /// How long storage that holds events outlives its object.
    retention: Duration,
    /// Brokers whose log exists and whose ingress is open, with their last valid
    /// configuration (`None`: never valid in this process).
    brokers: HashMap<ObjectKey, Option<BrokerConfig>>,
    /// Triggers whose dispatcher runs, with the configuration it runs with: the last
    /// valid one.
    running: HashMap<ObjectKey, (TriggerConfig, DeliveryConfig)>,
    /// Triggers that own a cursor, and the broker it is on.
    cursors: HashMap<ObjectKey, ObjectKey>,
    /// Storage whose object was deleted while it held events.
    retained: RetainedStorage,
    /// Logs the channel held at the first snapshot: an invalid broker that has one keeps
    /// accepting events into it.
    logs_at_start: HashSet<ObjectKey>,
    /// Whether the first snapshot was applied.
    started: bool,
}

type Desired<'a, T> = BTreeMap<ObjectKey, Result<&'a T, String>>;

impl Reconciler {
    /// A reconciler that has applied nothing yet, running every role ([`Roles::ALL`]).
    pub fn new(dataplane: Arc<DataPlane>, status: Arc<StatusBoard>) -> Self {
        Self::with_roles(dataplane, status, Roles::ALL)
    }

    /// A reconciler that has applied nothing yet, running only `roles`.
    pub fn with_roles(dataplane: Arc<DataPlane>, status: Arc<StatusBoard>, roles: Roles) -> Self {
        Reconciler {
            dataplane,
            status,
            roles,
            retention: DEFAULT_RETENTION,
            brokers: HashMap::new(),
            running: HashMap::new(),
            cursors: HashMap::new(),
            retained: RetainedStorage::new(),
            logs_at_start: HashSet::new(),
            started: false,
        }
    }

    /// Keeps storage that holds events for `grace` after its object is deleted.
    pub fn retain_deleted_for(mut self, grace: Duration) -> Self {
        self.retention = grace;
        self
    }

    /// Storage kept after its object was deleted.
    pub fn retained(&self) -> &RetainedStorage {
        &self.retained
    }

    /// Applies one snapshot of desired state.
    pub async fn reconcile(&mut self, desired: &Manifests) {
        for problem in desired.all_problems() {
            tracing::warn!(%problem, "manifest problem");
        }
        let brokers: Desired<'_, BrokerConfig> = desired
            .brokers
            .iter()
            .map(|b| (b.key.clone(), b.config.as_ref().map_err(|p| describe(p))))
            .collect();
        let triggers: Desired<'_, TriggerConfig> = desired
            .triggers
            .iter()
            .map(|t| (t.key.clone(), t.config.as_ref().map_err(|p| describe(p))))
            .collect();
        if !self.started {
            self.started = true;
            match self.dataplane.channel().logs().await {
                Ok(logs) => self.logs_at_start = logs.into_iter().collect(),
                Err(e) => tracing::warn!(error = %e, "cannot list the channel's logs"),
            }
            if self.roles.collect_at_start {
                if desired.unread.is_empty() {
                    self.collect_at_start(&brokers, &triggers).await;
                } else {
                    tracing::warn!(
                        "some manifests cannot be read; storage of deleted objects is not \
                         collected until a restart with readable manifests"
                    );
                }
            }
        }
        self.remove_triggers(&triggers).await;
        self.remove_brokers(&brokers).await;
        self.apply_brokers(&brokers).await;
        if self.roles.dispatch {
            self.apply_triggers(&brokers, &triggers).await;
        }
        self.forget_statuses(&brokers, &triggers);
    }

    /// After a restart: releases the logs and cursors of objects deleted while Weft was
    /// down (deleted if empty, retained if they hold events).
    async fn collect_at_start(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        triggers: &Desired<'_, TriggerConfig>,
    ) {
        let channel = self.dataplane.channel().clone();
        for log in self.logs_at_start.clone() {
            let subscriptions = match channel.subscriptions(&log).await {
                Ok(subscriptions) => subscriptions,
                Err(e) => {
                    tracing::warn!(broker = %log, error = %e, "cannot list cursors; keeping them");
                    continue;
                }
            };
            for sub in subscriptions {
                let keep = match triggers.get(&sub) {
                    Some(Ok(t)) => t.broker_key() == log,
                    // An invalid trigger keeps its cursor until it is fixed or deleted.
                    Some(Err(_)) => true,
                    None => false,
                };
                if keep {
                    self.cursors.insert(sub, log.clone());
                } else {
                    self.release(Stored::Cursor {
                        trigger: sub,
                        broker: log.clone(),
                    })
                    .await;
                }
            }
            if !brokers.contains_key(&log) {
                self.release(Stored::Log(log)).await;
            }
        }
    }

    /// Undelivered events in `stored`; `None` when the channel cannot tell.
    async fn backlog(&self, stored: &Stored) -> Option<u64> {
        let channel = self.dataplane.channel();
        match stored {
            Stored::Cursor { trigger, broker } => channel.backlog(broker, trigger).await.ok(),
            Stored::Log(broker) => {
                let mut total = 0;
                for sub in channel.subscriptions(broker).await.ok()? {
                    total += channel.backlog(broker, &sub).await.ok()?;
                }
                Some(total)
            }
        }
    }

    /// Storage whose object left the desired state: deleted if it holds no event (or its
    /// owner manages no storage: then only what runs stops), else retained.
    async fn release(&mut self, stored: Stored) {
        match &stored {
            Stored::Log(broker) => self.dataplane.stop_broker(broker).await,
            Stored::Cursor { trigger, .. } => self.dataplane.stop_trigger(trigger).await,
        }
        if !self.roles.manage_storage {
            return;
        }
        match self.backlog(&stored).await {
            Some(0) => self.delete(&stored, "it was deleted").await,
            backlog => {
                let backlog = backlog.unwrap_or(0);
                let retention = Retention::new(backlog, self.retention);
                tracing::warn!(
                    storage = %stored,
                    backlog,
                    until = %retention.until_wall,
                    "object deleted while events wait: its storage is retained"
                );
                self.show_retained(&stored, &retention);
                self.retained.insert(stored, retention);
            }
        }
    }

    fn show_retained(&self, stored: &Stored, retention: &Retention) {
        let readiness = Readiness::only_ready(Reason::Retained, retention.message(stored));
        match stored {
            Stored::Log(broker) => self.status.set_broker(broker, &readiness),
            Stored::Cursor { trigger, broker } => {
                self.status
                    .set_trigger(trigger, broker.name.clone(), None, &readiness)
            }
        }
    }

    /// Deletes storage for good.
    async fn delete(&mut self, stored: &Stored, why: &str) {
        let result = match stored {
            Stored::Log(broker) => {
                self.cursors.retain(|_, b| b != broker);
                self.retained.retain(|s, _| match s {
                    Stored::Cursor { broker: b, .. } => b != broker,
                    Stored::Log(_) => true,
                });
                self.dataplane.delete_broker(broker).await
            }
            // The trigger runs on another broker now: only its old cursor goes.
            Stored::Cursor { trigger, broker }
                if self.cursors.get(trigger).is_some_and(|b| b != broker) =>
            {
                let channel = self.dataplane.channel();
                channel
                    .delete_subscription(broker, trigger)
                    .await
                    .map_err(|source| weft_broker::BrokerError::Channel {
                        object: trigger.clone(),
                        source,
                    })
            }
            Stored::Cursor { trigger, broker } => {
                self.dataplane.delete_trigger(trigger, broker).await
            }
        };
        match result {
            Ok(()) => tracing::info!(storage = %stored, why, "storage deleted"),
            Err(e) => tracing::warn!(storage = %stored, error = %e, "cannot delete storage"),
        }
    }

    /// Deletes retained storage whose grace period is over.
    pub async fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<(Stored, Retention)> = self
            .retained
            .iter()
            .filter(|(_, r)| r.until <= now)
            .map(|(s, r)| (s.clone(), r.clone()))
            .collect();
        for (stored, retention) in due {
            if self.retained.remove(&stored).is_none() {
                continue; // went with its log
            }
            tracing::warn!(storage = %stored, backlog = retention.backlog, "the grace period of a deleted object ended: deleting its storage and the events it held");
            self.forget_retained_status(&stored);
            self.delete(&stored, "its grace period ended").await;
        }
    }

    /// The next moment [`Reconciler::expire`] has something to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.retained.values().map(|r| r.until).min()
    }

    /// Deletes the retained storage of a deleted broker or trigger now. Answers what was
    /// deleted, or why nothing was.
    pub async fn purge(&mut self, kind: PurgeKind, key: &ObjectKey) -> Result<Vec<String>, String> {
        let matching: Vec<Stored> = self
            .retained
            .keys()
            .filter(|s| match (kind, s) {
                (PurgeKind::Broker, Stored::Log(b)) => b == key,
                (PurgeKind::Trigger, Stored::Cursor { trigger, .. }) => trigger == key,
                _ => false,
            })
            .cloned()
            .collect();
        if matching.is_empty() {
            let kind = match kind {
                PurgeKind::Broker => "broker",
                PurgeKind::Trigger => "trigger",
            };
            return Err(format!(
                "no storage of a deleted {kind} {key} is retained (only storage of objects \
                 deleted from the manifests while events waited can be purged)"
            ));
        }
        let mut deleted = Vec::new();
        for stored in matching {
            if self.retained.remove(&stored).is_some() {
                tracing::warn!(storage = %stored, "purged on request: deleting the storage of a deleted object and the events it held");
                self.forget_retained_status(&stored);
                self.delete(&stored, "it was purged").await;
                deleted.push(stored.to_string());
            }
        }
        Ok(deleted)
    }

    fn forget_retained_status(&self, stored: &Stored) {
        match stored {
            Stored::Log(broker) if !self.brokers.contains_key(broker) => {
                self.status.remove_broker(broker)
            }
            Stored::Cursor { trigger, .. } if !self.cursors.contains_key(trigger) => {
                self.status.remove_trigger(trigger)
            }
            _ => {}
        }
    }

    async fn remove_triggers(&mut self, triggers: &Desired<'_, TriggerConfig>) {
        let gone: Vec<ObjectKey> = self
            .cursors
            .keys()
            .chain(self.running.keys())
            .filter(|k| !triggers.contains_key(k))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for key in gone {
            self.running.remove(&key);
            self.status.remove_trigger(&key);
            match self.cursors.remove(&key) {
                Some(broker) => {
                    self.release(Stored::Cursor {
                        trigger: key.clone(),
                        broker,
                    })
                    .await
                }
                None => self.dataplane.stop_trigger(&key).await,
            }
            tracing::info!(trigger = %key, "trigger removed");
        }
    }

    async fn remove_brokers(&mut self, brokers: &Desired<'_, BrokerConfig>) {
        let gone: Vec<ObjectKey> = self
            .brokers
            .keys()
            .filter(|k| !brokers.contains_key(k))
            .cloned()
            .collect();
        for key in gone {
            // Its triggers are still desired (else they were removed above): they stop and
            // report BrokerDoesNotExist below, keeping their cursors.
            self.running.retain(|_, (t, _)| t.broker_key() != key);
            self.brokers.remove(&key);
            self.status.remove_broker(&key);
            self.release(Stored::Log(key.clone())).await;
            tracing::info!(broker = %key, "broker removed");
        }
    }

    async fn apply_brokers(&mut self, brokers: &Desired<'_, BrokerConfig>) {
        for (key, config) in brokers {
            let came_back = self.retained.remove(&Stored::Log(key.clone())).is_some();
            if came_back {
                tracing::info!(broker = %key, "a deleted broker came back: its retained log is used again");
            }
            let last_valid = self.brokers.get(key).cloned().flatten();
            let open = self.brokers.contains_key(key);
            // Open the ingress for a valid broker, and for an invalid one that has a log
            // already: nothing it holds is lost while it is being fixed.
            let has_log = open || came_back || self.logs_at_start.contains(key);
            let log = if open {
                Ok(true)
            } else if config.is_ok() || has_log {
                self.dataplane
                    .apply_broker(key)
                    .await
                    .map(|()| true)
                    .map_err(|e| e.to_string())
            } else {
                Ok(false)
            };
            if log == Ok(true) {
                match config {
                    Ok(broker) => {
                        if last_valid.as_ref() != Some(*broker) {
                            tracing::info!(broker = %key, "broker ready");
                        }
                        self.brokers.insert(key.clone(), Some((*broker).clone()));
                    }
                    Err(_) => {
                        self.brokers.insert(key.clone(), last_valid.clone());
                    }
                }
            }
            let facts = BrokerFacts {
                spec: config.as_ref().map(|_| ()).map_err(|e| e.as_str()),
                dead_letter_sink: match config {
                    Ok(broker) => sink_of(broker.delivery.as_ref()),
                    Err(_) => Resolution::NotLooked,
                },
                log: match &log {
                    Ok(true) => Storage::Ready,
                    Ok(false) => Storage::NotTried,
                    Err(e) => Storage::Failed(e),
                },
                fallback: match (&last_valid, has_log) {
                    (Some(_), _) => Fallback::LastValid,
                    (None, true) => Fallback::LogKept,
                    (None, false) => Fallback::Nothing,
                },
            };
            let readiness = readiness::broker(&facts);
            if let Some(reason) = readiness.ready().message.as_deref() {
                tracing::warn!(broker = %key, reason, "broker not ready");
            }
            self.status.set_broker(key, &readiness);
        }
    }

    async fn apply_triggers(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        triggers: &Desired<'_, TriggerConfig>,
    ) {
        for (key, config) in triggers {
            let (broker, subscriber, readiness) = match config {
                Ok(trigger) => {
                    let applied = self.apply_trigger(brokers, trigger).await;
                    let delivery = trigger.delivery.as_ref().or(applied.delivery.as_ref());
                    let facts = TriggerFacts {
                        spec: Ok(()),
                        broker: applied.broker.as_state(),
                        subscriber: Resolution::Resolved,
                        dead_letter_sink: sink_of(delivery),
                        subscription: match &applied.subscription {
                            Ok(true) => Storage::Ready,
                            Ok(false) => Storage::NotTried,
                            Err(e) => Storage::Failed(e),
                        },
                        fallback: Fallback::NotKnown,
                    };
                    (
                        trigger.broker.clone(),
                        Some(trigger.subscriber.to_string()),
                        readiness::trigger(&facts),
                    )
                }
                Err(message) => self.keep_invalid_trigger(key, message).await,
            };
            if let Some(reason) = readiness.ready().message.as_deref() {
                tracing::warn!(trigger = %key, reason, "trigger not ready");
            }
            self.status.set_trigger(key, broker, subscriber, &readiness);
        }
    }

    /// An invalid trigger: the last valid version keeps delivering if one runs; otherwise
    /// it waits, with its cursor. Answers its broker, subscriber and readiness.
    async fn keep_invalid_trigger(
        &mut self,
        key: &ObjectKey,
        message: &str,
    ) -> (String, Option<String>, Readiness) {
        let facts = |fallback| TriggerFacts {
            spec: Err(message),
            broker: BrokerState::Unknown,
            subscriber: Resolution::NotLooked,
            dead_letter_sink: Resolution::NotLooked,
            subscription: Storage::NotTried,
            fallback,
        };
        if let Some((last, _)) = self.running.get(key)
            && self.dataplane.is_running(key)
        {
            return (
                last.broker.clone(),
                Some(last.subscriber.to_string()),
                readiness::trigger(&facts(Fallback::LastValid)),
            );
        }
        self.pause(key).await;
        let broker = self
            .cursors
            .get(key)
            .map(|b| b.name.clone())
            .unwrap_or_default();
        (broker, None, readiness::trigger(&facts(Fallback::Nothing)))
    }

    /// Runs a valid trigger if its broker is ready. Answers what it found.
    async fn apply_trigger(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        trigger: &TriggerConfig,
    ) -> Applied {
        let key = &trigger.key;
        let broker_key = trigger.broker_key();
        self.retained.remove(&Stored::Cursor {
            trigger: key.clone(),
            broker: broker_key.clone(),
        });
        // A trigger moved to another broker starts over there; its old cursor goes the way
        // of a deleted trigger's.
        if let Some(old) = self.cursors.get(key).cloned()
            && old != broker_key
        {
            self.running.remove(key);
            self.cursors.remove(key);
            self.release(Stored::Cursor {
                trigger: key.clone(),
                broker: old,
            })
            .await;
        }
        let not_ready = |broker: BrokerFound| Applied {
            broker,
            delivery: None,
            subscription: Ok(false),
        };
        let broker = match self.brokers.get(&broker_key) {
            Some(Some(broker)) => broker,
            None if !brokers.contains_key(&broker_key) => {
                self.pause(key).await;
                return not_ready(BrokerFound::Missing(trigger.broker.clone()));
            }
            _ => {
                self.pause(key).await;
                let why = self
                    .status
                    .broker(&broker_key)
                    .and_then(|c| c.message)
                    .unwrap_or_else(|| format!("broker {broker_key} is not ready"));
                return not_ready(BrokerFound::NotReady(why));
            }
        };
        let delivery = trigger
            .delivery
            .clone()
            .or_else(|| broker.delivery.clone())
            .unwrap_or_else(|| self.dataplane.default_delivery().clone());
        let ran = |subscription| Applied {
            broker: BrokerFound::Ready,
            delivery: Some(delivery.clone()),
            subscription,
        };
        let unchanged = self
            .running
            .get(key)
            .is_some_and(|(t, d)| t == trigger && *d == delivery);
        if unchanged && self.dataplane.is_running(key) {
            return ran(Ok(true));
        }
        match self.dataplane.run_trigger(trigger, &delivery).await {
            Ok(()) => {
                tracing::info!(trigger = %key, broker = %broker_key, subscriber = %weft_config::redact::redact(trigger.subscriber.as_str()), "trigger ready");
                self.running
                    .insert(key.clone(), (trigger.clone(), delivery.clone()));
                self.cursors.insert(key.clone(), broker_key);
                ran(Ok(true))
            }
            Err(e) => {
                // A failed restart of a running trigger keeps the last valid version.
                if self.running.contains_key(key) && self.dataplane.is_running(key) {
                    return ran(Err(format!("{e}; the last valid version keeps delivering")));
                }
                self.pause(key).await;
                ran(Err(e.to_string()))
            }
        }
    }

    /// Stops a trigger's deliveries but keeps its cursor.
    async fn pause(&mut self, key: &ObjectKey) {
        if self.running.remove(key).is_some() || self.dataplane.is_running(key) {
            self.dataplane.stop_trigger(key).await;
        }
    }

    /// Forgets the status of objects that are neither desired nor retained (an invalid
    /// object whose file was deleted leaves no storage behind, but it must leave `weft get`).
    fn forget_statuses(
        &self,
        brokers: &Desired<'_, BrokerConfig>,
        triggers: &Desired<'_, TriggerConfig>,
    ) {
        let retained_brokers: HashSet<&ObjectKey> = self
            .retained
            .keys()
            .filter_map(|s| match s {
                Stored::Log(b) => Some(b),
                Stored::Cursor { .. } => None,
            })
            .collect();
        let retained_triggers: HashSet<&ObjectKey> = self
            .retained
            .keys()
            .filter_map(|s| match s {
                Stored::Cursor { trigger, .. } => Some(trigger),
                Stored::Log(_) => None,
            })
            .collect();
        self.status.retain(
            |broker| brokers.contains_key(broker) || retained_brokers.contains(broker),
            |trigger| triggers.contains_key(trigger) || retained_triggers.contains(trigger),
        );
    }
}

/// What [`Reconciler::apply_trigger`] found: the broker, the delivery it runs with, and
/// whether it runs (`Ok(false)`: not tried).
struct Applied {
    broker: BrokerFound,
    delivery: Option<DeliveryConfig>,
    subscription: Result<bool, String>,
}

/// A valid trigger's broker, as this process runs it.
enum BrokerFound {
    Ready,
    NotReady(String),
    Missing(String),
}

impl BrokerFound {
    fn as_state(&self) -> BrokerState<'_> {
        match self {
            BrokerFound::Ready => BrokerState::Ready,
            BrokerFound::NotReady(why) => BrokerState::NotReady(why),
            BrokerFound::Missing(name) => BrokerState::Missing(name),
        }
    }
}

/// A validated delivery's dead-letter sink: standalone, refs were resolved by validation.
fn sink_of(delivery: Option<&DeliveryConfig>) -> Resolution<'static> {
    match delivery.and_then(|d| d.dead_letter_sink.as_ref()) {
        Some(_) => Resolution::Resolved,
        None => Resolution::NotConfigured,
    }
}

/// The problems of an object in one line, for a condition's message.
pub(crate) fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
