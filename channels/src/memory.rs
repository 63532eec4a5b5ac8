//! An in-process channel: the same semantics as the durable backends, minus durability.
//! Other crates' unit tests use it (`memory://`).
//!
//! # Guarantees
//! - **Ordering**: a broker's events get sequence numbers 1, 2, 3, … in append order, and
//!   every subscription hands them out in that order.
//! - **At-least-once, within the process**: an event handed out but not acknowledged is
//!   handed out again to the trigger's next subscription. Nothing survives the process:
//!   `append` returns once the events are in memory.
//! - **Redelivery** is the same event again (same `id`), with no marker.
//! - **Replicas** do not share anything: each process has its own channel.
//! - **Retention**: on every append, events that every cursor of the broker has passed are
//!   dropped; a broker without cursors keeps none.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::watch;
use weft_config::{Event, ObjectKey};

use crate::ack::{LiveCursor, SharedTracker};
use crate::{Channel, ChannelError, Delivery, ParkedEvent, Subscription, telemetry};

const BACKEND: &str = "memory";

/// A channel held in memory. Cloning shares the same logs.
#[derive(Clone, Debug, Default)]
pub struct MemoryChannel {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    logs: HashMap<ObjectKey, Log>,
    /// Parked events with their broker; they outlive the broker's log.
    parked: Vec<(ObjectKey, ParkedEvent)>,
    /// Tells a deleted and re-created log from the one a subscription was opened on.
    next_log_id: u64,
    closed: bool,
}

#[derive(Debug)]
struct Log {
    id: u64,
    /// The highest sequence number appended.
    head: u64,
    /// Publishes `head` to waiting subscriptions; dropped with the log, which ends them.
    head_tx: watch::Sender<u64>,
    /// The sequence number of `events[0]`.
    first: u64,
    events: VecDeque<Event>,
    cursors: HashMap<ObjectKey, Cursor>,
}

#[derive(Debug)]
struct Cursor {
    /// Every event up to and including this one is done (the "persisted" cursor).
    stored: u64,
    /// The trackers of this trigger's subscriptions.
    live: LiveCursor,
}

impl Log {
    /// Folds acknowledgements into the cursors and drops what every cursor has passed.
    fn retain(&mut self) {
        let mut lowest = self.head;
        for cursor in self.cursors.values_mut() {
            if let Some(committed) = cursor.live.take_dirty() {
                cursor.stored = cursor.stored.max(committed);
            }
            lowest = lowest.min(cursor.stored);
        }
        while self.first <= lowest && self.events.pop_front().is_some() {
            self.first += 1;
        }
    }
}

impl MemoryChannel {
    /// An empty channel.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, ChannelError> {
        lock(&self.state)
    }

    /// How many events the broker's log still holds (retention drops the rest).
    pub fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        let mut state = self.state()?;
        Ok(log_mut(&mut state, broker)?.events.len() as u64)
    }

    /// Applies retention now rather than on the next append.
    pub fn compact(&self) -> Result<(), ChannelError> {
        let mut state = self.state()?;
        state.logs.values_mut().for_each(Log::retain);
        Ok(())
    }
}

fn lock(state: &Mutex<State>) -> Result<MutexGuard<'_, State>, ChannelError> {
    // Nothing panics while the lock is held, so a poisoned state is still consistent.
    let state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.closed {
        return Err(ChannelError::Closed);
    }
    Ok(state)
}

fn log_mut<'a>(state: &'a mut State, broker: &ObjectKey) -> Result<&'a mut Log, ChannelError> {
    state
        .logs
        .get_mut(broker)
        .ok_or_else(|| ChannelError::UnknownLog {
            broker: broker.clone(),
        })
}

#[async_trait]
impl Channel for MemoryChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        let mut state = self.state()?;
        if !state.logs.contains_key(broker) {
            state.next_log_id += 1;
            let log = Log {
                id: state.next_log_id,
                head: 0,
                head_tx: watch::Sender::new(0),
                first: 1,
                events: VecDeque::new(),
                cursors: HashMap::new(),
            };
            state.logs.insert(broker.clone(), log);
        }
        Ok(())
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.state()?.logs.remove(broker);
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        let mut logs: Vec<_> = self.state()?.logs.keys().cloned().collect();
        logs.sort();
        Ok(logs)
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        let mut state = self.state()?;
        let log = match log_mut(&mut state, broker) {
            Ok(log) => log,
            Err(error) => {
                telemetry::append_failed(BACKEND, &error);
                return Err(error);
            }
        };
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len();
        log.events.extend(events);
        log.head += count as u64;
        log.head_tx.send_replace(log.head);
        log.retain();
        telemetry::appended(BACKEND, count);
        Ok(())
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let mut state = self.state()?;
        let log = log_mut(&mut state, broker)?;
        let head = log.head;
        let cursor = log.cursors.entry(trigger.clone()).or_insert(Cursor {
            stored: head,
            live: LiveCursor::default(),
        });
        let tracker = cursor.live.open(cursor.stored);
        Ok(Box::new(MemorySubscription {
            state: Arc::clone(&self.state),
            broker: broker.clone(),
            log_id: log.id,
            head_rx: log.head_tx.subscribe(),
            tracker,
        }))
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        if let Some(log) = self.state()?.logs.get_mut(broker) {
            log.cursors.remove(trigger);
        }
        Ok(())
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        let mut state = self.state()?;
        let mut triggers: Vec<_> = log_mut(&mut state, broker)?
            .cursors
            .keys()
            .cloned()
            .collect();
        triggers.sort();
        Ok(triggers)
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        let mut state = self.state()?;
        let log = log_mut(&mut state, broker)?;
        Ok(log.cursors.get(trigger).map_or(0, |cursor| {
            let committed = cursor.live.committed().unwrap_or(0).max(cursor.stored);
            log.head.saturating_sub(committed)
        }))
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        let parked = ParkedEvent {
            trigger: trigger.clone(),
            reason: reason.to_owned(),
            parked_at: SystemTime::now(),
            event: event.clone(),
        };
        self.state()?.parked.push((broker.clone(), parked));
        telemetry::parked(BACKEND);
        Ok(())
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        let state = self.state()?;
        Ok(state
            .parked
            .iter()
            .filter(|(b, _)| b == broker)
            .map(|(_, parked)| parked.clone())
            .collect())
    }

    async fn close(&self) -> Result<(), ChannelError> {
        let mut state = self.state()?;
        state.closed = true;
        // Dropping the logs drops their head senders, which wakes waiting subscriptions.
        state.logs.clear();
        Ok(())
    }
}

/// A trigger's subscription on a [`MemoryChannel`].
struct MemorySubscription {
    state: Arc<Mutex<State>>,
    broker: ObjectKey,
    /// The log this subscription was opened on; a re-created log is another one.
    log_id: u64,
    head_rx: watch::Receiver<u64>,
    tracker: SharedTracker,
}

impl MemorySubscription {
    /// Hands out up to `max` events after the last one handed out, if there are any.
    fn take(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        let state = lock(&self.state)?;
        let log = state
            .logs
            .get(&self.broker)
            .filter(|log| log.id == self.log_id)
            .ok_or_else(|| ChannelError::UnknownLog {
                broker: self.broker.clone(),
            })?;
        // Appends publish under the same lock, so nothing is missed between here and the
        // wait that follows an empty result.
        self.head_rx.mark_unchanged();
        let from = (self.tracker.last_handed() + 1).max(log.first);
        let start = (from - log.first) as usize;
        let deliveries = log
            .events
            .iter()
            .skip(start)
            .take(max)
            .zip(from..)
            .map(|(event, seq)| Delivery {
                event: event.clone(),
                ack: self.tracker.hand_out(seq),
            })
            .collect();
        drop(state);
        Ok(deliveries)
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            let deliveries = self.take(max)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            // An error means the log was dropped; the next `take` says why.
            let _ = self.head_rx.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        Event::new(format!("e{i}"), "/test", "test.event").unwrap()
    }

    #[tokio::test]
    async fn next_never_returns_more_than_max() {
        let ch = MemoryChannel::new();
        let broker = ObjectKey::new("default", "b");
        ch.ensure_log(&broker).await.unwrap();
        let mut sub = ch
            .subscribe(&broker, &ObjectKey::new("default", "t"))
            .await
            .unwrap();
        ch.append(&broker, (1..=10).map(event).collect())
            .await
            .unwrap();
        assert!(sub.next(0).await.unwrap().is_empty());
        let mut ids = Vec::new();
        for max in [3, 1, 4, 100] {
            let batch = sub.next(max).await.unwrap();
            assert!(
                !batch.is_empty() && batch.len() <= max,
                "{max}: {}",
                batch.len()
            );
            ids.extend(batch.into_iter().map(|d| d.event.id().to_owned()));
        }
        assert_eq!(ids, (1..=10).map(|i| format!("e{i}")).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn closed_channel_refuses_work_and_ends_subscriptions() {
        let ch = MemoryChannel::new();
        let broker = ObjectKey::new("default", "b");
        ch.ensure_log(&broker).await.unwrap();
        let mut sub = ch
            .subscribe(&broker, &ObjectKey::new("default", "t"))
            .await
            .unwrap();
        let waiting = tokio::spawn(async move { sub.next(1).await.map(|d| d.len()) });
        ch.close().await.unwrap();
        assert!(matches!(waiting.await.unwrap(), Err(ChannelError::Closed)));
        let err = ch.append(&broker, vec![event(1)]).await.unwrap_err();
        assert!(matches!(err, ChannelError::Closed));
    }
}
