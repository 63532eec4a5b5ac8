//! [`Shared`]: what the channel, its subscriptions and its background tasks share (the
//! pools, cached broker ids, wake-ups and the tails of recent events).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use weft_config::ObjectKey;

use super::progress::Message;
use super::retry;
use super::tail::Tail;
use crate::ChannelError;

/// What the channel, its subscriptions and its tasks share.
pub(super) struct Shared {
    /// Connections for what must be durable when a call returns: appends, cursors of new
    /// subscriptions, parked events, deletions.
    pub(super) pool: PgPool,
    /// Connections with `synchronous_commit = off`, for the bookkeeping of leases and
    /// cursors (claims, progress, renewals, retention): losing its last moments in a server
    /// crash only means redelivery, so it need not wait for the server's disk. The server
    /// recovers a prefix of its log, so nothing it keeps can be ahead of the durable
    /// appends.
    pub(super) bookkeeping: PgPool,
    /// The schema the tables are in, which tells this database's notifications from those
    /// of other schemas.
    pub(super) schema: String,
    /// Names this process in `weft_leases.holder`, for the operator.
    pub(super) holder: String,
    pub(super) lease: Duration,
    /// Broker ids by name, so appends need no lookup; an entry is dropped when the broker
    /// turns out to be gone.
    pub(super) ids: Mutex<HashMap<ObjectKey, i64>>,
    /// Per broker id: marked changed when the log may have something new for its
    /// subscriptions (an append, a deletion); its value counts the times a lease may have
    /// become free to take over, so that subscriptions look for those only then. Dropping
    /// a sender ends the waits on it.
    pub(super) wakes: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// Per broker id: the latest events this process appended.
    pub(super) tails: Mutex<HashMap<i64, Tail>>,
    /// To the keeper: released leases, flush and compaction requests.
    pub(super) keeper: mpsc::UnboundedSender<Message>,
    pub(super) closed: AtomicBool,
    /// Group commits of appends so far.
    pub(super) commits: AtomicU64,
}

/// Locks a mutex; nothing panics while these locks are held, so poisoned data is still
/// consistent.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The lease duration in seconds, as SQL takes it.
    pub(super) fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Wakes the subscriptions of one log in this process: new events, or (`takeover`) a
    /// lease that may be free to take over.
    pub(super) fn wake(&self, broker_id: i64, takeover: bool) {
        if let Some(wake) = lock(&self.wakes).get(&broker_id) {
            wake.send_modify(|takeovers| *takeovers += u64::from(takeover));
        }
    }

    /// Wakes every subscription in this process, to look for everything (notifications
    /// may have been missed).
    pub(super) fn wake_all(&self) {
        lock(&self.wakes).values().for_each(|wake| {
            wake.send_modify(|takeovers| *takeovers += 1);
        });
    }

    /// A receiver of the log's wake-ups.
    pub(super) fn wake_receiver(&self, broker_id: i64) -> watch::Receiver<u64> {
        let mut wakes = lock(&self.wakes);
        wakes.retain(|_, wake| wake.receiver_count() > 0);
        wakes
            .entry(broker_id)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// The logs this process has subscriptions on.
    pub(super) fn watched_logs(&self) -> Vec<i64> {
        let mut wakes = lock(&self.wakes);
        wakes.retain(|_, wake| wake.receiver_count() > 0);
        wakes.keys().copied().collect()
    }

    /// Forgets a log that is gone: its cached id and its waits, which end.
    pub(super) fn forget_log(&self, broker: &ObjectKey, broker_id: i64) {
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
    pub(super) fn remember(&self, broker_id: i64, head: i64, bodies: &[Bytes]) {
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
    pub(super) fn trim_tails(&self, watched: &[i64]) {
        lock(&self.tails).retain(|id, _| watched.contains(id));
    }

    /// Events `from..=to` of a log, if this process appended all of them lately.
    pub(super) fn recent(&self, broker_id: i64, from: i64, to: i64) -> Option<Vec<(i64, Bytes)>> {
        lock(&self.tails).get(&broker_id)?.get(from, to)
    }

    /// The broker's id: cached, or looked up. `None` when it has no log.
    pub(super) async fn broker_id(&self, broker: &ObjectKey) -> Result<Option<i64>, ChannelError> {
        if let Some(&id) = lock(&self.ids).get(broker) {
            return Ok(Some(id));
        }
        self.lookup(broker).await
    }

    /// Looks the broker's id up in the database and caches it.
    pub(super) async fn lookup(&self, broker: &ObjectKey) -> Result<Option<i64>, ChannelError> {
        let id: Option<i64> = retry::query(|| async move {
            sqlx::query_scalar(include_str!("sql/select_broker.sql"))
                .bind(&broker.namespace)
                .bind(&broker.name)
                .fetch_optional(&self.pool)
                .await
        })
        .await?;
        if let Some(id) = id {
            lock(&self.ids).insert(broker.clone(), id);
        }
        Ok(id)
    }

    /// Asks the keeper to write progress now (and, with `compact`, to apply retention).
    pub(super) async fn flush(&self, compact: bool) -> Result<(), ChannelError> {
        let (reply, answer) = oneshot::channel();
        let message = if compact {
            Message::Compact(reply)
        } else {
            Message::Flush(reply)
        };
        self.keeper
            .send(message)
            .map_err(|_| ChannelError::Closed)?;
        answer.await.map_err(|_| ChannelError::Closed)?
    }
}
