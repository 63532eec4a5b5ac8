//! The one task that writes to the database: group commits of appends, cursor flushes,
//! retention, and the rare control operations. SQLite checkpoints on this connection
//! after a commit that leaves the write-ahead log above 1,000 pages.
//!
//! Everything that changes the file goes through [`Writer`], so there is exactly one
//! write connection and no write contention; readers use their own pool (WAL lets them
//! read while the writer writes). Commands arrive over an mpsc channel; an append takes
//! every append already waiting (up to `max_batch` events) into one transaction, commits,
//! and only then answers each request ([`group_commit`], shared with PostgreSQL). A lone
//! append commits at once: nothing waits for company.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};
use weft_config::ObjectKey;

use super::shared::{BACKEND, BrokerState, MAX_SEQ, Shared, event_key, seq_of};
use crate::sql::group_commit::{self, GroupCommit, group_commit};
use crate::sql::unavailable;
use crate::{ChannelError, telemetry};

/// How often acknowledged cursors are persisted. A crash loses at most this much cursor
/// progress, which only means redelivery.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Retention runs every this many flush ticks (twice a second), when anything changed.
const RETENTION_TICKS: u32 = 10;
/// The most events one retention run deletes per log, so that a large backlog being
/// released never stalls appends; the rest goes in the next runs.
const RETENTION_CHUNK: u64 = 4096;
/// Rows in the largest multi-row INSERT; 2 parameters each stays far below SQLite's limit.
const MAX_ROWS_PER_INSERT: usize = 256;

/// Batches up to this many events are written by one statement of exactly their size,
/// committed on its own (no BEGIN/COMMIT round trips): the common case, one round trip to
/// the database thread per group commit.
const EXACT_ROWS: usize = 64;

/// `INSERT … VALUES (?, ?), …` by row count: every count up to [`EXACT_ROWS`], then
/// powers of two up to [`MAX_ROWS_PER_INSERT`], so the statement cache stays bounded.
static INSERT_SHAPES: LazyLock<Vec<(usize, String)>> = LazyLock::new(|| {
    let one = include_str!("sql/insert_events.sql").trim_end();
    let powers = std::iter::successors(Some(EXACT_ROWS * 2), |n| Some(n * 2))
        .take_while(|&n| n <= MAX_ROWS_PER_INSERT);
    (1..=EXACT_ROWS)
        .chain(powers)
        .map(|n| (n, format!("{one}{}", ", (?, ?)".repeat(n - 1))))
        .collect()
});

/// The largest statement shape that fits `rows` rows, and its row count.
fn insert_shape(rows: usize) -> (usize, &'static str) {
    let (n, sql) = INSERT_SHAPES
        .iter()
        .rev()
        .find(|(n, _)| *n <= rows)
        .expect("a one-row shape exists");
    (*n, sql.as_str())
}

/// The answer to one command.
pub(super) type Reply<T> = oneshot::Sender<Result<T, ChannelError>>;

/// What the writer is asked to do.
pub(super) enum Command {
    EnsureLog {
        broker: ObjectKey,
        reply: Reply<()>,
    },
    DeleteLog {
        broker: ObjectKey,
        reply: Reply<()>,
    },
    Append(AppendRequest),
    Subscribe {
        broker: ObjectKey,
        trigger: ObjectKey,
        reply: Reply<Opened>,
    },
    DeleteSubscription {
        broker: ObjectKey,
        trigger: ObjectKey,
        reply: Reply<()>,
    },
    Park(ParkRequest),
    /// Flush cursors and apply retention now.
    Compact {
        reply: Reply<()>,
    },
}

/// Events to append, already encoded by the caller.
pub(super) type AppendRequest = group_commit::AppendRequest<()>;

impl From<AppendRequest> for Command {
    fn from(request: AppendRequest) -> Self {
        Command::Append(request)
    }
}

/// An event to park, already encoded by the caller.
pub(super) struct ParkRequest {
    pub(super) broker: ObjectKey,
    pub(super) trigger: ObjectKey,
    pub(super) reason: String,
    pub(super) body: Bytes,
    pub(super) reply: Reply<()>,
}

/// A subscription's starting point.
pub(super) struct Opened {
    pub(super) broker_id: i64,
    /// The trigger's persisted cursor.
    pub(super) stored: u64,
    pub(super) head_rx: watch::Receiver<u64>,
}

/// The writer task's state.
pub(super) struct Writer {
    /// The one write connection.
    pub(super) conn: SqliteConnection,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) max_batch: usize,
    /// Something changed since retention last ran.
    pub(super) retention_due: bool,
    /// The last retention run left passed events behind (it deletes a chunk per log).
    pub(super) retention_backlog: bool,
    /// Cursors are due to be persisted: the next group commit carries them, or the next
    /// tick writes them on their own if no append came.
    pub(super) flush_due: bool,
}

impl Writer {
    /// Serves commands until every sender is gone (the channel was closed or dropped),
    /// then persists the cursors and closes the connection.
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        let mut pending = None;
        loop {
            let command = match pending.take() {
                Some(command) => command,
                None => tokio::select! {
                    // Ticks first, so a constant stream of appends cannot starve them.
                    biased;
                    _ = tick.tick() => {
                        // Cursors ride along with the next group commit (no extra
                        // transaction, no extra sync); only when no append came since the
                        // last tick are they written on their own.
                        if self.flush_due {
                            self.flush_cursors().await;
                        }
                        self.flush_due = true;
                        ticks = ticks.wrapping_add(1);
                        // Every tick while a backlog of passed events remains.
                        if self.retention_due
                            && (self.retention_backlog || ticks.is_multiple_of(RETENTION_TICKS))
                            && let Err(error) = self.retain().await
                        {
                            warn!(%error, "sqlite retention failed; retrying");
                        }
                        continue;
                    }
                    command = self.commands.recv() => match command {
                        Some(command) => command,
                        None => break,
                    },
                },
            };
            pending = self.serve(command).await;
        }
        self.flush_cursors().await;
        if let Err(error) = self.conn.close().await {
            warn!(%error, "closing the sqlite channel's write connection failed");
        }
    }

    /// Serves one command. Returns a command it took off the queue but did not serve.
    async fn serve(&mut self, command: Command) -> Option<Command> {
        match command {
            Command::Append(first) => return group_commit(self, first).await,
            Command::EnsureLog { broker, reply } => {
                let _ = reply.send(self.ensure_log(&broker).await);
            }
            Command::DeleteLog { broker, reply } => {
                let _ = reply.send(self.delete_log(&broker).await);
            }
            Command::Subscribe {
                broker,
                trigger,
                reply,
            } => {
                let _ = reply.send(self.subscribe(&broker, &trigger).await);
            }
            Command::DeleteSubscription {
                broker,
                trigger,
                reply,
            } => {
                let _ = reply.send(self.delete_subscription(&broker, &trigger).await);
            }
            Command::Park(request) => {
                let result = self.park(&request).await;
                let _ = request.reply.send(result);
            }
            Command::Compact { reply } => {
                self.flush_cursors().await;
                let _ = reply.send(self.retain().await);
            }
        }
        None
    }

    fn broker(&self, broker: &ObjectKey) -> Option<i64> {
        self.shared.brokers().get(broker).map(|state| state.id)
    }

    async fn ensure_log(&mut self, broker: &ObjectKey) -> Result<(), ChannelError> {
        if self.broker(broker).is_some() {
            return Ok(());
        }
        sqlx::query(include_str!("sql/insert_broker.sql"))
            .bind(&broker.namespace)
            .bind(&broker.name)
            .execute(&mut self.conn)
            .await
            .map_err(unavailable)?;
        let row = sqlx::query(include_str!("sql/select_broker.sql"))
            .bind(&broker.namespace)
            .bind(&broker.name)
            .fetch_one(&mut self.conn)
            .await
            .map_err(unavailable)?;
        let (id, head): (i64, i64) = (row.get(0), row.get(1));
        let state = BrokerState {
            id,
            head_tx: watch::Sender::new(head as u64),
        };
        self.shared.brokers().insert(broker.clone(), state);
        Ok(())
    }

    async fn delete_log(&mut self, broker: &ObjectKey) -> Result<(), ChannelError> {
        let Some(id) = self.broker(broker) else {
            return Ok(());
        };
        let mut tx = self.conn.begin().await.map_err(unavailable)?;
        sqlx::query(include_str!("sql/delete_events.sql"))
            .bind(event_key(id, 0))
            .bind(event_key(id, MAX_SEQ))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(include_str!("sql/delete_broker.sql"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        // Dropping the head sender ends the log's subscriptions.
        self.shared.brokers().remove(broker);
        self.shared
            .live()
            .retain(|(broker_id, _), _| *broker_id != id);
        Ok(())
    }

    async fn subscribe(
        &mut self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Opened, ChannelError> {
        let (broker_id, head, head_rx) = {
            let brokers = self.shared.brokers();
            let state = brokers
                .get(broker)
                .ok_or_else(|| ChannelError::UnknownLog {
                    broker: broker.clone(),
                })?;
            (state.id, *state.head_tx.borrow(), state.head_tx.subscribe())
        };
        let mut tx = self.conn.begin().await.map_err(unavailable)?;
        sqlx::query(include_str!("sql/insert_cursor.sql"))
            .bind(broker_id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .bind(head as i64)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let stored: i64 = sqlx::query_scalar(include_str!("sql/select_cursor.sql"))
            .bind(broker_id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Opened {
            broker_id,
            stored: stored as u64,
            head_rx,
        })
    }

    async fn delete_subscription(
        &mut self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        let Some(id) = self.broker(broker) else {
            return Ok(());
        };
        sqlx::query(include_str!("sql/delete_cursor.sql"))
            .bind(id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .execute(&mut self.conn)
            .await
            .map_err(unavailable)?;
        self.shared.live().remove(&(id, trigger.clone()));
        self.retention_due = true;
        Ok(())
    }

    async fn park(&mut self, request: &ParkRequest) -> Result<(), ChannelError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        sqlx::query(include_str!("sql/insert_parked.sql"))
            .bind(&request.broker.namespace)
            .bind(&request.broker.name)
            .bind(&request.trigger.namespace)
            .bind(&request.trigger.name)
            .bind(&request.reason)
            .bind(now.as_millis() as i64)
            .bind(request.body.as_ref())
            .execute(&mut self.conn)
            .await
            .map_err(unavailable)?;
        telemetry::parked(BACKEND);
        Ok(())
    }

    /// Persists the cursors that moved, in one transaction of their own. On failure they
    /// stay dirty and are tried again at the next tick.
    async fn flush_cursors(&mut self) {
        self.flush_due = false;
        let dirty = self.take_dirty_cursors();
        if dirty.is_empty() {
            return;
        }
        let write = async |conn: &mut SqliteConnection| {
            let mut tx = conn.begin().await?;
            write_cursors(&mut tx, &dirty).await?;
            tx.commit().await
        };
        match write(&mut self.conn).await {
            Ok(()) => self.retention_due = true,
            Err(error) => {
                warn!(%error, "persisting sqlite cursors failed; retrying");
                self.restore_dirty_cursors(dirty);
            }
        }
    }

    /// The cursors that moved since they were last persisted, marked clean.
    fn take_dirty_cursors(&self) -> Vec<(i64, ObjectKey, u64)> {
        let mut live = self.shared.live();
        let dirty = live
            .iter_mut()
            .filter_map(|((id, trigger), cursor)| {
                cursor.take_dirty().map(|seq| (*id, trigger.clone(), seq))
            })
            .collect();
        live.retain(|_, cursor| !cursor.is_empty());
        dirty
    }

    /// Marks cursors dirty again after writing them failed.
    fn restore_dirty_cursors(&self, dirty: Vec<(i64, ObjectKey, u64)>) {
        let live = self.shared.live();
        for (id, trigger, _) in dirty {
            if let Some(cursor) = live.get(&(id, trigger)) {
                cursor.mark_dirty();
            }
        }
    }

    /// Deletes, per broker, the events every cursor has passed, at most
    /// [`RETENTION_CHUNK`] per log; what is left stays due for the next run.
    async fn retain(&mut self) -> Result<(), ChannelError> {
        let heads: HashMap<i64, u64> = self
            .shared
            .brokers()
            .values()
            .map(|state| (state.id, *state.head_tx.borrow()))
            .collect();
        let (deleted, more) = delete_passed_events(&mut self.conn, &heads)
            .await
            .map_err(unavailable)?;
        self.retention_due = more;
        self.retention_backlog = more;
        if deleted > 0 {
            debug!(deleted, "sqlite retention deleted events");
        }
        Ok(())
    }
}

impl GroupCommit for Writer {
    const BACKEND: &'static str = BACKEND;
    type Log = ();
    type Item = Command;

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn try_next(&mut self) -> Option<Command> {
        self.commands.try_recv().ok()
    }

    fn as_append(item: Command) -> Result<AppendRequest, Command> {
        match item {
            Command::Append(request) => Ok(request),
            other => Err(other),
        }
    }

    fn commits(&self) -> &AtomicU64 {
        &self.shared.commits
    }

    /// Numbers the events, writes them with the cursors that are due, and publishes the
    /// new heads once committed; answers the requests of unknown logs.
    async fn write(&mut self, batch: &mut Vec<AppendRequest>) -> Result<usize, sqlx::Error> {
        // The heads change only once the transaction is committed.
        let mut heads: HashMap<ObjectKey, (i64, u64)> = HashMap::new();
        let mut rows = Vec::new();
        // Numbers the events of known logs, and takes out the requests of unknown ones.
        let unknown: Vec<_> = {
            let brokers = self.shared.brokers();
            batch
                .extract_if(.., |request| {
                    let Some(state) = brokers.get(&request.broker) else {
                        return true;
                    };
                    let (id, head) = heads
                        .entry(request.broker.clone())
                        .or_insert((state.id, *state.head_tx.borrow()));
                    for body in request.bodies.drain(..) {
                        *head += 1;
                        rows.push((*id, *head, body));
                    }
                    false
                })
                .collect()
        };
        for request in unknown {
            let error = ChannelError::UnknownLog {
                broker: request.broker,
            };
            telemetry::append_failed(BACKEND, &error);
            let _ = request.reply.send(Err(error));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let cursors = if self.flush_due {
            self.flush_due = false;
            self.take_dirty_cursors()
        } else {
            Vec::new()
        };
        let written = write_events(&mut self.conn, &rows, &cursors).await;
        if written.is_err() {
            self.restore_dirty_cursors(cursors);
        }
        written?;
        {
            let brokers = self.shared.brokers();
            for (broker, (id, head)) in &heads {
                if let Some(state) = brokers.get(broker).filter(|s| s.id == *id) {
                    state.head_tx.send_replace(*head);
                }
            }
        }
        self.retention_due = true;
        Ok(rows.len())
    }
}

/// Writes one group commit: the events, and the cursors that ride along. A batch that
/// fits one statement and carries no cursors commits by itself (SQLite's autocommit makes a
/// single statement atomic and, with `synchronous=FULL`, durable); anything larger runs in
/// one transaction.
async fn write_events(
    conn: &mut SqliteConnection,
    rows: &[(i64, u64, Bytes)],
    cursors: &[(i64, ObjectKey, u64)],
) -> Result<(), sqlx::Error> {
    if rows.len() <= EXACT_ROWS && cursors.is_empty() {
        return insert_rows(&mut *conn, rows).await;
    }
    let mut tx = conn.begin().await?;
    let mut rest = rows;
    while !rest.is_empty() {
        let (n, _) = insert_shape(rest.len());
        let (chunk, tail) = rest.split_at(n);
        insert_rows(&mut tx, chunk).await?;
        rest = tail;
    }
    write_cursors(&mut tx, cursors).await?;
    tx.commit().await
}

/// Inserts rows with the one statement of exactly their number (at most
/// [`MAX_ROWS_PER_INSERT`]).
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(i64, u64, Bytes)],
) -> Result<(), sqlx::Error> {
    let (n, sql) = insert_shape(rows.len());
    debug_assert_eq!(n, rows.len(), "callers split rows into shapes");
    let mut insert = sqlx::query(sql);
    for (id, seq, body) in rows {
        insert = insert.bind(event_key(*id, *seq)).bind(body.as_ref());
    }
    insert.execute(conn).await?;
    Ok(())
}

async fn write_cursors(
    conn: &mut SqliteConnection,
    cursors: &[(i64, ObjectKey, u64)],
) -> Result<(), sqlx::Error> {
    for (id, trigger, seq) in cursors {
        sqlx::query(include_str!("sql/update_cursor.sql"))
            .bind(*id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .bind(*seq as i64)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes, per log, up to [`RETENTION_CHUNK`] of the oldest events every cursor has
/// passed, and records each trimmed log's head so numbering survives an empty log.
/// Returns how many were deleted and whether some log has more to delete.
async fn delete_passed_events(
    conn: &mut SqliteConnection,
    heads: &HashMap<i64, u64>,
) -> Result<(u64, bool), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let bounds: Vec<(i64, Option<i64>)> = sqlx::query_as(include_str!("sql/retention_bounds.sql"))
        .fetch_all(&mut *tx)
        .await?;
    let (mut deleted, mut more) = (0, false);
    for (id, lowest_cursor) in bounds {
        let Some(bound) = lowest_cursor.or_else(|| heads.get(&id).map(|h| *h as i64)) else {
            continue;
        };
        let Some(oldest): Option<i64> = sqlx::query_scalar(include_str!("sql/min_event.sql"))
            .bind(event_key(id, 0))
            .bind(event_key(id, MAX_SEQ))
            .fetch_one(&mut *tx)
            .await?
        else {
            continue;
        };
        let (oldest, bound) = (seq_of(oldest), bound.max(0) as u64);
        if oldest > bound {
            continue;
        }
        let upto = bound.min(oldest + RETENTION_CHUNK - 1);
        more |= upto < bound;
        deleted += sqlx::query(include_str!("sql/delete_events.sql"))
            .bind(event_key(id, oldest - 1))
            .bind(event_key(id, upto))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(head) = heads.get(&id) {
            sqlx::query(include_str!("sql/update_head.sql"))
                .bind(id)
                .bind(*head as i64)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok((deleted, more))
}
