//! The backends the conformance suite runs against, and helpers for its test bodies.
//!
//! Adding a backend: write a factory returning `Option<Box<dyn Backend>>` (`None` skips
//! the suite where the server is absent, unless `WEFT_REQUIRE_BACKENDS=1`), then add one
//! `conformance!` line in `conformance.rs`. Servers' URLs come from [`Server::url`], test
//! events from [`event`] (or [`bare_event`]): nowhere else.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use weft_channels::memory::MemoryChannel;
#[cfg(feature = "postgres")]
use weft_channels::postgres::PostgresChannel;
#[cfg(feature = "sqlite")]
use weft_channels::sqlite::SqliteChannel;
use weft_channels::{Channel, ChannelOptions, Delivery, Subscription};
use weft_config::{AttributeValue, Event, ObjectKey};

mod servers;
#[allow(unused_imports)] // not every test binary uses each
pub use servers::{Server, backends_required, clean_up, opened, runtime, unique_name, with_params};

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
#[allow(unused_imports)] // not every test binary runs the suite
pub use nats::nats;
#[cfg(feature = "kafka")]
pub mod kafka;

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
    /// Whether the backend keeps an acknowledgement per event (JetStream) rather than a
    /// cursor: then only the events never acknowledged are delivered again and count in
    /// the backlog, not everything above the lowest unacknowledged one.
    fn acks_each_event(&self) -> bool {
        false
    }
    /// Whether retention deletes the events every cursor has passed (what `compact`
    /// applies). Kafka keeps records for its own retention time instead; there the
    /// retention bodies check only that nothing a cursor has not passed is gone.
    fn deletes_consumed_events(&self) -> bool {
        true
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

/// A schema of its own on the test server, so that tests run in parallel; dropped (with
/// everything in it) when this value is.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    /// The server's URL as configured.
    pub admin_url: String,
    /// The schema, also the `application_name` of the channel's connections.
    pub name: String,
    /// A channel URL whose tables live in this schema.
    pub url: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// Creates a fresh schema; `None` when no server is configured (see [`Server::url`]).
    pub async fn create() -> Option<PgSchema> {
        use sqlx::Connection;
        let admin_url = Server::Postgres.url()?;
        let name = unique_name("weft_test_");
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to WEFT_POSTGRES_URL {admin_url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        let url = with_params(
            &admin_url,
            &format!("options=-c%20search_path%3D{name}&application_name={name}"),
        );
        Some(PgSchema {
            admin_url,
            name,
            url,
        })
    }

    /// Runs one statement on the server, outside any channel.
    pub async fn admin(&self, statement: String) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        clean_up(move || async move {
            let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await else {
                return;
            };
            for statement in [
                "SET lock_timeout = '10s'".to_owned(),
                format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
            ] {
                if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                {
                    eprintln!("cannot drop test schema {name}: {error}");
                    return;
                }
            }
            let _ = admin.close().await;
        });
    }
}

/// The PostgreSQL backend, in a schema of its own.
#[cfg(feature = "postgres")]
pub struct Postgres {
    channel: Arc<PostgresChannel>,
    /// Declared after the channel, so that the channel is dropped first.
    schema: PgSchema,
}

/// The PostgreSQL backend on the server `WEFT_POSTGRES_URL` names, with a small
/// `max_batch` so that batches get split.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Box<dyn Backend>> {
    let schema = PgSchema::create().await?;
    let channel = Arc::new(PostgresChannel::open(&schema.url, options()).await.unwrap());
    Some(Box::new(Postgres { channel, schema }))
}

#[cfg(feature = "postgres")]
#[async_trait]
impl Backend for Postgres {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }

    async fn reopen(&mut self) {
        self.channel.close().await.unwrap();
        self.channel = Arc::new(
            PostgresChannel::open(&self.schema.url, options())
                .await
                .unwrap(),
        );
    }

    async fn compact(&self) {
        self.channel.compact().await.unwrap();
    }

    async fn stored_events(&self, broker: &ObjectKey) -> u64 {
        self.channel.stored_events(broker).await.unwrap()
    }

    async fn open_second(&self) -> Option<Arc<dyn Channel>> {
        let second = PostgresChannel::open(&self.schema.url, options())
            .await
            .unwrap();
        Some(Arc::new(second))
    }
}

/// A broker or trigger key in the default namespace.
pub fn key(name: &str) -> ObjectKey {
    ObjectKey::new("default", name)
}

/// An event with id `id` and nothing else set: what every test event starts from.
pub fn bare_event(id: impl Into<String>) -> Event {
    Event::new(id, "/conformance", "dev.weft.test").unwrap()
}

/// Event number `i`: id `e{i}`, with data and an extension so the whole event round-trips.
pub fn event(i: usize) -> Event {
    let mut event = bare_event(format!("e{i}"));
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
