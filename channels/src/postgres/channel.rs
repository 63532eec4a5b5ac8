//! [`PostgresChannel`]: opening, status queries, and its [`Channel`] implementation: each
//! call a statement or a short transaction on the durable pool, appends through the
//! writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::info;
use weft_config::event::codec;
use weft_config::{Event, ObjectKey};

use super::consts::{BACKEND, NOTIFY_NEW, POOL_SIZE};
use super::consumer::{Consumers, PostgresSubscription};
use super::keeper::Keeper;
use super::progress::Message;
use super::shared::{Shared, lock};
use super::writer::AppendRequest;
use super::{listener, retry, url, writer};
use crate::error::BoxError;
use crate::sql::{ParkedRow, parked_event};
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription, telemetry};

/// How long a call waits for a connection before reporting the server unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Append requests waiting for the writer; further callers wait for room (backpressure).
const QUEUE: usize = 4096;
/// Where sqlx records the applied migrations; `weft_` like every table of this backend.
const MIGRATIONS_TABLE: &str = "weft_migrations";

/// A channel stored in PostgreSQL. See the [module documentation](super).
pub struct PostgresChannel {
    shared: Arc<Shared>,
    /// The live consumers of this process's subscriptions; the keeper writes their progress.
    consumers: Arc<Consumers>,
    /// The way to the writer; taken by `close`, which then waits for the writer to end.
    appends: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    keeper: Mutex<Option<JoinHandle<()>>>,
    /// Turns notifications into wake-ups; aborted on close and drop.
    listener: JoinHandle<()>,
}

impl Drop for PostgresChannel {
    fn drop(&mut self) {
        // Without `close`, progress not yet written is lost and leases are left to expire:
        // what a crash would do, and what at-least-once allows.
        self.listener.abort();
        if let Some(keeper) = lock(&self.keeper).take() {
            keeper.abort();
        }
    }
}

/// Applies the schema migrations, recording them in [`MIGRATIONS_TABLE`]. sqlx serializes
/// concurrent migrators with an advisory lock, so processes may start together.
async fn migrate(pool: &PgPool) -> Result<(), BoxError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await?;
    Ok(())
}

/// A name for this process in `weft_leases.holder`: its pid and when it opened the channel.
fn holder_name() -> String {
    let opened = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "pid {} at {}.{:09}",
        std::process::id(),
        opened.as_secs(),
        opened.subsec_nanos()
    )
}

impl PostgresChannel {
    /// Connects to the database a `postgres://` URL names, creates or upgrades Weft's
    /// tables, and starts the channel's tasks. Must be called within a Tokio runtime.
    pub async fn open(url: &str, options: ChannelOptions) -> Result<Self, ChannelError> {
        let settings = url::parse(url)?;
        let failed = |source: BoxError| ChannelError::open(url, source);
        let pool_options = |size| {
            PgPoolOptions::new()
                .max_connections(size)
                .min_connections(0)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A broken connection fails its statement and is replaced; checking every
                // connection before use would cost a round trip per statement.
                .test_before_acquire(false)
        };
        let pool = pool_options(POOL_SIZE)
            .connect_with(settings.connect.clone())
            .await
            .map_err(|e| failed(e.into()))?;
        let bookkeeping = pool_options(POOL_SIZE).connect_lazy_with(
            settings
                .connect
                .clone()
                .options([("synchronous_commit", "off")]),
        );
        migrate(&pool).await.map_err(failed)?;
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(|e| failed(e.into()))?;
        let schema = schema.ok_or_else(|| failed("the search path names no schema".into()))?;
        let (keeper_tx, keeper_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pool,
            bookkeeping,
            schema,
            holder: holder_name(),
            lease: settings.lease,
            ids: Mutex::default(),
            wakes: Mutex::default(),
            tails: Mutex::default(),
            keeper: keeper_tx,
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        });
        // Notifications get a connection of their own, outside the pool.
        let listening = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(settings.connect);
        let listener = tokio::spawn(listener::run(
            Arc::downgrade(&shared),
            listening,
            shared.schema.clone(),
        ));
        let consumers = Arc::new(Consumers::default());
        let keeper = Keeper::new(Arc::clone(&shared), Arc::clone(&consumers), keeper_rx);
        let keeper = tokio::spawn(keeper.run());
        let (appends, requests) = mpsc::channel(QUEUE);
        let (written, notices) = mpsc::unbounded_channel();
        // Ends after the writer, once it has sent what the writer wrote.
        tokio::spawn(writer::notify(shared.bookkeeping.clone(), notices));
        let writer = tokio::spawn(writer::run(
            Arc::clone(&shared),
            requests,
            options.max_batch.max(1),
            written,
        ));
        info!(schema = %shared.schema, lease = ?shared.lease, "postgres channel opened");
        Ok(PostgresChannel {
            shared,
            consumers,
            appends: Mutex::new(Some(appends)),
            writer: Mutex::new(Some(writer)),
            keeper: Mutex::new(Some(keeper)),
            listener,
        })
    }

    /// How many events the broker's log still stores (retention deletes the rest).
    pub async fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let count: i64 = retry::query(|| async move {
            sqlx::query_scalar(include_str!("sql/count_events.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_one(pool)
                .await
        })
        .await?;
        Ok(count as u64)
    }

    /// Writes acknowledged progress and applies retention now, rather than at the next
    /// periodic run.
    pub async fn compact(&self) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        self.shared.flush(true).await
    }

    /// How many group commits of appends this channel made.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Hands a request to the writer and waits for its answer.
    async fn send(
        &self,
        broker: &ObjectKey,
        broker_id: i64,
        bodies: Vec<Bytes>,
    ) -> Result<(), ChannelError> {
        let sender = lock(&self.appends).clone().ok_or(ChannelError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            broker: broker.clone(),
            log: broker_id,
            bodies,
            reply,
        };
        sender
            .send(request)
            .await
            .map_err(|_| ChannelError::Closed)?;
        answer.await.map_err(|_| ChannelError::Closed)?
    }

    /// Opens the trigger's cursor (at the end of the log if it is new); returns the
    /// broker's id.
    async fn cursor(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<i64, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let id: Option<i64> = retry::query(|| async move {
            sqlx::query_scalar(include_str!("sql/insert_cursor.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .fetch_optional(pool)
                .await
        })
        .await?;
        id.ok_or_else(|| ChannelError::UnknownLog {
            broker: broker.clone(),
        })
    }
}

impl std::fmt::Debug for PostgresChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresChannel")
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Channel for PostgresChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        retry::query(|| async move {
            sqlx::query(include_str!("sql/insert_broker.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .execute(pool)
                .await
        })
        .await?;
        // Another process may delete it in between; then appends report the log unknown.
        self.shared.lookup(broker).await.map(drop)
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let Some(id) = self.shared.lookup(broker).await? else {
            return Ok(());
        };
        let pool = &self.shared.pool;
        retry::query(|| async move {
            let mut tx = pool.begin().await?;
            // The broker first: that waits for its appenders, and stops new ones.
            sqlx::query(include_str!("sql/delete_broker.sql"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/delete_log_events.sql"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/notify_logs.sql"))
                .bind([id])
                .bind(NOTIFY_NEW)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await?;
        self.shared.forget_log(broker, id);
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(String, String)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_brokers.sql"))
                .fetch_all(pool)
                .await
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name)| ObjectKey::new(namespace, name))
            .collect())
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        let result = async {
            self.shared.check_open()?;
            let unknown = || ChannelError::UnknownLog {
                broker: broker.clone(),
            };
            let id = self.shared.broker_id(broker).await?.ok_or_else(unknown)?;
            if events.is_empty() {
                return Ok(());
            }
            let bodies: Vec<Bytes> = events.iter().map(codec::encode).collect();
            match self.send(broker, id, bodies.clone()).await {
                // The cached id may name a log deleted (and perhaps re-created) elsewhere.
                Err(ChannelError::UnknownLog { .. }) => match self.shared.lookup(broker).await? {
                    Some(again) if again != id => self.send(broker, again, bodies).await,
                    _ => Err(unknown()),
                },
                result => result,
            }
        }
        .await;
        if let Err(error) = &result
            && !matches!(error, ChannelError::Append { .. })
        {
            // The writer counts the failures of group commits itself.
            telemetry::append_failed(BACKEND, error);
        }
        result
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let id = self.cursor(broker, trigger).await?;
        Ok(Box::new(PostgresSubscription::new(
            Arc::clone(&self.shared),
            &self.consumers,
            broker.clone(),
            id,
            trigger.clone(),
        )))
    }

    async fn ensure_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.cursor(broker, trigger).await.map(drop)
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        retry::query(|| async move {
            sqlx::query(include_str!("sql/delete_cursor.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .execute(pool)
                .await
        })
        .await?;
        Ok(())
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(i64, Option<String>, Option<String>)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_cursors.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await?;
        if rows.is_empty() {
            return Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            });
        }
        Ok(rows
            .into_iter()
            .filter_map(|(_, namespace, name)| Some(ObjectKey::new(namespace?, name?)))
            .collect())
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        self.shared.check_open()?;
        // This process's acknowledgements count at once, not only after the next write.
        self.shared.flush(false).await?;
        let pool = &self.shared.pool;
        let row: Option<(i64, Option<i64>)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/backlog.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .fetch_optional(pool)
                .await
        })
        .await?;
        match row {
            None => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
            Some((_, None)) => Ok(0),
            Some((head, Some(seq))) => Ok(head.saturating_sub(seq).max(0) as u64),
        }
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let body = codec::encode(event);
        let body = body.as_ref();
        // Tried again on a broken connection: at worst the event is parked twice.
        retry::query(|| async move {
            sqlx::query(include_str!("sql/insert_parked.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .bind(reason)
                .bind(body)
                .execute(pool)
                .await
        })
        .await?;
        telemetry::parked(BACKEND);
        Ok(())
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<ParkedRow> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_parked.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await?;
        rows.into_iter()
            .map(|row| parked_event(broker, row))
            .collect()
    }

    async fn close(&self) -> Result<(), ChannelError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Appends already queued are still written and answered.
        drop(lock(&self.appends).take());
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        // The keeper writes the last progress and releases every lease still held.
        let (reply, done) = oneshot::channel();
        if self.shared.keeper.send(Message::Close(reply)).is_ok() {
            let _ = done.await;
        }
        let keeper = lock(&self.keeper).take();
        if let Some(keeper) = keeper {
            let _ = keeper.await;
        }
        self.listener.abort();
        // Dropping the wake senders ends waiting subscriptions, which see `closed`.
        lock(&self.shared.wakes).clear();
        self.shared.pool.close().await;
        self.shared.bookkeeping.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_the_process() {
        assert!(holder_name().starts_with(&format!("pid {} at ", std::process::id())));
    }
}
