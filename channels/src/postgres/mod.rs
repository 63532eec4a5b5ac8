//! A channel in PostgreSQL, shared by every Weft process that opens the same database.
//!
//! # URL
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` (or `postgresql://`). Query
//! parameters are those of sqlx (`sslmode`, `options=-c search_path=weft`,
//! `application_name`, …) plus Weft's own:
//! - `lease=PT30S` (ISO-8601, default 30 s): how long a consumer's claim on a range of
//!   events outlives its last renewal; after a crash, that is how long its unfinished
//!   events wait before another process delivers them.
//!
//! Weft creates its tables itself (migrations in `migrations/postgres/`, recorded in
//! `weft_migrations`); every name starts with `weft_`, so a database or schema can be shared
//! with other software. Several processes may open the same database at once. Tested with
//! PostgreSQL 15; the SQL needs 10 or newer.
//!
//! # Guarantees
//! - **Durability**: `append` returns once its transaction is committed (with the server's
//!   `synchronous_commit`, by default on: flushed to the server's WAL). Concurrent appends
//!   in a process share one transaction (group commit, see `writer`); a lone append
//!   commits at once. So do new cursors, parked events and deletions. The bookkeeping of
//!   leases and cursors commits with `synchronous_commit = off` (it does not wait for the
//!   server's disk): a server crash may lose its last moments, which only means
//!   redelivery; the server recovers a prefix of its log, so that bookkeeping is never
//!   ahead of the appends it describes.
//! - **Ordering**: a broker's events are numbered 1, 2, 3, … in commit order, across
//!   processes: an append locks the broker's row (`head = head + n`), so appenders of one
//!   broker queue there and a committed head means every event up to it is committed.
//!   Numbering continues across restarts and retention. A consumer hands out its claimed
//!   ranges in order, so one consumer sees every partition key in append order; events
//!   taken over from a vanished consumer (below) come back after newer ones.
//! - **At-least-once**: a trigger's work is split into *leases* (table `weft_leases`):
//!   ranges of events a consumer (one subscription) claimed, renewed while it lives. A
//!   lease shrinks from its low end as its events are acknowledged in order and is deleted
//!   when all are done. The cursor (`weft_cursors.seq`, "everything up to here is done")
//!   is just below the trigger's lowest lease; backlog and retention count from it.
//!   Progress is written every 50 ms, when `backlog` is asked, and on close; a crash loses
//!   at most that much of it, which only means redelivery.
//! - **Redelivery** is the same event again (same `id`), with no marker. It happens to the
//!   unacknowledged events of a lease whose consumer ended (the subscription and its
//!   unacknowledged deliveries were dropped: the lease is released at once) or vanished
//!   (process killed, or cut off from the database for longer than the lease: another
//!   consumer takes the lease over once it expires). Events acknowledged out of order
//!   above an unacknowledged one are delivered again with it.
//! - **Replicas** share a trigger: every subscription of it, in any process, claims the
//!   next range (optimistically: the claim applies only if the trigger's `claimed` mark is
//!   unchanged) or takes over a released or expired lease (`FOR UPDATE SKIP LOCKED`), so in
//!   normal operation each event goes to exactly one of them. Ranges are at least 32 events,
//!   or what `next` asked for. Ordered delivery holds per consumer, not across them.
//! - **Wake-ups**: after each group commit the writer notifies `weft_events`
//!   (`LISTEN/NOTIFY`), which wakes the log's waiting subscriptions in every process; so
//!   does a released lease.
//!   Idle subscriptions issue no queries: once a second, each process's keeper looks at
//!   the logs it has subscriptions on and wakes those whose head moved or that have a lease
//!   to take over, which is how expired leases are noticed (about a second after they
//!   expire) and what covers for notifications missed while the listening connection was
//!   re-established.
//! - **Reads**: a subscription takes the events this process appended lately (per log with
//!   subscriptions here, the latest 4096, at most 2 MiB) from memory, and the rest from the
//!   database; with many triggers on a broker that spares a read per trigger and event.
//! - **Unavailability**: when the server cannot be reached, calls fail within a few seconds
//!   with a retriable error ([`ChannelError::Unavailable`] or [`ChannelError::Append`]);
//!   the pools reconnect, the background tasks retry, and the channel recovers by itself.
//!   After a server restart, a statement that finds its pooled connection dead is tried
//!   again on another, so callers see nothing once the server is back (an append whose
//!   connection broke after its commit is then stored twice: at least once).
//! - **Retention**: twice a second each process deletes, per log, events that every cursor
//!   has passed, oldest first and at most 4096 per log per run; a broker without cursors
//!   keeps none (a new trigger starts at the end). Parked events are kept until an
//!   operator removes them, even after their broker is deleted.
//! - A subscription whose trigger's cursor is deleted while it runs hands out nothing more.
//!
//! # Layout
//! - [`PostgresChannel`] (here): opening, status queries; `channel`: its
//!   [`Channel`](crate::Channel) implementation.
//! - `shared`: what the channel, its subscriptions and its tasks share; `tail`: the events
//!   this process appended lately, kept for its subscriptions.
//! - `url`: the URL and its parameters; `retry`: statements tried again on a dead
//!   connection, and database errors as [`ChannelError`]s.
//! - `writer`: the task that appends (group commit).
//! - `consumer`: a trigger's subscription, its leases and acknowledgements.
//! - `progress`: what consumers and the channel send the keeper.
//! - `keeper`: the task that records progress, renews and releases leases, and applies
//!   retention.
//! - `listener`: `LISTEN weft_events`, turning notifications into wake-ups.
//! - `migrations/postgres/` (crate root) holds the schema, `sql/` the statements.

mod channel;
mod consumer;
mod keeper;
mod listener;
mod progress;
mod retry;
mod shared;
mod tail;
mod url;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::info;
use weft_config::ObjectKey;

use self::consumer::Consumers;
use self::keeper::Keeper;
use self::shared::{Shared, lock};
use self::writer::AppendRequest;
use crate::error::BoxError;
use crate::{ChannelError, ChannelOptions};

const BACKEND: &str = "postgres";
/// The `LISTEN/NOTIFY` channel; payloads are `<schema>:<broker id>` followed by
/// [`NOTIFY_NEW`] or [`NOTIFY_TAKEOVER`].
const NOTIFY_CHANNEL: &str = "weft_events";
/// The payload's end when a log has new events (or was deleted).
const NOTIFY_NEW: &str = "";
/// The payload's end when a lease of the log was released.
const NOTIFY_TAKEOVER: &str = "!";
/// Connections in each of the two pools (see [`Shared::pool`] and
/// [`Shared::bookkeeping`]).
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection before reporting the server unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Append requests waiting for the writer; further callers wait for room (backpressure).
const QUEUE: usize = 4096;
/// Where sqlx records the applied migrations; `weft_` like every table of this backend.
const MIGRATIONS_TABLE: &str = "weft_migrations";

/// A channel stored in PostgreSQL. See the [module documentation](self).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_the_process() {
        assert!(holder_name().starts_with(&format!("pid {} at ", std::process::id())));
    }
}
