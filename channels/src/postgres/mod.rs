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
//! - [`PostgresChannel`]: the [`Channel`] implementation, opening, status queries.
//! - `writer`: the task that appends (group commit).
//! - `consumer`: a trigger's subscription, its leases and acknowledgements.
//! - `keeper`: the task that records progress, renews and releases leases, and applies
//!   retention.
//! - `listener`: `LISTEN weft_events`, turning notifications into wake-ups.
//! - `migrations/postgres/` (crate root) holds the schema, `sql/` the statements.

mod consumer;
mod keeper;
mod listener;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::ConnectOptions;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::info;
use weft_config::event::codec;
use weft_config::{Event, ObjectKey};

use self::consumer::{Consumer, PostgresSubscription};
use self::keeper::Keeper;
use self::writer::AppendRequest;
use crate::error::BoxError;
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription, telemetry};

const BACKEND: &str = "postgres";
/// The `LISTEN/NOTIFY` channel; payloads are `<schema>:<broker id>` followed by
/// [`NOTIFY_NEW`] or [`NOTIFY_TAKEOVER`].
const NOTIFY_CHANNEL: &str = "weft_events";
/// The payload's end when a log has new events (or was deleted).
const NOTIFY_NEW: &str = "";
/// The payload's end when a lease of the log was released.
const NOTIFY_TAKEOVER: &str = "!";
/// How long a lease outlives its last renewal unless the URL says otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Connections in each of the two pools (see [`Shared::pool`] and
/// [`Shared::bookkeeping`]).
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection before reporting the server unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Append requests waiting for the writer; further callers wait for room (backpressure).
const QUEUE: usize = 4096;
/// The most events, and bytes of events, a log's [`Tail`] keeps.
const TAIL_EVENTS: usize = 4096;
const TAIL_BYTES: usize = 2 << 20;
/// Where sqlx records the applied migrations; `weft_` like every table of this backend.
const MIGRATIONS_TABLE: &str = "weft_migrations";

/// A channel stored in PostgreSQL. See the [module documentation](self).
pub struct PostgresChannel {
    shared: Arc<Shared>,
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

/// What the channel, its subscriptions and its tasks share.
struct Shared {
    /// Connections for what must be durable when a call returns: appends, cursors of new
    /// subscriptions, parked events, deletions.
    pool: PgPool,
    /// Connections with `synchronous_commit = off`, for the bookkeeping of leases and
    /// cursors (claims, progress, renewals, retention): losing its last moments in a server
    /// crash only means redelivery, so it need not wait for the server's disk. The server
    /// recovers a prefix of its log, so nothing it keeps can be ahead of the durable
    /// appends.
    bookkeeping: PgPool,
    /// The schema the tables are in, which tells this database's notifications from those
    /// of other schemas.
    schema: String,
    /// Names this process in `weft_leases.holder`, for the operator.
    holder: String,
    lease: Duration,
    /// Broker ids by name, so appends need no lookup; an entry is dropped when the broker
    /// turns out to be gone.
    ids: Mutex<HashMap<ObjectKey, i64>>,
    /// Per broker id: marked changed when the log may have something new for its
    /// subscriptions (an append, a deletion); its value counts the times a lease may have
    /// become free to take over, so that subscriptions look for those only then. Dropping
    /// a sender ends the waits on it.
    wakes: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// The live consumers, whose progress the keeper writes.
    consumers: Mutex<Vec<Weak<Consumer>>>,
    /// Per broker id: the latest events this process appended.
    tails: Mutex<HashMap<i64, Tail>>,
    /// To the keeper: released leases, flush and compaction requests.
    keeper: mpsc::UnboundedSender<keeper::Message>,
    closed: AtomicBool,
    /// Group commits of appends so far.
    commits: AtomicU64,
}

/// The latest events this process appended to one log, contiguous by sequence number, so
/// that its subscriptions read them without a round trip (the common case: a trigger keeps
/// up with its broker). Events appended by other processes interleave with ours; then the
/// tail starts again after them, and what it lacks is read from the database.
#[derive(Debug, Default)]
struct Tail {
    /// The sequence number of `bodies[0]`.
    first: i64,
    bodies: VecDeque<Bytes>,
    /// The bodies' total size.
    bytes: usize,
}

impl Tail {
    /// Adds events `first..` at the end.
    fn push(&mut self, first: i64, bodies: &[Bytes]) {
        if first != self.first + self.bodies.len() as i64 {
            self.bodies.clear();
            self.bytes = 0;
            self.first = first;
        }
        for body in bodies {
            self.bytes += body.len();
            self.bodies.push_back(body.clone());
        }
        while self.bodies.len() > TAIL_EVENTS || self.bytes > TAIL_BYTES {
            let Some(oldest) = self.bodies.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.first += 1;
        }
    }

    /// Events `from..=to`, if the tail has every one of them.
    fn get(&self, from: i64, to: i64) -> Option<Vec<(i64, Bytes)>> {
        let last = self.first + self.bodies.len() as i64 - 1;
        if from < self.first || to > last || from > to {
            return None;
        }
        let skip = (from - self.first) as usize;
        let bodies = self.bodies.iter().skip(skip).take((to - from + 1) as usize);
        Some((from..=to).zip(bodies.cloned()).collect())
    }
}

/// Locks a mutex; nothing panics while these locks are held, so poisoned data is still
/// consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The lease duration in seconds, as SQL takes it.
    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Wakes the subscriptions of one log in this process: new events, or (`takeover`) a
    /// lease that may be free to take over.
    fn wake(&self, broker_id: i64, takeover: bool) {
        if let Some(wake) = lock(&self.wakes).get(&broker_id) {
            wake.send_modify(|takeovers| *takeovers += u64::from(takeover));
        }
    }

    /// Wakes every subscription in this process, to look for everything (notifications
    /// may have been missed).
    fn wake_all(&self) {
        lock(&self.wakes).values().for_each(|wake| {
            wake.send_modify(|takeovers| *takeovers += 1);
        });
    }

    /// A receiver of the log's wake-ups.
    fn wake_receiver(&self, broker_id: i64) -> watch::Receiver<u64> {
        let mut wakes = lock(&self.wakes);
        wakes.retain(|_, wake| wake.receiver_count() > 0);
        wakes
            .entry(broker_id)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// The logs this process has subscriptions on.
    fn watched_logs(&self) -> Vec<i64> {
        let mut wakes = lock(&self.wakes);
        wakes.retain(|_, wake| wake.receiver_count() > 0);
        wakes.keys().copied().collect()
    }

    /// Forgets a log that is gone: its cached id and its waits, which end.
    fn forget_log(&self, broker: &ObjectKey, broker_id: i64) {
        let mut ids = lock(&self.ids);
        if ids.get(broker) == Some(&broker_id) {
            ids.remove(broker);
        }
        drop(ids);
        lock(&self.wakes).remove(&broker_id);
        lock(&self.tails).remove(&broker_id);
    }

    /// Keeps the events just appended to a log, whose last is `head`, for its
    /// subscriptions here, if it has any.
    fn remember(&self, broker_id: i64, head: i64, bodies: &[Bytes]) {
        if !lock(&self.wakes).contains_key(&broker_id) {
            return;
        }
        let first = head - bodies.len() as i64 + 1;
        lock(&self.tails)
            .entry(broker_id)
            .or_default()
            .push(first, bodies);
    }

    /// Drops the tails of logs without subscriptions here.
    fn trim_tails(&self, watched: &[i64]) {
        lock(&self.tails).retain(|id, _| watched.contains(id));
    }

    /// Events `from..=to` of a log, if this process appended all of them lately.
    fn recent(&self, broker_id: i64, from: i64, to: i64) -> Option<Vec<(i64, Bytes)>> {
        lock(&self.tails).get(&broker_id)?.get(from, to)
    }

    /// The broker's id: cached, or looked up. `None` when it has no log.
    async fn broker_id(&self, broker: &ObjectKey) -> Result<Option<i64>, ChannelError> {
        if let Some(&id) = lock(&self.ids).get(broker) {
            return Ok(Some(id));
        }
        self.lookup(broker).await
    }

    /// Looks the broker's id up in the database and caches it.
    async fn lookup(&self, broker: &ObjectKey) -> Result<Option<i64>, ChannelError> {
        let id: Option<i64> = retrying(|| async move {
            sqlx::query_scalar(include_str!("sql/select_broker.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_optional(&self.pool)
                .await
        })
        .await
        .map_err(unavailable)?;
        if let Some(id) = id {
            lock(&self.ids).insert(broker.clone(), id);
        }
        Ok(id)
    }

    /// Asks the keeper to write progress now (and, with `compact`, to apply retention).
    async fn flush(&self, compact: bool) -> Result<(), ChannelError> {
        let (reply, answer) = oneshot::channel();
        let message = if compact {
            keeper::Message::Compact(reply)
        } else {
            keeper::Message::Flush(reply)
        };
        self.keeper
            .send(message)
            .map_err(|_| ChannelError::Closed)?;
        answer.await.map_err(|_| ChannelError::Closed)?
    }
}

/// Classifies a database error: a pool closed by `close` means the channel is closed,
/// anything else that the server cannot serve the request now.
fn unavailable(error: sqlx::Error) -> ChannelError {
    match error {
        sqlx::Error::PoolClosed => ChannelError::Closed,
        error => ChannelError::Unavailable {
            source: Box::new(error),
        },
    }
}

/// Whether the error means the connection is gone (the server restarted, or an operator
/// ended the session) rather than that the statement failed: the pool replaces such a
/// connection, so the statement may be tried again on another.
fn is_broken_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        // Class 08: connection exception; 57P01..57P05: the server shut down, crashed,
        // is starting, or an operator ended the session.
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Runs a database operation, and runs it again while the connection it got turns out to
/// be broken (at most once per pooled connection): after a server restart every idle
/// connection is dead, and callers should not see that. Only for operations that may run
/// twice; see [`is_broken_connection`].
async fn retrying<T, F, Fut>(mut operation: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempts = 0;
    loop {
        match operation().await {
            Err(error) if is_broken_connection(&error) && attempts < POOL_SIZE => attempts += 1,
            result => return result,
        }
    }
}

/// A `postgres://` URL split into what sqlx connects with and Weft's own settings.
#[derive(Debug)]
struct Settings {
    connect: PgConnectOptions,
    lease: Duration,
}

/// Parses a `postgres://` or `postgresql://` URL, taking Weft's parameters out of it.
fn parse_url(url: &str) -> Result<Settings, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ChannelError::UnsupportedUrl {
            url: crate::redact(url),
        });
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut lease = DEFAULT_LEASE;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("lease", value)) => {
                lease = weft_config::manifest::parse_duration(value)
                    .map_err(|_| invalid("`lease` must be an ISO-8601 duration such as PT30S"))?;
                if lease < Duration::from_millis(100) {
                    return Err(invalid("`lease` must be at least PT0.1S"));
                }
            }
            _ => rest.push(pair),
        }
    }
    let sqlx_url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut connect = PgConnectOptions::from_str(&sqlx_url)
        .map_err(|_| invalid("not a valid PostgreSQL connection URL"))?
        // Statement logging costs a measurable share of the append path.
        .disable_statement_logging();
    if connect.get_application_name().is_none() {
        connect = connect.application_name("weft");
    }
    Ok(Settings { connect, lease })
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
        let settings = parse_url(url)?;
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
            consumers: Mutex::default(),
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
        let keeper = tokio::spawn(Keeper::new(Arc::clone(&shared), keeper_rx).run());
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
            appends: Mutex::new(Some(appends)),
            writer: Mutex::new(Some(writer)),
            keeper: Mutex::new(Some(keeper)),
            listener,
        })
    }

    /// How many events the broker's log still stores (retention deletes the rest).
    pub async fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        self.shared.check_open()?;
        let count: i64 = sqlx::query_scalar(include_str!("sql/count_events.sql"))
            .bind(&broker.namespace)
            .bind(&broker.name)
            .fetch_one(&self.shared.pool)
            .await
            .map_err(unavailable)?;
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
            broker_id,
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
        let id: Option<i64> = retrying(|| async move {
            sqlx::query_scalar(include_str!("sql/insert_cursor.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .fetch_optional(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
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

fn parked_event(broker: &ObjectKey, row: PgRow) -> Result<ParkedEvent, ChannelError> {
    let (id, namespace, name, reason, millis, body): (i64, String, String, String, i64, Vec<u8>) = (
        row.try_get(0).map_err(unavailable)?,
        row.try_get(1).map_err(unavailable)?,
        row.try_get(2).map_err(unavailable)?,
        row.try_get(3).map_err(unavailable)?,
        row.try_get(4).map_err(unavailable)?,
        row.try_get(5).map_err(unavailable)?,
    );
    let event = codec::decode(Bytes::from(body)).map_err(|source| ChannelError::Corrupt {
        broker: broker.clone(),
        seq: id as u64,
        source,
    })?;
    Ok(ParkedEvent {
        trigger: ObjectKey::new(namespace, name),
        reason,
        parked_at: UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64),
        event,
    })
}

#[async_trait]
impl Channel for PostgresChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        retrying(|| async move {
            sqlx::query(include_str!("sql/insert_broker.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .execute(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
        // Another process may delete it in between; then appends report the log unknown.
        self.shared.lookup(broker).await.map(drop)
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let Some(id) = self.shared.lookup(broker).await? else {
            return Ok(());
        };
        let pool = &self.shared.pool;
        retrying(|| async move {
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
        .await
        .map_err(unavailable)?;
        self.shared.forget_log(broker, id);
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(String, String)> = retrying(|| async move {
            sqlx::query_as(include_str!("sql/select_brokers.sql"))
                .fetch_all(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
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
        retrying(|| async move {
            sqlx::query(include_str!("sql/delete_cursor.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .execute(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows: Vec<(i64, Option<String>, Option<String>)> = retrying(|| async move {
            sqlx::query_as(include_str!("sql/select_cursors.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
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
        let row: Option<(i64, Option<i64>)> = retrying(|| async move {
            sqlx::query_as(include_str!("sql/backlog.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .fetch_optional(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
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
        retrying(|| async move {
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
        .await
        .map_err(unavailable)?;
        telemetry::parked(BACKEND);
        Ok(())
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let pool = &self.shared.pool;
        let rows = retrying(|| async move {
            sqlx::query(include_str!("sql/select_parked.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_all(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
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
        if self
            .shared
            .keeper
            .send(keeper::Message::Close(reply))
            .is_ok()
        {
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
    fn urls() {
        let settings = parse_url("postgres://u@db.example:5433/weft?lease=PT5S").unwrap();
        assert_eq!(settings.lease, Duration::from_secs(5));
        assert_eq!(settings.connect.get_host(), "db.example");
        assert_eq!(settings.connect.get_port(), 5433);
        assert_eq!(settings.connect.get_database(), Some("weft"));
        assert_eq!(settings.connect.get_application_name(), Some("weft"));
        let settings =
            parse_url("postgresql://u@h/weft?application_name=mine&lease=PT0.5S").unwrap();
        assert_eq!(settings.lease, Duration::from_millis(500));
        assert_eq!(settings.connect.get_application_name(), Some("mine"));
        assert_eq!(parse_url("postgres://h/d").unwrap().lease, DEFAULT_LEASE);
        for bad in [
            "postgres://h/d?lease=30",
            "postgres://h/d?lease=PT0S",
            "postgres://h:notaport/d",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ChannelError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_url("sqlite://x.db"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }

    #[test]
    fn tails_keep_the_latest_contiguous_events() {
        let body = |i: u8| Bytes::from(vec![i; 10]);
        let mut tail = Tail::default();
        assert_eq!(tail.get(1, 1), None);
        tail.push(1, &[body(1), body(2)]);
        tail.push(3, &[body(3)]);
        let got = tail.get(2, 3).unwrap();
        assert_eq!(got, vec![(2, body(2)), (3, body(3))]);
        assert_eq!(tail.get(0, 1), None, "before the tail");
        assert_eq!(tail.get(3, 4), None, "after the tail");
        // Another process appended 4 and 5: the tail starts again at 6.
        tail.push(6, &[body(6)]);
        assert_eq!(tail.get(3, 3), None);
        assert_eq!(tail.get(6, 6).unwrap(), vec![(6, body(6))]);
        let many: Vec<_> = (0..TAIL_EVENTS + 10).map(|_| body(0)).collect();
        tail.push(7, &many);
        assert_eq!(tail.bodies.len(), TAIL_EVENTS);
        assert_eq!(tail.first, 17);
        assert_eq!(tail.get(16, 16), None, "the oldest are forgotten");
    }

    #[test]
    fn holder_names_the_process() {
        assert!(holder_name().starts_with(&format!("pid {} at ", std::process::id())));
    }
}
