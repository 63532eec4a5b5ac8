//! The task that appends: group commits.
//!
//! Append requests arrive over an mpsc channel; the writer takes every request already
//! waiting (up to `max_batch` events) into one commit and only then answers each of them.
//! A batch for one broker is a single statement (`sql/append.sql`: number and insert), so
//! it costs one round trip and one commit; a batch spanning brokers runs that statement
//! per broker, in id order (so two processes never lock brokers in opposite orders), in
//! one transaction. A lone append commits at once: nothing waits for company.
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
use std::sync::atomic::Ordering;

use bytes::Bytes;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use weft_config::ObjectKey;

use super::retry::retrying;
use super::shared::Shared;
use super::{BACKEND, NOTIFY_NEW};
use crate::error::SharedError;
use crate::{ChannelError, telemetry};

/// Events to append to one log, already encoded by the caller.
pub(super) struct AppendRequest {
    pub(super) broker: ObjectKey,
    /// The log the caller resolved `broker` to.
    pub(super) broker_id: i64,
    pub(super) bodies: Vec<Bytes>,
    pub(super) reply: oneshot::Sender<Result<(), ChannelError>>,
}

/// One broker's share of a batch: its events in request order, and who waits for them.
#[derive(Default)]
struct Share {
    bodies: Vec<Bytes>,
    requests: Vec<AppendRequest>,
}

/// Serves append requests until every sender is gone (the channel was closed or dropped).
/// The ids of the logs written go to `written`, for [`notify`].
pub(super) async fn run(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<AppendRequest>,
    max_batch: usize,
    written: mpsc::UnboundedSender<i64>,
) {
    while let Some(first) = requests.recv().await {
        let mut total = first.bodies.len();
        let mut batch = vec![first];
        while total < max_batch {
            match requests.try_recv() {
                Ok(next) => {
                    total += next.bodies.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        commit(&shared, batch, &written).await;
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

async fn commit(shared: &Shared, batch: Vec<AppendRequest>, notices: &mpsc::UnboundedSender<i64>) {
    let mut shares: BTreeMap<i64, Share> = BTreeMap::new();
    for mut request in batch {
        let share = shares.entry(request.broker_id).or_default();
        share.bodies.append(&mut request.bodies);
        share.requests.push(request);
    }
    let events: usize = shares.values().map(|s| s.bodies.len()).sum();
    // After a server restart every pooled connection is dead and fails once; the batch
    // goes to the next one rather than fail the producers. Should a lost connection have
    // committed before it broke, the events are stored twice: at least once.
    let written = retrying(|| write(shared, &shares)).await;
    match written {
        Ok(stored) => {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            telemetry::appended(BACKEND, events);
            for (id, share) in shares {
                let head = stored.get(&id).copied();
                let found = head.is_some();
                if let Some(head) = head {
                    // Subscriptions here read the events from memory, and need not wait
                    // for the notification's round trip.
                    shared.remember(id, head, &share.bodies);
                    shared.wake(id, false);
                    let _ = notices.send(id);
                } else if let Some(first) = share.requests.first() {
                    shared.forget_log(&first.broker, id);
                }
                for request in share.requests {
                    let result = if found {
                        Ok(())
                    } else {
                        Err(ChannelError::UnknownLog {
                            broker: request.broker,
                        })
                    };
                    let _ = request.reply.send(result);
                }
            }
        }
        Err(error) => {
            warn!(%error, events, "postgres group commit failed");
            let closed = matches!(error, sqlx::Error::PoolClosed);
            let shared_error = SharedError(Arc::new(error));
            for request in shares.into_values().flat_map(|s| s.requests) {
                let error = if closed {
                    ChannelError::Closed
                } else {
                    ChannelError::Append {
                        broker: request.broker,
                        source: shared_error.boxed(),
                    }
                };
                telemetry::append_failed(BACKEND, &error);
                let _ = request.reply.send(Err(error));
            }
        }
    }
}

/// Writes a batch; returns the new head of each log that exists (and so was written).
async fn write(
    shared: &Shared,
    shares: &BTreeMap<i64, Share>,
) -> Result<BTreeMap<i64, i64>, sqlx::Error> {
    let mut stored = BTreeMap::new();
    if shares.len() == 1 {
        // One statement is its own transaction: one round trip, one commit.
        let mut conn = shared.pool.acquire().await?;
        for (&id, share) in shares {
            if let Some(head) = append(&mut conn, id, &share.bodies).await? {
                stored.insert(id, head);
            }
        }
        return Ok(stored);
    }
    let mut tx = shared.pool.begin().await?;
    for (&id, share) in shares {
        if let Some(head) = append(&mut tx, id, &share.bodies).await? {
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
