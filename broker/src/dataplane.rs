//! The data plane handle the control plane drives: which brokers accept events, which
//! triggers run, and the HTTP router that serves them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::task::JoinHandle;
use weft_channels::Channel;
use weft_config::{DeliveryConfig, ObjectKey, TriggerConfig};

use crate::delivery;
use crate::dispatcher::{BrokerReplies, Dispatcher, TriggerStats, TriggerStatsSnapshot, Window};
use crate::error::BrokerError;
use crate::ingress::listen::ClientLimits;
use crate::ingress::{self, Ingress};

/// Process-wide data plane settings (runtime knobs, never from manifests).
#[derive(Clone, Debug)]
pub struct DataPlaneOptions {
    /// The largest request body the ingress reads, in bytes.
    pub max_body_size: usize,
    /// Events in flight per trigger unless its `weft.dev/max-in-flight` says otherwise.
    pub max_in_flight: usize,
    /// The delivery of a trigger when neither it nor its broker has `spec.delivery`.
    pub default_delivery: DeliveryConfig,
    /// What one client may hold: connections, header, body and idle time, header fields.
    pub limits: ClientLimits,
}

impl Default for DataPlaneOptions {
    fn default() -> Self {
        DataPlaneOptions {
            max_body_size: 1024 * 1024,
            max_in_flight: 256,
            default_delivery: DeliveryConfig::broker_default(),
            limits: ClientLimits::default(),
        }
    }
}

/// Runs brokers and triggers on one channel.
pub struct DataPlane {
    channel: Arc<dyn Channel>,
    ingress: Arc<Ingress>,
    client: delivery::DeliveryClient,
    options: DataPlaneOptions,
    /// Running dispatchers by trigger.
    running: Mutex<HashMap<ObjectKey, RunningTrigger>>,
    /// Counters by trigger; they outlive restarts of a trigger's dispatcher.
    stats: Mutex<HashMap<ObjectKey, Arc<TriggerStats>>>,
}

struct RunningTrigger {
    broker: ObjectKey,
    task: JoinHandle<()>,
}

impl DataPlane {
    /// Creates a data plane over a channel.
    pub fn new(channel: Arc<dyn Channel>, options: DataPlaneOptions) -> Self {
        DataPlane {
            ingress: Arc::new(Ingress::new(
                channel.clone(),
                options.max_body_size,
                options.limits.clone(),
            )),
            channel,
            client: delivery::http_client(),
            options,
            running: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
        }
    }

    /// The delivery of a trigger when neither it nor its broker has `spec.delivery`.
    pub fn default_delivery(&self) -> &DeliveryConfig {
        &self.options.default_delivery
    }

    /// The channel events are stored in.
    pub fn channel(&self) -> &Arc<dyn Channel> {
        &self.channel
    }

    /// The ingress and health routes.
    pub fn router(&self) -> Router {
        ingress::router(self.ingress.clone())
    }

    /// The health routes alone (`/healthz`, `/readyz`, `/metrics`), for a process that
    /// accepts no events.
    pub fn health_router(&self) -> Router {
        ingress::health_router(self.ingress.clone())
    }

    /// Marks the data plane ready for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ingress.set_ready(ready);
    }

    /// Creates the broker's log if needed and starts accepting its events.
    pub async fn apply_broker(&self, broker: &ObjectKey) -> Result<(), BrokerError> {
        self.channel
            .ensure_log(broker)
            .await
            .map_err(|source| BrokerError::Channel {
                object: broker.clone(),
                source,
            })?;
        self.ingress.add_broker(broker);
        Ok(())
    }

    /// Stops accepting events for the broker and stops its triggers; its log and their
    /// cursors stay (a data-plane replica whose broker left the desired state: the control
    /// plane deletes the storage).
    pub async fn stop_broker(&self, broker: &ObjectKey) {
        self.ingress.remove_broker(broker);
        let on_broker: Vec<ObjectKey> = self
            .lock_running()
            .iter()
            .filter(|(_, r)| r.broker == *broker)
            .map(|(k, _)| k.clone())
            .collect();
        for trigger in on_broker {
            self.stop_trigger(&trigger).await;
        }
    }

    /// Stops accepting events for the broker, stops its triggers and deletes its log.
    pub async fn delete_broker(&self, broker: &ObjectKey) -> Result<(), BrokerError> {
        self.stop_broker(broker).await;
        self.channel
            .delete_log(broker)
            .await
            .map_err(|source| BrokerError::Channel {
                object: broker.clone(),
                source,
            })
    }

    /// Starts (or restarts with a new configuration) a trigger's dispatcher. The trigger
    /// keeps its cursor across restarts; a new trigger starts at the end of the log.
    /// `delivery` is the effective DeliverySpec: the trigger's own, else its broker's.
    pub async fn run_trigger(
        &self,
        trigger: &TriggerConfig,
        delivery: &DeliveryConfig,
    ) -> Result<(), BrokerError> {
        let key = trigger.key.clone();
        let broker = trigger.broker_key();
        if !self.ingress.has_broker(&broker) {
            return Err(BrokerError::BrokerDoesNotExist { broker });
        }
        self.stop_trigger(&key).await;
        let subscription = self
            .channel
            .subscribe(&broker, &key)
            .await
            .map_err(|source| BrokerError::Channel {
                object: key.clone(),
                source,
            })?;
        let replies = Arc::new(BrokerReplies {
            broker: broker.clone(),
            trigger: key.clone(),
            channel: self.channel.clone(),
        });
        let sink = delivery::sink_service(
            self.client.clone(),
            trigger.subscriber.clone(),
            delivery,
            Some(replies),
        )
        .for_namespace(&key.namespace);
        let dead_letter = delivery.dead_letter_sink.as_ref().map(|url| {
            let sink = delivery::sink_service(self.client.clone(), url.clone(), delivery, None);
            (url.clone(), sink.for_namespace(&key.namespace))
        });
        let stats = self
            .lock_stats()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(TriggerStats::new(&key)))
            .clone();
        let dispatcher = Arc::new(Dispatcher {
            trigger: key.clone(),
            broker: broker.clone(),
            filter: trigger.filter.clone(),
            subscriber: trigger.subscriber.clone(),
            sink,
            dead_letter,
            order: trigger.order,
            window: Window::new(trigger.max_in_flight.unwrap_or(self.options.max_in_flight)),
            channel: self.channel.clone(),
            stats,
        });
        let task = tokio::spawn(dispatcher.run(subscription));
        self.lock_running()
            .insert(key, RunningTrigger { broker, task });
        Ok(())
    }

    /// Stops a trigger's dispatcher but keeps its cursor, so nothing is lost while it is
    /// not ready. In-flight events will be delivered again when it restarts.
    pub async fn stop_trigger(&self, trigger: &ObjectKey) {
        let running = self.lock_running().remove(trigger);
        if let Some(running) = running {
            running.task.abort();
            // Wait until the subscription is dropped so a new one resumes cleanly.
            let _ = running.task.await;
            tracing::info!(trigger = %trigger, "dispatcher stopped");
        }
    }

    /// Stops a trigger and forgets its cursor (the trigger was deleted).
    pub async fn delete_trigger(
        &self,
        trigger: &ObjectKey,
        broker: &ObjectKey,
    ) -> Result<(), BrokerError> {
        self.stop_trigger(trigger).await;
        self.lock_stats().remove(trigger);
        self.channel
            .delete_subscription(broker, trigger)
            .await
            .map_err(|source| BrokerError::Channel {
                object: trigger.clone(),
                source,
            })
    }

    /// Whether the trigger's dispatcher is running.
    pub fn is_running(&self, trigger: &ObjectKey) -> bool {
        self.lock_running().contains_key(trigger)
    }

    /// The trigger's outcome counters (zero if it never ran).
    pub fn stats(&self, trigger: &ObjectKey) -> TriggerStatsSnapshot {
        self.lock_stats()
            .get(trigger)
            .map(|s| s.snapshot())
            .unwrap_or_default()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, RunningTrigger>> {
        // Never held across an await; a poisoned map is still consistent (single ops).
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Arc<TriggerStats>>> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        for running in self.lock_running().values() {
            running.task.abort();
        }
    }
}
