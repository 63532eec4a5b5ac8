//! The task that keeps the database up to date with what this process's consumers did:
//! progress on their leases, leases given up, renewals, and retention.
//!
//! Every [`TICK`] it writes the progress of every live consumer, per trigger in one
//! transaction (`sql/lock_cursor.sql`, `sql/update_leases.sql`, `sql/update_cursor.sql`):
//! locking the trigger's cursor row first keeps claims out until the cursor is moved, so
//! the new cursor (just below the lowest lease, or the `claimed` mark) never passes a
//! range claimed meanwhile. Released leases (from consumers that ended) are written at
//! once and wake the log's subscriptions, here and (by notification) elsewhere. A third of
//! the lease duration after the last renewal, the held leases are renewed; those that
//! changed hands are forgotten. Once a second it looks at the logs this process has
//! subscriptions on and wakes those that changed or have a lease to take over (which is how
//! expired leases are noticed, and the fallback for missed notifications). Twice a second,
//! retention runs.
//!
//! Nothing here stops on errors: what could not be written stays to be written at the next
//! tick, and one warning is logged per outage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use weft_config::ObjectKey;

use super::consumer::{Consumer, Progress};
use super::{NOTIFY_TAKEOVER, Shared, lock, retrying, unavailable};
use crate::ChannelError;

/// How often progress is written. A crash loses at most this much of it, which only means
/// redelivery.
const TICK: Duration = Duration::from_millis(50);
/// Retention runs every this many ticks (twice a second), and at once again while a log
/// has more to delete.
const RETENTION_TICKS: u32 = 10;
/// The logs watched here are looked at every this many ticks (once a second): wake-ups
/// for what notifications missed, and for leases that expired.
const WATCH_TICKS: u32 = 20;
/// The most events one retention run deletes per log, so that a large backlog being
/// released never holds long locks; the rest goes in the next runs.
const RETENTION_CHUNK: i64 = 4096;

/// What the keeper is asked to do.
pub(super) enum Message {
    /// A consumer ended: write its progress and give its leases up.
    Release(Release),
    /// Write progress now.
    Flush(oneshot::Sender<Result<(), ChannelError>>),
    /// Write progress and apply retention now.
    Compact(oneshot::Sender<Result<(), ChannelError>>),
    /// Write progress, release every lease still held, and stop.
    Close(oneshot::Sender<()>),
}

/// The leases of a consumer that ended, with its last progress.
pub(super) struct Release {
    pub(super) broker_id: i64,
    pub(super) trigger: ObjectKey,
    pub(super) leases: Vec<Progress>,
}

/// The keeper task's state.
pub(super) struct Keeper {
    shared: Arc<Shared>,
    messages: mpsc::UnboundedReceiver<Message>,
    /// Releases not written yet (the database could not be reached).
    releases: Vec<Release>,
    /// Leases are renewed every this many ticks.
    renew_ticks: u32,
    /// Retention left something to delete.
    retention_more: bool,
    /// The heads of the watched logs when last looked at.
    heads: HashMap<i64, i64>,
    /// The operations that failed last time, so that an outage is logged once, and the
    /// recovery after it.
    failing: HashSet<&'static str>,
}

/// One trigger's share of a flush.
#[derive(Default)]
struct Group {
    progress: Vec<Progress>,
    consumers: Vec<(Arc<Consumer>, Vec<Progress>)>,
    releases: Vec<Release>,
}

impl Keeper {
    pub(super) fn new(shared: Arc<Shared>, messages: mpsc::UnboundedReceiver<Message>) -> Self {
        let renew_every = shared.lease / 3;
        let renew_ticks = (renew_every.as_millis() / TICK.as_millis()).max(1);
        Keeper {
            shared,
            messages,
            releases: Vec::new(),
            renew_ticks: u32::try_from(renew_ticks).unwrap_or(u32::MAX),
            retention_more: true,
            heads: HashMap::new(),
            failing: HashSet::new(),
        }
    }

    /// Serves until the channel closes (or is dropped, which aborts the task).
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                // Ticks first, so that a stream of requests cannot starve renewals.
                biased;
                _ = tick.tick() => {
                    ticks = ticks.wrapping_add(1);
                    let flushed = self.flush().await;
                    self.report("writing progress", &flushed);
                    if ticks.is_multiple_of(self.renew_ticks) {
                        let renewed = self.renew().await;
                        self.report("renewing leases", &renewed);
                    }
                    if ticks.is_multiple_of(WATCH_TICKS) {
                        let watched = self.watch().await;
                        self.report("looking at the logs", &watched);
                    }
                    if self.retention_more || ticks.is_multiple_of(RETENTION_TICKS) {
                        let retained = self.retain().await;
                        self.report("applying retention", &retained);
                    }
                }
                message = self.messages.recv() => match message {
                    Some(Message::Release(release)) => {
                        self.releases.push(release);
                        let flushed = self.flush().await;
                        self.report("releasing leases", &flushed);
                    }
                    Some(Message::Flush(reply)) => {
                        let _ = reply.send(self.flush().await.map(drop));
                    }
                    Some(Message::Compact(reply)) => {
                        let result = match self.flush().await {
                            Ok(_) => self.retain().await.map(drop),
                            Err(error) => Err(error),
                        };
                        let _ = reply.send(result);
                    }
                    Some(Message::Close(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        break;
                    }
                    None => break,
                },
            }
        }
    }

    /// Logs the first failure of an outage and the recovery after it. `Ok(false)`: the
    /// operation had nothing to do and did not ask the database, which proves nothing.
    fn report(&mut self, what: &'static str, result: &Result<bool, ChannelError>) {
        match result {
            Err(error) if self.failing.insert(what) => {
                warn!(%error, "postgres channel: {what} failed; retrying");
            }
            Ok(true) if self.failing.remove(what) => {
                info!("postgres channel: {what} works again");
            }
            _ => {}
        }
    }

    fn consumers(&self) -> Vec<Arc<Consumer>> {
        let mut consumers = lock(&self.shared.consumers);
        consumers.retain(|c| c.strong_count() > 0);
        consumers.iter().filter_map(|c| c.upgrade()).collect()
    }

    /// Writes the progress of live consumers and the pending releases; says whether there
    /// was any.
    async fn flush(&mut self) -> Result<bool, ChannelError> {
        let mut groups: HashMap<(i64, ObjectKey), Group> = HashMap::new();
        for consumer in self.consumers() {
            let progress = consumer.progress();
            if progress.is_empty() {
                continue;
            }
            let group = groups
                .entry((consumer.broker_id, consumer.trigger.clone()))
                .or_default();
            group.progress.extend_from_slice(&progress);
            group.consumers.push((consumer, progress));
        }
        for release in std::mem::take(&mut self.releases) {
            let group = groups
                .entry((release.broker_id, release.trigger.clone()))
                .or_default();
            group.progress.extend_from_slice(&release.leases);
            group.releases.push(release);
        }
        let mut result = Ok(!groups.is_empty());
        for ((broker_id, trigger), group) in groups {
            let released = !group.releases.is_empty();
            let (pool, trigger_ref, progress) =
                (&self.shared.bookkeeping, &trigger, &group.progress);
            match retrying(|| write_progress(pool, broker_id, trigger_ref, progress)).await {
                Ok(()) => {
                    for (consumer, progress) in &group.consumers {
                        consumer.confirm(progress);
                    }
                    if released {
                        debug!(trigger = %trigger, "leases released");
                        self.shared.wake(broker_id, true);
                    }
                }
                // Consumers report their progress again next time; releases are kept.
                Err(error) => {
                    self.releases.extend(group.releases);
                    result = Err(unavailable(error));
                }
            }
        }
        result
    }

    /// Extends the leases held; forgets those that changed hands.
    async fn renew(&mut self) -> Result<bool, ChannelError> {
        let held: Vec<_> = self
            .consumers()
            .into_iter()
            .map(|consumer| {
                let held = consumer.held();
                (consumer, held)
            })
            .filter(|(_, held)| !held.is_empty())
            .collect();
        if held.is_empty() {
            return Ok(false);
        }
        let (ids, epochs): (Vec<i64>, Vec<i64>) = held.iter().flat_map(|(_, h)| h).copied().unzip();
        let (ids, epochs, shared) = (&ids, &epochs, &self.shared);
        let kept: Vec<i64> = retrying(|| async move {
            sqlx::query_scalar(include_str!("sql/renew_leases.sql"))
                .bind(ids)
                .bind(epochs)
                .bind(shared.lease_secs())
                .fetch_all(&shared.bookkeeping)
                .await
        })
        .await
        .map_err(unavailable)?;
        let kept: HashSet<i64> = kept.into_iter().collect();
        for (consumer, held) in held {
            let lost: HashSet<i64> = held
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| !kept.contains(id))
                .collect();
            if !lost.is_empty() {
                consumer.lost(&lost);
            }
        }
        Ok(true)
    }

    /// Wakes the subscriptions of watched logs whose head moved, that have a lease free to
    /// take over, or that are gone: what notifications would have said, had they arrived,
    /// and what they never say (a lease expired).
    async fn watch(&mut self) -> Result<bool, ChannelError> {
        let watched = self.shared.watched_logs();
        if watched.is_empty() {
            self.heads.clear();
            return Ok(false);
        }
        let (watched_ref, pool) = (&watched, &self.shared.bookkeeping);
        let logs: Vec<(i64, i64, bool)> = retrying(|| async move {
            sqlx::query_as(include_str!("sql/watch_logs.sql"))
                .bind(watched_ref)
                .fetch_all(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
        let mut heads = HashMap::with_capacity(logs.len());
        for (id, head, takeover) in logs {
            if takeover || self.heads.get(&id) != Some(&head) {
                self.shared.wake(id, takeover);
            }
            heads.insert(id, head);
        }
        for id in watched.iter().filter(|id| !heads.contains_key(id)) {
            self.shared.wake(*id, false);
        }
        self.heads = heads;
        Ok(true)
    }

    /// Deletes, per log, up to [`RETENTION_CHUNK`] of the oldest events every cursor has
    /// passed; notes whether some log has more to delete.
    async fn retain(&mut self) -> Result<bool, ChannelError> {
        let pool = &self.shared.bookkeeping;
        let bounds: Vec<(i64, i64, i64)> = retrying(|| async move {
            sqlx::query_as(include_str!("sql/retention_bounds.sql"))
                .fetch_all(pool)
                .await
        })
        .await
        .map_err(unavailable)?;
        let mut more = false;
        let mut deleted = 0;
        for (id, bound, retained) in bounds {
            if retained >= bound {
                continue;
            }
            let upto = bound.min(retained + RETENTION_CHUNK);
            more |= upto < bound;
            let count: i64 = retrying(|| async move {
                sqlx::query_scalar(include_str!("sql/delete_events.sql"))
                    .bind(id)
                    .bind(retained)
                    .bind(upto)
                    .fetch_one(pool)
                    .await
            })
            .await
            .map_err(unavailable)?;
            deleted += count;
        }
        self.retention_more = more;
        if deleted > 0 {
            debug!(deleted, "postgres retention deleted events");
        }
        Ok(true)
    }

    /// Writes the last progress and releases every lease still held, so that other
    /// processes take them over at once rather than after they expire.
    async fn close(&mut self) {
        for consumer in self.consumers() {
            let leases = consumer.detach();
            if !leases.is_empty() {
                self.releases.push(Release {
                    broker_id: consumer.broker_id,
                    trigger: consumer.trigger.clone(),
                    leases,
                });
            }
        }
        if let Err(error) = self.flush().await {
            warn!(%error, "postgres channel: releasing leases on close failed; they expire instead");
        }
    }
}

/// Writes one trigger's progress in one transaction and moves its cursor.
async fn write_progress(
    pool: &PgPool,
    broker_id: i64,
    trigger: &ObjectKey,
    progress: &[Progress],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: Option<i64> = sqlx::query_scalar(include_str!("sql/lock_cursor.sql"))
        .bind(broker_id)
        .bind(&trigger.namespace)
        .bind(&trigger.name)
        .fetch_optional(&mut *tx)
        .await?;
    if locked.is_none() {
        // The trigger's cursor (and with it its leases) was deleted: nothing to record.
        return Ok(());
    }
    let ids: Vec<i64> = progress.iter().map(|p| p.id).collect();
    let epochs: Vec<i64> = progress.iter().map(|p| p.epoch).collect();
    let los: Vec<i64> = progress.iter().map(|p| p.lo).collect();
    let releases: Vec<bool> = progress.iter().map(|p| p.release).collect();
    sqlx::query(include_str!("sql/update_leases.sql"))
        .bind(broker_id)
        .bind(&trigger.namespace)
        .bind(&trigger.name)
        .bind(&ids)
        .bind(&epochs)
        .bind(&los)
        .bind(&releases)
        .execute(&mut *tx)
        .await?;
    sqlx::query(include_str!("sql/update_cursor.sql"))
        .bind(broker_id)
        .bind(&trigger.namespace)
        .bind(&trigger.name)
        .execute(&mut *tx)
        .await?;
    if releases.contains(&true) {
        sqlx::query(include_str!("sql/notify.sql"))
            .bind(broker_id)
            .bind(NOTIFY_TAKEOVER)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
