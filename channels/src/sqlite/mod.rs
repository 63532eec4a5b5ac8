//! The embedded default channel: one SQLite file holds every broker's log.
//!
//! # URL
//! `sqlite://PATH[?synchronous=full|normal]`: `sqlite:///var/lib/weft/weft.db` (absolute)
//! or `sqlite://data/weft.db` (relative to the working directory). The file and its parent
//! directories are created if missing. `synchronous=full` (the default) syncs the
//! write-ahead log on every commit; `synchronous=normal` leaves that to the checkpoints:
//! an acknowledged event still survives a crash of any process (it is in the operating
//! system's cache), but a power loss or kernel crash may lose the last acknowledged ones.
//!
//! # Guarantees
//! - **Durability**: `append` returns once its transaction is committed in WAL mode with
//!   `synchronous=FULL`, so the events survive a crash of the process or the machine
//!   (with `synchronous=normal`: of the process only).
//!   Concurrent appends share one commit (group commit, see `writer`); a lone append
//!   commits at once.
//! - **Ordering**: a broker's events are numbered 1, 2, 3, … in append order (numbering
//!   continues across restarts and retention) and every subscription hands them out in
//!   that order.
//! - **At-least-once**: a trigger's cursor (table `cursors`) means "every event up to here
//!   is done". It advances only to just below the lowest unacknowledged event
//!   ([`crate::ack`]) and is persisted lazily: with the next group commit (no extra
//!   sync), at the latest 100 ms later on its own, and on close. After a restart,
//!   or when the trigger subscribes again, everything above the persisted cursor is
//!   delivered again.
//! - **Redelivery** is the same event again (same `id`), with no marker.
//! - **Replicas** cannot share a file: one process owns it. Several subscriptions of one
//!   trigger in that process each receive every event above the cursor.
//! - **Retention**: twice a second, events that every cursor of their broker has passed
//!   are deleted, oldest first and at most 4096 per log per run so a released backlog
//!   never stalls appends; while a run leaves some behind, runs come every 50 ms, so
//!   retention keeps up with any rate the log is written at. A broker without cursors
//!   keeps none (a new trigger starts at the end). Parked events are kept until an
//!   operator removes them, even after their broker is deleted.
//! - **Checkpoints** are SQLite's own: the writer copies the write-ahead log back into the
//!   database file after a commit that leaves it above 1,000 pages (about 4 MiB), and the
//!   log then starts over, so it stays small under any load. The appends that arrive
//!   meanwhile wait and share the next group commit. (A checkpointer on a connection of
//!   its own never caught up with a busy writer: the log then grew without bound, by
//!   hundreds of MiB a minute, and its large syncs stalled commits for up to 2 s.)
//!
//! # Layout
//! - [`SqliteChannel`]: the [`Channel`] implementation, opening, status queries.
//! - `subscription`: the read side, a trigger's subscription.
//! - `writer`: the single task that writes (group commit, cursor flush, retention).
//! - `migrations/sqlite/` (crate root) holds the schema, `sql/` the statements.

mod subscription;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::info;
use weft_config::event::codec;
use weft_config::{Event, ObjectKey};

use self::subscription::SqliteSubscription;
use self::writer::{AppendRequest, Command, ParkRequest, Reply, Writer};
use crate::ack::LiveCursor;
use crate::error::BoxError;
use crate::sql::{ParkedRow, parked_event, unavailable};
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription};

const BACKEND: &str = "sqlite";
/// Bits of an event's key that hold its sequence number; the broker id takes the rest.
const SEQ_BITS: u32 = 40;
/// The largest sequence number a log can hold (about 10^12 events).
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// The `events` key of a broker's event: `(broker_id << 40) | seq`. A log's keys form the
/// contiguous range `event_key(id, 0) .. event_key(id, MAX_SEQ)`.
fn event_key(broker_id: i64, seq: u64) -> i64 {
    (broker_id << SEQ_BITS) | (seq.min(MAX_SEQ) as i64)
}

/// The sequence number in an `events` key.
fn seq_of(key: i64) -> u64 {
    key as u64 & MAX_SEQ
}
/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections reading events for subscriptions and answering status queries.
const READERS: u32 = 4;
/// Commands waiting for the writer; further callers wait for room (backpressure).
const QUEUE: usize = 4096;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A channel stored in one SQLite file. See the [module documentation](self).
pub struct SqliteChannel {
    shared: Arc<Shared>,
    /// The way to the writer; taken by `close`, after which calls fail with `Closed`.
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the channel, its subscriptions and the writer share.
struct Shared {
    /// Every broker with a log, and its head. Only the writer changes it.
    brokers: Mutex<HashMap<ObjectKey, BrokerState>>,
    /// Cursor trackers of subscriptions in this process, per (broker id, trigger); the
    /// writer persists what moved.
    live: Mutex<HashMap<(i64, ObjectKey), LiveCursor>>,
    readers: SqlitePool,
    closed: AtomicBool,
    /// Group commits of appends so far.
    commits: AtomicU64,
}

struct BrokerState {
    /// The row id; never reused, so a re-created broker is a different log.
    id: i64,
    /// The highest committed sequence number; the writer publishes every commit here and
    /// subscriptions wait on it. Dropped with the log, which ends its subscriptions.
    head_tx: watch::Sender<u64>,
}

impl Shared {
    fn brokers(&self) -> MutexGuard<'_, HashMap<ObjectKey, BrokerState>> {
        // Nothing panics while these locks are held, so poisoned data is still consistent.
        self.brokers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self) -> MutexGuard<'_, HashMap<(i64, ObjectKey), LiveCursor>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The broker's id and head.
    fn broker(&self, broker: &ObjectKey) -> Result<(i64, u64), ChannelError> {
        self.check_open()?;
        let brokers = self.brokers();
        let state = brokers
            .get(broker)
            .ok_or_else(|| ChannelError::UnknownLog {
                broker: broker.clone(),
            })?;
        Ok((state.id, *state.head_tx.borrow()))
    }
}

/// Applies the schema migrations through a one-connection pool: `Migrator::run` on a
/// plain connection makes the future of [`SqliteChannel::open`] not provably `Send`
/// ("implementation of `Acquire` is not general enough"), so it could not be spawned.
async fn migrate(options: SqliteConnectOptions) -> Result<(), BoxError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let result = MIGRATOR.run(&pool).await;
    pool.close().await;
    Ok(result?)
}

/// The database file a `sqlite://PATH[?synchronous=full|normal]` URL names.
pub fn database_file(url: &str) -> Result<PathBuf, ChannelError> {
    parse_url(url).map(|parsed| parsed.path)
}

/// What a `sqlite://PATH[?synchronous=full|normal]` URL names.
struct SqliteUrl {
    path: PathBuf,
    synchronous: SqliteSynchronous,
}

/// Parses a `sqlite://PATH[?synchronous=full|normal]` URL.
fn parse_url(url: &str) -> Result<SqliteUrl, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path_of(location).map_err(|e| match e {
        ChannelError::InvalidUrl { reason, .. } => invalid(reason),
        other => other,
    })?;
    let mut synchronous = SqliteSynchronous::Full;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        synchronous = match pair {
            "synchronous=full" => SqliteSynchronous::Full,
            "synchronous=normal" => SqliteSynchronous::Normal,
            _ => {
                return Err(invalid(
                    "the only option is synchronous=full or synchronous=normal",
                ));
            }
        };
    }
    Ok(SqliteUrl { path, synchronous })
}

/// The file a `sqlite://PATH` URL names.
fn path_of(url: &str) -> Result<PathBuf, ChannelError> {
    let invalid = |reason| ChannelError::InvalidUrl {
        url: crate::redact(url),
        reason,
    };
    let path = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| ChannelError::UnsupportedUrl {
            url: crate::redact(url),
        })?;
    if path.is_empty() {
        return Err(invalid("the file path is empty"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("query strings and fragments are not supported"));
    }
    Ok(PathBuf::from(path))
}

impl SqliteChannel {
    /// Opens (creating if needed) the file a `sqlite://PATH` URL names and starts its
    /// writer task. Must be called within a Tokio runtime.
    pub async fn open(url: &str, options: ChannelOptions) -> Result<Self, ChannelError> {
        let SqliteUrl { path, synchronous } = parse_url(url)?;
        let failed = |source: BoxError| ChannelError::open(url, source);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| failed(e.into()))?;
        }
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(BUSY_TIMEOUT)
            // Statement logging costs a measurable share of the append path.
            .disable_statement_logging();
        let writer = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            // Room for every insert shape (see `writer`) besides the other statements.
            .statement_cache_capacity(256);
        migrate(writer.clone()).await.map_err(failed)?;
        let mut conn = writer.connect().await.map_err(|e| failed(e.into()))?;
        let rows: Vec<(i64, String, String, i64)> =
            sqlx::query_as(include_str!("sql/select_brokers.sql"))
                .fetch_all(&mut conn)
                .await
                .map_err(|e| failed(e.into()))?;
        let mut brokers = HashMap::with_capacity(rows.len());
        for (id, namespace, name, retained_head) in rows {
            let stored: Option<i64> = sqlx::query_scalar(include_str!("sql/max_event.sql"))
                .bind(event_key(id, 0))
                .bind(event_key(id, MAX_SEQ))
                .fetch_one(&mut conn)
                .await
                .map_err(|e| failed(e.into()))?;
            let head = stored.map_or(0, seq_of).max(retained_head as u64);
            let state = BrokerState {
                id,
                head_tx: watch::Sender::new(head),
            };
            brokers.insert(ObjectKey::new(namespace, name), state);
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(|e| failed(e.into()))?;
        info!(path = %path.display(), brokers = brokers.len(), "sqlite channel opened");
        let shared = Arc::new(Shared {
            brokers: Mutex::new(brokers),
            live: Mutex::default(),
            readers,
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        });
        let (commands, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn,
            shared: Arc::clone(&shared),
            commands: queue,
            max_batch: options.max_batch.max(1),
            retention_due: true,
            retention_backlog: false,
            flush_due: false,
        };
        Ok(SqliteChannel {
            shared,
            commands: Mutex::new(Some(commands)),
            writer: Mutex::new(Some(tokio::spawn(writer.run()))),
        })
    }

    /// Sends a command to the writer and waits for its answer.
    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ChannelError> {
        let sender = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(ChannelError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(command(reply))
            .await
            .map_err(|_| ChannelError::Closed)?;
        answer.await.map_err(|_| ChannelError::Closed)?
    }

    /// How many events the broker's log still stores (retention deletes the rest).
    pub async fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        let (id, _) = self.shared.broker(broker)?;
        let count: i64 = sqlx::query_scalar(include_str!("sql/count_events.sql"))
            .bind(event_key(id, 0))
            .bind(event_key(id, MAX_SEQ))
            .fetch_one(&self.shared.readers)
            .await
            .map_err(unavailable)?;
        Ok(count as u64)
    }

    /// Persists acknowledged cursors and applies retention now, rather than at the next
    /// periodic run.
    pub async fn compact(&self) -> Result<(), ChannelError> {
        self.call(|reply| Command::Compact { reply }).await
    }

    /// How many group commits of appends this channel made.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for SqliteChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteChannel").finish_non_exhaustive()
    }
}

#[async_trait]
impl Channel for SqliteChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        let broker = broker.clone();
        self.call(|reply| Command::EnsureLog { broker, reply })
            .await
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        let broker = broker.clone();
        self.call(|reply| Command::DeleteLog { broker, reply })
            .await
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let mut logs: Vec<_> = self.shared.brokers().keys().cloned().collect();
        logs.sort();
        Ok(logs)
    }

    /// The list of logs is held in memory, and a full disk shows only when the file must
    /// grow: only an append can tell whether the file takes writes.
    async fn probe(&self) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported {
            operation: "probing without an append",
        })
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        if events.is_empty() {
            return self.shared.broker(broker).map(drop);
        }
        let request = |reply| {
            Command::Append(AppendRequest {
                broker: broker.clone(),
                log: (),
                bodies: events.iter().map(codec::encode).collect(),
                reply,
            })
        };
        self.call(request).await
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let (b, t) = (broker.clone(), trigger.clone());
        let opened = self
            .call(|reply| Command::Subscribe {
                broker: b,
                trigger: t,
                reply,
            })
            .await?;
        let tracker = self
            .shared
            .live()
            .entry((opened.broker_id, trigger.clone()))
            .or_default()
            .open(opened.stored);
        Ok(Box::new(SqliteSubscription {
            shared: Arc::clone(&self.shared),
            broker: broker.clone(),
            broker_id: opened.broker_id,
            head_rx: opened.head_rx,
            tracker,
        }))
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        let (broker, trigger) = (broker.clone(), trigger.clone());
        self.call(|reply| Command::DeleteSubscription {
            broker,
            trigger,
            reply,
        })
        .await
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        let (id, _) = self.shared.broker(broker)?;
        let rows: Vec<(String, String)> = sqlx::query_as(include_str!("sql/select_cursors.sql"))
            .bind(id)
            .fetch_all(&self.shared.readers)
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name)| ObjectKey::new(namespace, name))
            .collect())
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        let (id, head) = self.shared.broker(broker)?;
        let live = (self.shared.live())
            .get(&(id, trigger.clone()))
            .and_then(LiveCursor::committed);
        let stored: Option<i64> = sqlx::query_scalar(include_str!("sql/select_cursor.sql"))
            .bind(id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .fetch_optional(&self.shared.readers)
            .await
            .map_err(unavailable)?;
        let committed = match (stored, live) {
            (None, None) => return Ok(0),
            (stored, live) => live.unwrap_or(0).max(stored.unwrap_or(0) as u64),
        };
        Ok(head.saturating_sub(committed))
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        let request = |reply| {
            Command::Park(ParkRequest {
                broker: broker.clone(),
                trigger: trigger.clone(),
                reason: reason.to_owned(),
                body: codec::encode(event),
                reply,
            })
        };
        self.call(request).await
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let rows: Vec<ParkedRow> = sqlx::query_as(include_str!("sql/select_parked.sql"))
            .bind(&broker.namespace)
            .bind(&broker.name)
            .fetch_all(&self.shared.readers)
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|row| parked_event(broker, row))
            .collect()
    }

    async fn close(&self) -> Result<(), ChannelError> {
        let sender = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Without senders the writer serves what is queued, persists cursors and stops.
        drop(sender);
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.shared.closed.store(true, Ordering::Release);
        // Dropping the head senders wakes waiting subscriptions, which see `closed`.
        self.shared.brokers().clear();
        self.shared.readers.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            path_of("sqlite:///a/b.db").unwrap(),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(path_of("sqlite://b/c.db").unwrap(), PathBuf::from("b/c.db"));
        for bad in [
            "sqlite://",
            "sqlite://x.db?mode=ro",
            "sqlite://x.db?synchronous=off",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ChannelError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        let normal = parse_url("sqlite://x.db?synchronous=normal").unwrap();
        assert_eq!(normal.path, PathBuf::from("x.db"));
        assert!(matches!(normal.synchronous, SqliteSynchronous::Normal));
        assert!(matches!(
            parse_url("sqlite://x.db").unwrap().synchronous,
            SqliteSynchronous::Full
        ));
        assert!(matches!(
            path_of("postgres://x"),
            Err(ChannelError::UnsupportedUrl { .. })
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_appends_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/weft.db", dir.path().display());
        let ch = Arc::new(
            SqliteChannel::open(&url, ChannelOptions::default())
                .await
                .unwrap(),
        );
        let broker = ObjectKey::new("default", "b");
        ch.ensure_log(&broker).await.unwrap();
        let appends: Vec<_> = (0..200)
            .map(|i| {
                let (ch, broker) = (Arc::clone(&ch), broker.clone());
                let event = Event::new(format!("e{i}"), "/t", "t").unwrap();
                tokio::spawn(async move { ch.append(&broker, vec![event]).await })
            })
            .collect();
        for append in appends {
            append.await.unwrap().unwrap();
        }
        assert!(
            ch.commits() < 20,
            "{} commits for 200 appends",
            ch.commits()
        );
        assert_eq!(ch.stored_events(&broker).await.unwrap(), 200);
        ch.compact().await.unwrap();
        assert_eq!(
            ch.stored_events(&broker).await.unwrap(),
            0,
            "no cursor keeps none"
        );
    }
}
