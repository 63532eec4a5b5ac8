//! The contract between Weft and its channels: the [`Channel`] and [`Subscription`]
//! traits, the [`Delivery`] a subscription hands out with its [`AckHandle`], the
//! [`ParkedEvent`] an operator inspects, and the [`ChannelOptions`] every backend takes.
//! Every backend implements it; nothing here knows a backend.

use std::time::SystemTime;

use async_trait::async_trait;
use weft_config::{Event, ObjectKey};

use crate::ChannelError;

/// A durable log per broker with a cursor per trigger.
///
/// Brokers and triggers are named by their [`ObjectKey`]. Implementations are shared
/// (`Arc<dyn Channel>`) by the ingress and every dispatcher.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Creates the broker's log if it does not exist yet.
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError>;

    /// Deletes the broker's log, its events and all its subscriptions. Live subscriptions
    /// on it end: their `next` fails with [`ChannelError::UnknownLog`]. Deleting a log
    /// that does not exist succeeds.
    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError>;

    /// The brokers that have a log, so that logs of brokers deleted while Weft was down
    /// can be removed.
    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError>;

    /// Appends events to the broker's log, in order. Returns only once they are durable:
    /// after `Ok`, the events survive a crash of this process.
    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError>;

    /// Opens the trigger's subscription. A trigger seen for the first time starts at the
    /// end of the log (it receives events appended from now on); a known trigger resumes
    /// after the last event it acknowledged in order.
    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError>;

    /// Gives the trigger a cursor at the end of the log if it has none yet, without
    /// subscribing; a known cursor stays where it is. Events appended from then on wait
    /// for the trigger even while no dispatcher runs it, so a controller calls this before
    /// it reports the trigger ready. The default opens a subscription and drops it.
    async fn ensure_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.subscribe(broker, trigger).await.map(drop)
    }

    /// Forgets a trigger's cursor; a trigger re-created later starts at the end of the log.
    /// Forgetting a cursor that does not exist (or of a broker without a log) succeeds.
    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError>;

    /// The triggers that have a cursor on the broker's log.
    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError>;

    /// How many events the trigger has not yet acknowledged in order (its backlog); 0 for
    /// a trigger that never subscribed, as it would start at the end of the log.
    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError>;

    /// Keeps an event that could be neither delivered nor dead-lettered, so that it is
    /// never silently dropped; an operator can inspect parked events.
    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError>;

    /// The events parked for the broker's triggers, oldest first. Parked events outlive
    /// the broker's log: deleting the log keeps them for the operator.
    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        let _ = broker;
        Err(ChannelError::Unsupported {
            operation: "listing parked events",
        })
    }

    /// Checks, without storing anything, whether the channel can store now: the ingress
    /// asks while its appends fail, to report ready again once storage is back. The
    /// default asks for the list of logs (for a server, that it answers).
    /// [`ChannelError::Unsupported`] means only an append can tell.
    async fn probe(&self) -> Result<(), ChannelError> {
        self.logs().await.map(drop)
    }

    /// Persists what is only held in memory (cursors of recent acknowledgements) and
    /// stops the channel's background work; later calls fail with
    /// [`ChannelError::Closed`]. A channel dropped without `close` loses at most the last
    /// moments of cursor progress, which only means redelivery.
    async fn close(&self) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// An event that could be neither delivered nor dead-lettered, kept for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The trigger that could not deliver it.
    pub trigger: ObjectKey,
    /// Why it was parked, as the dispatcher described it.
    pub reason: String,
    /// When it was parked.
    pub parked_at: SystemTime,
    /// The event, unchanged.
    pub event: Event,
}

/// One trigger's view of its broker's log.
#[async_trait]
pub trait Subscription: Send {
    /// Waits until events are available and returns between 1 and `max` of them, in log
    /// order. Events are handed out once per subscription; one that is never acknowledged
    /// is delivered again when the trigger is subscribed again (after a restart).
    /// `max == 0` returns an empty batch at once. Cancelling the future hands nothing out.
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError>;
}

/// An event handed to a dispatcher, with the handle that acknowledges it.
pub struct Delivery {
    /// The stored event.
    pub event: Event,
    /// Acknowledges the event once its final outcome is known.
    pub ack: AckHandle,
}

/// Acknowledges one delivered event. Dropping the handle without calling
/// [`AckHandle::ack`] leaves the event unacknowledged: it will be delivered again.
pub struct AckHandle(Box<dyn FnOnce() + Send + Sync>);

impl AckHandle {
    /// Wraps the backend's acknowledgement.
    pub fn new(f: impl FnOnce() + Send + Sync + 'static) -> Self {
        AckHandle(Box::new(f))
    }

    /// Marks the event as done: delivered, dead-lettered, parked or filtered out.
    pub fn ack(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckHandle")
    }
}

/// Options every backend understands.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// The most events one group commit writes.
    pub max_batch: usize,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions { max_batch: 1024 }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn traits_are_object_safe() {
        fn _channel(_: &dyn super::Channel) {}
        fn _subscription(_: &dyn super::Subscription) {}
    }
}
