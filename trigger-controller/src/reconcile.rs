//! Applying desired state to the data plane.
//!
//! Each snapshot is compared with what runs: new brokers get a log and start accepting
//! events; new or changed triggers (re)start their dispatcher, keeping their cursor;
//! triggers and brokers that left the desired state are stopped and their cursor or log
//! deleted. An invalid object never stops the others: it is reported not ready with the
//! reason, and whatever storage it already had is kept, so fixing the manifest resumes it
//! without losing events.
//!
//! [`Roles`] say which part of the data plane this process runs. `weft up` runs all of it
//! and owns the storage. On Kubernetes the ingress and dispatcher replicas each run one
//! part and never delete storage: an object leaving their desired state only stops what
//! they ran, and the controller deletes the log or cursor once (through a finalizer).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_broker::DataPlane;
use weft_config::manifest::{Manifests, Problem};
use weft_config::{BrokerConfig, DeliveryConfig, ObjectKey, TriggerConfig};

use crate::status::{Condition, StatusBoard, TriggerCondition};

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
    /// Brokers whose log exists and whose ingress is open.
    brokers: HashMap<ObjectKey, Option<BrokerConfig>>,
    /// Triggers whose dispatcher runs, with the configuration it runs with.
    running: HashMap<ObjectKey, (TriggerConfig, DeliveryConfig)>,
    /// Triggers that own a cursor, and the broker it is on.
    cursors: HashMap<ObjectKey, ObjectKey>,
    /// Whether storage left over from before a restart has been checked.
    collected: bool,
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
            brokers: HashMap::new(),
            running: HashMap::new(),
            cursors: HashMap::new(),
            collected: false,
        }
    }

    /// Applies one snapshot of desired state.
    pub async fn reconcile(&mut self, desired: &Manifests) {
        for problem in &desired.problems {
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
        if !self.collected && self.roles.collect_at_start {
            self.collect_garbage(&brokers, &triggers).await;
        }
        self.collected = true;
        self.remove_triggers(&triggers).await;
        self.remove_brokers(&brokers).await;
        self.apply_brokers(&brokers).await;
        if self.roles.dispatch {
            self.apply_triggers(&brokers, &triggers).await;
        }
    }

    /// After a restart: deletes logs and cursors of objects deleted while Weft was down.
    async fn collect_garbage(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        triggers: &Desired<'_, TriggerConfig>,
    ) {
        let channel = self.dataplane.channel().clone();
        let logs = match channel.logs().await {
            Ok(logs) => logs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list logs; skipping cleanup");
                return;
            }
        };
        for log in logs {
            if !brokers.contains_key(&log) {
                tracing::info!(broker = %log, "deleting the log of a broker that no longer exists");
                if let Err(e) = channel.delete_log(&log).await {
                    tracing::warn!(broker = %log, error = %e, "cannot delete log");
                }
                continue;
            }
            for sub in channel.subscriptions(&log).await.unwrap_or_default() {
                let keep = match triggers.get(&sub) {
                    Some(Ok(t)) => t.broker_key() == log,
                    // An invalid trigger keeps its cursor until it is fixed or deleted.
                    Some(Err(_)) => true,
                    None => false,
                };
                if keep {
                    self.cursors.insert(sub, log.clone());
                } else {
                    tracing::info!(trigger = %sub, broker = %log, "deleting the cursor of a trigger that no longer exists");
                    if let Err(e) = channel.delete_subscription(&log, &sub).await {
                        tracing::warn!(trigger = %sub, error = %e, "cannot delete cursor");
                    }
                }
            }
        }
    }

    async fn remove_triggers(&mut self, triggers: &Desired<'_, TriggerConfig>) {
        let gone: Vec<ObjectKey> = self
            .cursors
            .keys()
            .chain(self.running.keys())
            .filter(|k| !triggers.contains_key(k))
            .cloned()
            .collect();
        for key in gone {
            self.running.remove(&key);
            self.status.remove_trigger(&key);
            match self.cursors.remove(&key) {
                Some(broker) if self.roles.manage_storage => {
                    if let Err(e) = self.dataplane.delete_trigger(&key, &broker).await {
                        tracing::warn!(trigger = %key, error = %e, "cannot delete trigger cursor");
                    }
                }
                _ => self.dataplane.stop_trigger(&key).await,
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
            // Its triggers are still desired (else they were removed above): they stop
            // here and report BrokerDoesNotExist below. Their cursors go with the log.
            self.running.retain(|_, (t, _)| t.broker_key() != key);
            self.cursors.retain(|_, b| *b != key);
            if !self.roles.manage_storage {
                self.dataplane.stop_broker(&key).await;
            } else if let Err(e) = self.dataplane.delete_broker(&key).await {
                tracing::warn!(broker = %key, error = %e, "cannot delete broker log");
            }
            self.brokers.remove(&key);
            self.status.remove_broker(&key);
            tracing::info!(broker = %key, "broker removed");
        }
    }

    async fn apply_brokers(&mut self, brokers: &Desired<'_, BrokerConfig>) {
        for (key, config) in brokers {
            if !self.brokers.contains_key(key) {
                if let Err(e) = self.dataplane.apply_broker(key).await {
                    self.status
                        .set_broker(key, Condition::not_ready(e.reason(), e.to_string()));
                    continue;
                }
                tracing::info!(broker = %key, "broker ready");
            }
            // An invalid broker still accepts events (nothing is lost while it is being
            // fixed) but is not ready, and its triggers wait for it.
            let condition = match config {
                Ok(_) => Condition::ready(),
                Err(message) => Condition::not_ready("InvalidManifest", message.clone()),
            };
            self.brokers
                .insert(key.clone(), config.as_ref().ok().map(|c| (*c).clone()));
            self.status.set_broker(key, condition);
        }
    }

    async fn apply_triggers(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        triggers: &Desired<'_, TriggerConfig>,
    ) {
        for (key, config) in triggers {
            let status = match config {
                Ok(trigger) => TriggerCondition {
                    broker: trigger.broker.clone(),
                    subscriber: Some(trigger.subscriber.to_string()),
                    condition: self.apply_trigger(brokers, trigger).await,
                },
                Err(message) => {
                    self.pause(key).await;
                    TriggerCondition {
                        broker: self
                            .cursors
                            .get(key)
                            .map(|b| b.name.clone())
                            .unwrap_or_default(),
                        subscriber: None,
                        condition: Condition::not_ready("InvalidManifest", message.clone()),
                    }
                }
            };
            self.status.set_trigger(key, status);
        }
    }

    async fn apply_trigger(
        &mut self,
        brokers: &Desired<'_, BrokerConfig>,
        trigger: &TriggerConfig,
    ) -> Condition {
        let key = &trigger.key;
        let broker_key = trigger.broker_key();
        // A trigger moved to another broker starts over there.
        if let Some(old) = self.cursors.get(key).cloned()
            && old != broker_key
        {
            self.running.remove(key);
            self.cursors.remove(key);
            if !self.roles.manage_storage {
                self.dataplane.stop_trigger(key).await;
            } else if let Err(e) = self.dataplane.delete_trigger(key, &old).await {
                tracing::warn!(trigger = %key, error = %e, "cannot delete cursor on previous broker");
            }
        }
        let broker = match (brokers.get(&broker_key), self.brokers.get(&broker_key)) {
            (None, _) | (_, None) => {
                self.pause(key).await;
                return Condition::not_ready(
                    "BrokerDoesNotExist",
                    format!("broker {broker_key} does not exist"),
                );
            }
            (Some(Err(_)), _) | (_, Some(None)) => {
                self.pause(key).await;
                return Condition::not_ready(
                    "BrokerNotReady",
                    format!("broker {broker_key} is not ready"),
                );
            }
            (Some(Ok(broker)), Some(Some(_))) => *broker,
        };
        let delivery = trigger
            .delivery
            .clone()
            .or_else(|| broker.delivery.clone())
            .unwrap_or_default();
        let unchanged = self
            .running
            .get(key)
            .is_some_and(|(t, d)| t == trigger && *d == delivery);
        if unchanged && self.dataplane.is_running(key) {
            return Condition::ready();
        }
        match self.dataplane.run_trigger(trigger, &delivery).await {
            Ok(()) => {
                tracing::info!(trigger = %key, broker = %broker_key, subscriber = %weft_config::redact::redact(trigger.subscriber.as_str()), "trigger ready");
                self.running
                    .insert(key.clone(), (trigger.clone(), delivery));
                self.cursors.insert(key.clone(), broker_key);
                Condition::ready()
            }
            Err(e) => {
                self.pause(key).await;
                Condition::not_ready(e.reason(), e.to_string())
            }
        }
    }

    /// Stops a trigger's deliveries but keeps its cursor.
    async fn pause(&mut self, key: &ObjectKey) {
        if self.running.remove(key).is_some() || self.dataplane.is_running(key) {
            self.dataplane.stop_trigger(key).await;
        }
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
