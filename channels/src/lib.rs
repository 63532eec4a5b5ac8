//! Weft's channel layer: the durable, ordered log each broker writes to, with one
//! independent cursor per trigger.
//!
//! A channel is not a queue library: it stores CloudEvents for brokers and hands them to
//! trigger dispatchers, at least once. Everything backend-specific (offsets, consumer
//! groups, leases, SQL) stays inside one module per backend; the rest of Weft sees only
//! the [`Channel`] and [`Subscription`] traits below. Start with [`Channel`], then
//! [`sqlite`], the embedded default.
//!
//! # Layout
//! - [`Channel`], [`Subscription`], [`Delivery`]: the whole contract.
//! - [`open`]: picks a backend from a URL (`sqlite://…`, `memory://`).
//! - [`ack`]: cursor tracking when acknowledgements arrive out of order.
//! - [`memory`]: an in-process backend for tests.
//! - [`sqlite`]: the embedded default (feature `sqlite`).
//! - [`kafka`]: a topic per broker, a consumer group per trigger (feature `kafka`).
//! - [`postgres`]: PostgreSQL, shared by several processes (feature `postgres`).
//! - `sql`: what the SQL backends share: their group commit, parked-event rows.
//! - [`nats`]: a JetStream stream per broker, a durable consumer per trigger (feature `nats`).
//! - [`ChannelError`]: the crate's one error type.

pub mod ack;
mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod telemetry;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use weft_config::{Event, ObjectKey};

pub use error::ChannelError;

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

/// A channel URL fit for logs and error messages: passwords, tokens and secret query
/// values become `***`, in every host of a multi-host URL. Every error that names a
/// channel URL carries it in this form.
pub use weft_config::redact::redact;

/// Opens the channel a URL names: `sqlite://PATH` (a file, created if missing),
/// `postgres://…` (see [`postgres`]), `kafka://HOST:PORT[,…][?…]` (see [`kafka`]),
/// `nats://HOST:PORT[,…][?…]` (see [`nats`]) or `memory://`.
pub async fn open(url: &str, options: ChannelOptions) -> Result<Arc<dyn Channel>, ChannelError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    #[cfg(not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "kafka",
        feature = "nats"
    )))]
    let _ = options; // only the durable backends batch
    match scheme {
        "memory" => Ok(Arc::new(memory::MemoryChannel::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sqlite::SqliteChannel::open(url, options).await?)),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(Arc::new(kafka::KafkaChannel::open(url, options).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            postgres::PostgresChannel::open(url, options).await?,
        )),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(nats::NatsChannel::open(url, options).await?)),
        _ => Err(ChannelError::UnsupportedUrl { url: redact(url) }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn traits_are_object_safe() {
        fn _channel(_: &dyn super::Channel) {}
        fn _subscription(_: &dyn super::Subscription) {}
    }

    #[test]
    fn open_can_run_in_spawned_tasks() {
        fn send<T: Send>(_: &T) {}
        let opening = super::open("memory://", super::ChannelOptions::default());
        send(&opening);
    }

    #[test]
    fn a_password_in_the_channel_url_is_not_shown() {
        assert_eq!(
            super::redact("postgres://weft:s3cret@db:5432/weft?lease=PT10S"),
            "postgres://weft:***@db:5432/weft?lease=PT10S"
        );
        assert_eq!(super::redact("kafka://k:9092"), "kafka://k:9092");
        assert_eq!(
            super::redact("postgres://db/weft?user=weft&password=s3cret"),
            "postgres://db/weft?user=weft&password=***"
        );
        assert_eq!(
            super::redact("nats://u:s3cret@h1:4222,u:s3cret@h2:4222"),
            "nats://u:***@h1:4222,u:***@h2:4222"
        );
        assert_eq!(super::redact("nats://s3cret@h:4222"), "nats://***@h:4222");
        assert_eq!(super::redact("not a url"), "not a url");
    }

    #[tokio::test]
    async fn errors_name_the_url_without_its_password() {
        let Err(error) = super::open("nosuch://weft:s3cret@db/x", Default::default()).await else {
            panic!("an unknown scheme opens nothing");
        };
        let text = error.to_string();
        assert!(text.contains("nosuch://weft:***@db/x"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
