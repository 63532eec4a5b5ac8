//! The task that appends: group commits.
//!
//! Append requests arrive over an mpsc channel; the writer takes every request already
//! waiting (up to `max_batch` events) into one commit and only then answers each of them
//! ([`group_commit`], shared with SQLite). A batch for one broker is a single statement
//! (`sql/append.sql`: number and insert), so it costs one round trip and one commit; a
//! batch spanning brokers runs that statement per broker, in id order (so two processes
//! never lock brokers in opposite orders), in one transaction. A lone append commits at
//! once: nothing waits for company.
//!
//! Other processes learn of new events from [`notify`], which runs beside the writer:
//! `NOTIFY` serializes the commits of every notifying transaction in the database, so it
//! stays out of the commits that wait for the disk.
//!
//! The writer never stops on errors: a batch whose connection turns out to be broken is
//! tried again on another; any other failure fails its requests (retriably) and the next
//! batch tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use tracing::debug;

use super::consts::{BACKEND, NOTIFY_NEW};
use super::retry::retrying;
use super::shared::Shared;
use crate::ChannelError;
use crate::sql::group_commit::{self, GroupCommit, group_commit};

/// Events to append to one log, already encoded by the caller, with the log's id the
/// caller resolved the broker to.
pub(super) type AppendRequest = group_commit::AppendRequest<i64>;

/// The writer task's state.
struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<AppendRequest>,
    max_batch: usize,
    /// The ids of the logs written, for [`notify`].
    written: mpsc::UnboundedSender<i64>,
}

/// Serves append requests until every sender is gone (the channel was closed or dropped).
/// The ids of the logs written go to `written`, for [`notify`].
pub(super) async fn run(
    shared: Arc<Shared>,
    requests: mpsc::Receiver<AppendRequest>,
    max_batch: usize,
    written: mpsc::UnboundedSender<i64>,
) {
    let mut writer = Writer {
        shared,
        requests,
        max_batch,
        written,
    };
    let mut left = None;
    loop {
        let first = match left.take() {
            Some(first) => first,
            None => match writer.requests.recv().await {
                Some(first) => first,
                None => break,
            },
        };
        left = group_commit(&mut writer, first).await;
    }
}

impl GroupCommit for Writer {
    const BACKEND: &'static str = BACKEND;
    type Log = i64;
    type Item = AppendRequest;

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn try_next(&mut self) -> Option<AppendRequest> {
        self.requests.try_recv().ok()
    }

    fn as_append(item: AppendRequest) -> Result<AppendRequest, AppendRequest> {
        Ok(item)
    }

    fn commits(&self) -> &AtomicU64 {
        &self.shared.commits
    }

    /// Writes each log's share of the batch (its events in request order); answers the
    /// requests of logs that turned out to be gone.
    async fn write(&mut self, batch: &mut Vec<AppendRequest>) -> Result<usize, sqlx::Error> {
        let mut shares: BTreeMap<i64, Vec<Bytes>> = BTreeMap::new();
        for request in batch.iter_mut() {
            shares
                .entry(request.log)
                .or_default()
                .append(&mut request.bodies);
        }
        // After a server restart every pooled connection is dead and fails once; the batch
        // goes to the next one rather than fail the producers. Should a lost connection
        // have committed before it broke, the events are stored twice: at least once.
        let shared = &self.shared;
        let stored = retrying(|| write(shared, &shares)).await?;
        let mut events = 0;
        for (&id, bodies) in &shares {
            if let Some(&head) = stored.get(&id) {
                events += bodies.len();
                // Subscriptions here read the events from memory, and need not wait for
                // the notification's round trip.
                shared.remember(id, head, bodies);
                shared.wake(id, false);
                let _ = self.written.send(id);
            } else if let Some(request) = batch.iter().find(|r| r.log == id) {
                shared.forget_log(&request.broker, id);
            }
        }
        for request in batch.extract_if(.., |r| !stored.contains_key(&r.log)) {
            let unknown = ChannelError::UnknownLog {
                broker: request.broker,
            };
            let _ = request.reply.send(Err(unknown));
        }
        Ok(events)
    }
}

/// Notifies `NOTIFY_CHANNEL` of every log in `written`, all that are waiting in one
/// statement, until the writer ends. A failed notification is not retried: the keepers'
/// look at the logs covers for it within a second.
pub(super) async fn notify(pool: PgPool, mut written: mpsc::UnboundedReceiver<i64>) {
    let mut logs = BTreeSet::new();
    while let Some(id) = written.recv().await {
        logs.insert(id);
        while let Ok(id) = written.try_recv() {
            logs.insert(id);
        }
        let ids: Vec<i64> = std::mem::take(&mut logs).into_iter().collect();
        let ids = &ids;
        let sent = retrying(|| async {
            sqlx::query(include_str!("sql/notify_logs.sql"))
                .bind(ids)
                .bind(NOTIFY_NEW)
                .execute(&pool)
                .await
        })
        .await;
        if let Err(error) = sent {
            debug!(%error, "notifying other processes of new events failed");
        }
    }
}

/// Writes a batch; returns the new head of each log that exists (and so was written).
async fn write(
    shared: &Shared,
    shares: &BTreeMap<i64, Vec<Bytes>>,
) -> Result<BTreeMap<i64, i64>, sqlx::Error> {
    let mut stored = BTreeMap::new();
    if shares.len() == 1 {
        // One statement is its own transaction: one round trip, one commit.
        let mut conn = shared.pool.acquire().await?;
        for (&id, bodies) in shares {
            if let Some(head) = append(&mut conn, id, bodies).await? {
                stored.insert(id, head);
            }
        }
        return Ok(stored);
    }
    let mut tx = shared.pool.begin().await?;
    for (&id, bodies) in shares {
        if let Some(head) = append(&mut tx, id, bodies).await? {
            stored.insert(id, head);
        }
    }
    tx.commit().await?;
    Ok(stored)
}

/// Appends one log's events; returns its new head, `None` when the log is gone.
async fn append(
    conn: &mut PgConnection,
    id: i64,
    bodies: &[Bytes],
) -> Result<Option<i64>, sqlx::Error> {
    let bodies: Vec<&[u8]> = bodies.iter().map(Bytes::as_ref).collect();
    sqlx::query_scalar(include_str!("sql/append.sql"))
        .bind(id)
        .bind(&bodies)
        .fetch_optional(conn)
        .await
}
