//! [`SqliteChannel`]: the [`Channel`] implementation, opening, status queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::info;
use weft_config::event::codec;
use weft_config::{Event, ObjectKey};

use super::shared::{BrokerState, MAX_SEQ, Shared, event_key, seq_of};
use super::subscription::SqliteSubscription;
use super::url::{SqliteUrl, parse_url};
use super::writer::{AppendRequest, Command, ParkRequest, Reply, Writer};
use crate::ack::LiveCursor;
use crate::error::BoxError;
use crate::sql::{ParkedRow, parked_event, unavailable};
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections reading events for subscriptions and answering status queries.
const READERS: u32 = 4;
/// Commands waiting for the writer; further callers wait for room (backpressure).
const QUEUE: usize = 4096;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A channel stored in one SQLite file. See the [module documentation](super).
pub struct SqliteChannel {
    shared: Arc<Shared>,
    /// The way to the writer; taken by `close`, after which calls fail with `Closed`.
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
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
