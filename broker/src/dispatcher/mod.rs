//! The dispatcher: one task per trigger that reads its subscription, filters, delivers and
//! acknowledges.
//!
//! A reader half asks the subscription for as many events as the trigger has free
//! in-flight permits, so a slow or dead sink applies backpressure to its own trigger and
//! never grows memory. The dispatch half filters each event (non-matching ones are
//! acknowledged at once) and starts its delivery: unordered, every event goes at once;
//! ordered, one event per `partitionkey` is in flight and the rest wait in that key's lane.
//! An event is acknowledged only after its final outcome (delivered, dead-lettered, parked
//! or dropped for want of a dead-letter sink), so a crash redelivers it: at least once.
//! The permits come from the trigger's [`Window`], which narrows while its sink keeps
//! failing and widens again as events are delivered.

mod replies;
mod stats;
mod window;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{Id, JoinSet};
use url::Url;
use weft_channels::{Channel, Delivery, Subscription};
use weft_config::filter::Filter;
use weft_config::{DeliveryOrder, Event, ObjectKey};

use crate::delivery::{self, Failure, Outcome, SinkService};

pub(crate) use replies::BrokerReplies;
pub use stats::{TriggerStats, TriggerStatsSnapshot};
pub(crate) use window::Window;

/// Everything one trigger's dispatcher needs, built by the data plane from the manifests.
pub(crate) struct Dispatcher {
    pub(crate) trigger: ObjectKey,
    pub(crate) broker: ObjectKey,
    pub(crate) filter: Filter,
    pub(crate) subscriber: Url,
    /// Delivery to the subscriber, with retries and reply handling.
    pub(crate) sink: SinkService,
    /// Delivery to the dead-letter sink, with the same retry policy and no replies.
    pub(crate) dead_letter: Option<(Url, SinkService)>,
    pub(crate) order: DeliveryOrder,
    /// How many deliveries may run at once; narrows while the sink keeps failing.
    pub(crate) window: Window,
    pub(crate) channel: Arc<dyn Channel>,
    pub(crate) stats: Arc<TriggerStats>,
}

type Work = (Delivery, OwnedSemaphorePermit);

/// Batches between the reader and the dispatch half. The channel carries a batch per
/// `next`, not an event per slot: its buffer is allocated up front, and with a thousand
/// idle triggers a slot per event cost 8 KiB each.
const BATCHES_QUEUED: usize = 2;

impl Dispatcher {
    /// Runs until aborted. Aborting drops in-flight deliveries unacknowledged; the channel
    /// hands them out again to the next subscription.
    pub(crate) async fn run(self: Arc<Self>, subscription: Box<dyn Subscription>) {
        let permits = self.window.permits().clone();
        self.stats.set_window(self.window.size());
        let (tx, rx) = mpsc::channel::<Vec<Work>>(BATCHES_QUEUED);
        tracing::info!(trigger = %self.trigger, broker = %self.broker, order = ?self.order, "dispatcher started");
        tokio::join!(
            read(subscription, permits, tx, self.trigger.clone()),
            self.clone().dispatch(rx),
        );
    }

    async fn dispatch(self: Arc<Self>, mut rx: mpsc::Receiver<Vec<Work>>) {
        let mut tasks = JoinSet::new();
        // Ordered mode: the key of each running task, and the events waiting behind it.
        let mut running: HashMap<Id, String> = HashMap::new();
        let mut lanes: HashMap<String, VecDeque<Work>> = HashMap::new();
        loop {
            tokio::select! {
                batch = rx.recv() => {
                    let Some(batch) = batch else { break };
                    for (delivery, permit) in batch {
                        if !self.filter.matches(&delivery.event) {
                            self.stats.filtered();
                            delivery.ack.ack();
                            continue;
                        }
                        match self.order {
                            DeliveryOrder::Unordered => {
                                tasks.spawn(self.clone().deliver(delivery, permit));
                            }
                            DeliveryOrder::Ordered => {
                                let key = partition_key(&delivery.event);
                                match lanes.get_mut(&key) {
                                    Some(lane) => lane.push_back((delivery, permit)),
                                    None => {
                                        lanes.insert(key.clone(), VecDeque::new());
                                        let id = tasks.spawn(self.clone().deliver(delivery, permit)).id();
                                        running.insert(id, key);
                                    }
                                }
                            }
                        }
                    }
                }
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(trigger = %self.trigger, error = %e, "delivery task failed; its event will be redelivered after a restart");
                            e.id()
                        }
                    };
                    if let Some(key) = running.remove(&id) {
                        match lanes.get_mut(&key).and_then(VecDeque::pop_front) {
                            Some((delivery, permit)) => {
                                let id = tasks.spawn(self.clone().deliver(delivery, permit)).id();
                                running.insert(id, key);
                            }
                            None => {
                                lanes.remove(&key);
                            }
                        }
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Delivers one event to its final outcome, then acknowledges it. The outcome moves
    /// the trigger's in-flight window.
    async fn deliver(self: Arc<Self>, delivery: Delivery, permit: OwnedSemaphorePermit) {
        let Delivery { event, ack } = delivery;
        let event = Arc::new(event);
        let (finished, delivered) = match self.sink.deliver(event.clone()).await {
            Outcome::Delivered { .. } => {
                self.stats.delivered();
                (true, Some(true))
            }
            Outcome::Failed(failure) => {
                let congested = failure.retriable.then_some(false);
                (self.dead_letter(&event, failure).await, congested)
            }
        };
        if finished {
            ack.ack();
        }
        let window = self.window.finish(permit, delivered);
        let before = self.stats.set_window(window);
        let max = self.window.max();
        if before == max && window < max {
            tracing::warn!(trigger = %self.trigger, window, max, "deliveries keep failing; fewer run at once until the sink recovers");
        } else if before < max && window == max {
            tracing::info!(trigger = %self.trigger, window, "deliveries succeed again; the in-flight window is back to its maximum");
        }
    }

    /// Handles a final delivery failure; returns whether the event is finished with.
    async fn dead_letter(&self, event: &Event, failure: Failure) -> bool {
        let Some((dls_url, dls)) = &self.dead_letter else {
            tracing::warn!(trigger = %self.trigger, event = event.id(), reason = %failure.reason, attempts = failure.attempts, "delivery failed and the trigger has no dead-letter sink; event dropped");
            self.stats.dropped();
            return true;
        };
        let letter = delivery::dead_letter_event(event, &self.subscriber, &failure);
        match dls.deliver(letter).await {
            Outcome::Delivered { .. } => {
                tracing::warn!(trigger = %self.trigger, event = event.id(), reason = %failure.reason, attempts = failure.attempts, "event dead-lettered");
                self.stats.dead_lettered();
                true
            }
            Outcome::Failed(dls_failure) => {
                let reason = format!(
                    "delivery to {} failed ({}); dead-letter sink {} failed ({})",
                    self.subscriber, failure.reason, dls_url, dls_failure.reason
                );
                self.park(event, &reason).await
            }
        }
    }

    /// Keeps an event that nothing else will retry. If even that fails, the event stays
    /// unacknowledged and is delivered again after a restart.
    async fn park(&self, event: &Event, reason: &str) -> bool {
        let mut wait = Duration::from_millis(100);
        for _ in 0..5 {
            match self
                .channel
                .park(&self.broker, &self.trigger, event, reason)
                .await
            {
                Ok(()) => {
                    tracing::error!(trigger = %self.trigger, event = event.id(), reason, "event parked: neither the subscriber nor the dead-letter sink took it");
                    self.stats.parked();
                    return true;
                }
                Err(e) => {
                    tracing::warn!(trigger = %self.trigger, event = event.id(), error = %e, "parking failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        tracing::error!(trigger = %self.trigger, event = event.id(), reason, "could not park event; it stays unacknowledged and will be redelivered after a restart");
        false
    }
}

/// Feeds the dispatch half: waits for a free permit, then takes as many events as there
/// are permits.
async fn read(
    mut subscription: Box<dyn Subscription>,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Vec<Work>>,
    trigger: ObjectKey,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(first) = permits.clone().acquire_owned().await else {
            return;
        };
        let want = 1 + permits.available_permits();
        let batch = match subscription.next(want).await {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                batch
            }
            Err(e) => {
                tracing::warn!(trigger = %trigger, error = %e, "reading the subscription failed; retrying");
                drop(first);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut first = Some(first);
        let mut work = Vec::with_capacity(batch.len());
        for delivery in batch {
            // Only this loop takes permits and it asked for no more than were free, so a
            // permit is always there.
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed"),
                },
            };
            work.push((delivery, permit));
        }
        if !work.is_empty() && tx.send(work).await.is_err() {
            return;
        }
    }
}

/// The ordering key of an event: its `partitionkey` extension, or one shared lane.
fn partition_key(event: &Event) -> String {
    event
        .extension("partitionkey")
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}
