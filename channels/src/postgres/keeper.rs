//! The task that keeps the database up to date with what this process's consumers did:
//! progress on their leases, leases given up, renewals, and retention.
//!
//! Every [`TICK`] it writes the progress of every live consumer, all in one transaction
//! (`sql/lock_cursors.sql`, `sql/update_leases.sql`, `sql/update_cursors.sql`): locking
//! the triggers' cursor rows first keeps claims out until the cursors are moved, so a new
//! cursor (just below the trigger's lowest lease, or its `claimed` mark) never passes a
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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use weft_config::ObjectKey;

use super::consts::NOTIFY_TAKEOVER;
use super::consumer::{Consumer, Consumers};
use super::progress::{Message, Progress, Release};
use super::retry;
use super::shared::Shared;
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

/// The keeper task's state.
pub(super) struct Keeper {
    shared: Arc<Shared>,
    /// The live consumers, whose progress this task writes.
    consumers: Arc<Consumers>,
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

impl Keeper {
    pub(super) fn new(
        shared: Arc<Shared>,
        consumers: Arc<Consumers>,
        messages: mpsc::UnboundedReceiver<Message>,
    ) -> Self {
        let renew_every = shared.lease / 3;
        let renew_ticks = (renew_every.as_millis() / TICK.as_millis()).max(1);
        Keeper {
            shared,
            consumers,
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
        self.consumers.live()
    }

    /// Writes the progress of live consumers and the pending releases, all in one
    /// transaction; says whether there was any.
    async fn flush(&mut self) -> Result<bool, ChannelError> {
        let mut written = Vec::new();
        let mut progress = Vec::new();
        let mut triggers = BTreeSet::new();
        for consumer in self.consumers() {
            let moved = consumer.progress();
            if moved.is_empty() {
                continue;
            }
            triggers.insert((consumer.broker_id, consumer.trigger.clone()));
            progress.extend_from_slice(&moved);
            written.push((consumer, moved));
        }
        let releases = std::mem::take(&mut self.releases);
        let mut released = BTreeSet::new();
        for release in &releases {
            triggers.insert((release.broker_id, release.trigger.clone()));
            progress.extend_from_slice(&release.leases);
            released.insert(release.broker_id);
        }
        if triggers.is_empty() {
            return Ok(false);
        }
        let (pool, triggers_ref, progress_ref, released_ref) =
            (&self.shared.bookkeeping, &triggers, &progress, &released);
        let result =
            retry::query(|| write_progress(pool, triggers_ref, progress_ref, released_ref)).await;
        match result {
            Ok(()) => {
                for (consumer, moved) in &written {
                    consumer.confirm(moved);
                }
                for &broker_id in &released {
                    debug!(broker_id, "leases released");
                    self.shared.wake(broker_id, true);
                }
                Ok(true)
            }
            // Consumers report their progress again next time; releases are kept.
            Err(error) => {
                self.releases = releases;
                Err(error)
            }
        }
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
        let kept: Vec<i64> = retry::query(|| async move {
            sqlx::query_scalar(include_str!("sql/renew_leases.sql"))
                .bind(ids)
                .bind(epochs)
                .bind(shared.lease_secs())
                .fetch_all(&shared.bookkeeping)
                .await
        })
        .await?;
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
        self.shared.trim_tails(&watched);
        if watched.is_empty() {
            self.heads.clear();
            return Ok(false);
        }
        let (watched_ref, pool) = (&watched, &self.shared.bookkeeping);
        let logs: Vec<(i64, i64, bool)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/watch_logs.sql"))
                .bind(watched_ref)
                .fetch_all(pool)
                .await
        })
        .await?;
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
        let bounds: Vec<(i64, i64, i64)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/retention_bounds.sql"))
                .fetch_all(pool)
                .await
        })
        .await?;
        let mut more = false;
        let mut deleted = 0;
        for (id, bound, retained) in bounds {
            if retained >= bound {
                continue;
            }
            let upto = bound.min(retained + RETENTION_CHUNK);
            more |= upto < bound;
            let count: i64 = retry::query(|| async move {
                sqlx::query_scalar(include_str!("sql/delete_events.sql"))
                    .bind(id)
                    .bind(retained)
                    .bind(upto)
                    .fetch_one(pool)
                    .await
            })
            .await?;
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

/// Writes leases' progress and moves the cursors of their `triggers`, in one transaction;
/// tells other processes about the logs with `released` leases.
async fn write_progress(
    pool: &PgPool,
    triggers: &BTreeSet<(i64, ObjectKey)>,
    progress: &[Progress],
    released: &BTreeSet<i64>,
) -> Result<(), sqlx::Error> {
    let brokers: Vec<i64> = triggers.iter().map(|(id, _)| *id).collect();
    let namespaces: Vec<&str> = triggers.iter().map(|(_, t)| t.namespace.as_str()).collect();
    let names: Vec<&str> = triggers.iter().map(|(_, t)| t.name.as_str()).collect();
    let ids: Vec<i64> = progress.iter().map(|p| p.id).collect();
    let epochs: Vec<i64> = progress.iter().map(|p| p.epoch).collect();
    let los: Vec<i64> = progress.iter().map(|p| p.lo).collect();
    let releases: Vec<bool> = progress.iter().map(|p| p.release).collect();
    let mut tx = pool.begin().await?;
    // Triggers deleted meanwhile have no cursor left to lock, and no leases either.
    sqlx::query(include_str!("sql/lock_cursors.sql"))
        .bind(&brokers)
        .bind(&namespaces)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    sqlx::query(include_str!("sql/update_leases.sql"))
        .bind(&ids)
        .bind(&epochs)
        .bind(&los)
        .bind(&releases)
        .execute(&mut *tx)
        .await?;
    sqlx::query(include_str!("sql/update_cursors.sql"))
        .bind(&brokers)
        .bind(&namespaces)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    if !released.is_empty() {
        let logs: Vec<i64> = released.iter().copied().collect();
        sqlx::query(include_str!("sql/notify_logs.sql"))
            .bind(&logs)
            .bind(NOTIFY_TAKEOVER)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
