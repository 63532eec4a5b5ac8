//! The backends the conformance suite runs against, and helpers for its test bodies.
//!
//! Adding a backend: write a factory returning `Option<Box<dyn Backend>>` (`None` skips
//! the suite where the server is absent, unless `WEFT_REQUIRE_BACKENDS=1`), then add one
//! `conformance!` line in `conformance.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use weft_channels::memory::MemoryChannel;
#[cfg(feature = "sqlite")]
use weft_channels::sqlite::SqliteChannel;
use weft_channels::{Channel, ChannelOptions, Delivery, Subscription};
use weft_config::{AttributeValue, Event, ObjectKey};

/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be confident that something does not happen.
pub const IDLE: Duration = Duration::from_millis(150);

/// A channel under test, with the backend-specific operations test bodies need.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The channel under test (the current one after a `reopen`).
    fn channel(&self) -> Arc<dyn Channel>;
    /// Closes the channel and opens the same store again, as a restart would.
    async fn reopen(&mut self);
    /// Persists cursors and applies retention now.
    async fn compact(&self);
    /// How many events the broker's log still stores.
    async fn stored_events(&self, broker: &ObjectKey) -> u64;
    /// A second channel on the same store, opened as another Weft process would open it,
    /// so that two processes can share one trigger. `None` (the default) where the store
    /// cannot be shared between processes; bodies that need one then skip.
    async fn open_second(&self) -> Option<Arc<dyn Channel>> {
        None
    }
}

/// The in-memory backend; `reopen` keeps the same channel (it has nothing to restart).
pub struct Memory(Arc<MemoryChannel>);

/// The in-memory backend.
pub async fn memory() -> Option<Box<dyn Backend>> {
    Some(Box::new(Memory(Arc::new(MemoryChannel::new()))))
}

#[async_trait]
impl Backend for Memory {
    fn channel(&self) -> Arc<dyn Channel> {
        self.0.clone()
    }

    async fn reopen(&mut self) {}

    async fn compact(&self) {
        self.0.compact().unwrap();
    }

    async fn stored_events(&self, broker: &ObjectKey) -> u64 {
        self.0.stored_events(broker).unwrap()
    }
}

/// The SQLite backend on a file in a fresh temporary directory.
#[cfg(feature = "sqlite")]
pub struct Sqlite {
    url: String,
    channel: Arc<SqliteChannel>,
    /// Removed when the test ends.
    _dir: tempfile::TempDir,
}

/// The SQLite backend, with a small `max_batch` so that batches get split.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Option<Box<dyn Backend>> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/weft.db", dir.path().display());
    let channel = Arc::new(SqliteChannel::open(&url, options()).await.unwrap());
    Some(Box::new(Sqlite {
        url,
        channel,
        _dir: dir,
    }))
}

fn options() -> ChannelOptions {
    ChannelOptions { max_batch: 64 }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl Backend for Sqlite {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }

    async fn reopen(&mut self) {
        self.channel.close().await.unwrap();
        self.channel = Arc::new(SqliteChannel::open(&self.url, options()).await.unwrap());
    }

    async fn compact(&self) {
        self.channel.compact().await.unwrap();
    }

    async fn stored_events(&self, broker: &ObjectKey) -> u64 {
        self.channel.stored_events(broker).await.unwrap()
    }
}

/// A broker or trigger key in the default namespace.
pub fn key(name: &str) -> ObjectKey {
    ObjectKey::new("default", name)
}

/// Event number `i`: id `e{i}`, with data and an extension so the whole event round-trips.
pub fn event(i: usize) -> Event {
    let mut event = Event::new(format!("e{i}"), "/conformance", "dev.weft.test").unwrap();
    event
        .set_extension("n", AttributeValue::Integer(i as i32))
        .unwrap();
    event
        .set_datacontenttype(Some("application/json".into()))
        .unwrap();
    event.set_data(Some(Bytes::from(format!("{{\"n\":{i}}}"))));
    event
}

/// Event number `i` with the `partitionkey` extension set to `partition`.
pub fn keyed_event(i: usize, partition: &str) -> Event {
    let mut event = event(i);
    event
        .set_extension("partitionkey", AttributeValue::String(partition.into()))
        .unwrap();
    event
}

/// The ids of `events` grouped by their `partitionkey`, each group in the given order.
pub fn ids_per_key<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, Vec<String>> {
    let mut lanes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        let lane = event
            .extension("partitionkey")
            .map(|v| v.as_str().into_owned())
            .unwrap_or_default();
        lanes.entry(lane).or_default().push(event.id().to_owned());
    }
    lanes
}

/// Events `from..=to`.
pub fn events(from: usize, to: usize) -> Vec<Event> {
    (from..=to).map(event).collect()
}

/// The ids of the delivered events, in order.
pub fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.event.id().to_owned()).collect()
}

/// The ids `e{from}..=e{to}`.
pub fn id_range(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|i| format!("e{i}")).collect()
}

/// Exactly `n` deliveries, gathered over as many `next` calls as it takes.
pub async fn take(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(WAIT, sub.next(n - got.len()))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", got.len()))
            .unwrap();
        assert!(!batch.is_empty() && batch.len() <= n - got.len());
        got.extend(batch);
    }
    got
}

/// Asserts that `next` has nothing to hand out.
pub async fn assert_idle(sub: &mut Box<dyn Subscription>) {
    if let Ok(batch) = tokio::time::timeout(IDLE, sub.next(100)).await {
        panic!("expected no events, got {:?}", batch.map(|b| ids(&b)));
    }
}
