//! The read side: a trigger's subscription, the leases it holds, and its acknowledgements.
//!
//! Each subscription is one *consumer*. When it has nothing left to hand out it claims
//! work, in this order: events of a lease it holds but has not loaded yet; a lease of the
//! trigger that was released or expired (`sql/take_lease.sql`); the next range of events
//! after the trigger's `claimed` mark (`sql/claim_range.sql`). Claims run in a task of
//! their own, so a `next` cancelled mid-claim loses nothing: the claimed events wait in the
//! consumer's buffer for the next call.
//!
//! Acknowledgements only touch memory (an [`AckTracker`] per lease); the keeper writes the
//! progress. When the subscription and every delivery it handed out are gone, the consumer
//! releases its leases (with their progress) so that another consumer, in this process or
//! another, takes them over at once.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;
use weft_config::ObjectKey;
use weft_config::event::codec;

use super::progress::{Message, Progress, Release};
use super::retry;
use super::shared::{Shared, lock};
use crate::ack::AckTracker;
use crate::{AckHandle, ChannelError, Delivery, Subscription};

/// The fewest events a new range claims (unless fewer are there): claims cost round trips,
/// and a consumer rarely asks for one event only once.
const CLAIM_MIN: usize = 32;

/// One subscription's claim on its trigger's events.
pub(super) struct Consumer {
    pub(super) shared: Arc<Shared>,
    pub(super) broker: ObjectKey,
    pub(super) broker_id: i64,
    pub(super) trigger: ObjectKey,
    state: Mutex<State>,
}

/// The live consumers of this process, whose progress the keeper writes: shared by the
/// channel, which registers each new subscription's consumer, and the keeper.
#[derive(Default)]
pub(super) struct Consumers(Mutex<Vec<Weak<Consumer>>>);

impl Consumers {
    fn register(&self, consumer: &Arc<Consumer>) {
        let mut consumers = lock(&self.0);
        consumers.retain(|c| c.strong_count() > 0);
        consumers.push(Arc::downgrade(consumer));
    }

    /// The consumers still alive.
    pub(super) fn live(&self) -> Vec<Arc<Consumer>> {
        let mut consumers = lock(&self.0);
        consumers.retain(|c| c.strong_count() > 0);
        consumers.iter().filter_map(Weak::upgrade).collect()
    }
}

#[derive(Default)]
struct State {
    /// The leases this consumer holds, by id.
    leases: BTreeMap<i64, Lease>,
    /// Claimed events not handed out yet, in order.
    buffer: VecDeque<Buffered>,
    /// The channel was closed: the leases were released, acknowledgements count no more.
    detached: bool,
}

struct Lease {
    epoch: i64,
    /// The lease's last event.
    hi: i64,
    /// Everything below this is done as far as the database knows.
    stored_lo: i64,
    /// What is handed out and acknowledged; everything up to `committed` is done.
    tracker: AckTracker,
    /// The last event loaded into the buffer.
    fetched: i64,
}

impl Lease {
    fn progress(&self, id: i64, release: bool) -> Progress {
        Progress {
            id,
            epoch: self.epoch,
            lo: self.tracker.committed() as i64 + 1,
            release,
        }
    }
}

struct Buffered {
    lease: i64,
    seq: i64,
    /// `None` for a number missing from the log, which is skipped as done.
    body: Option<Bytes>,
}

impl Consumer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn ack(&self, lease: i64, seq: i64) {
        let mut state = self.state();
        if state.detached {
            return;
        }
        if let Some(lease) = state.leases.get_mut(&lease) {
            lease.tracker.ack(seq as u64);
        }
    }

    /// The leases whose progress moved since it was last written.
    pub(super) fn progress(&self) -> Vec<Progress> {
        let state = self.state();
        state
            .leases
            .iter()
            // Finished in order up to at least `stored_lo`, which the database has as open.
            .filter(|(_, lease)| lease.tracker.committed() as i64 >= lease.stored_lo)
            .map(|(&id, lease)| lease.progress(id, false))
            .collect()
    }

    /// Notes that `written` is in the database; finished leases are forgotten.
    pub(super) fn confirm(&self, written: &[Progress]) {
        let mut state = self.state();
        for p in written {
            let Some(lease) = state.leases.get_mut(&p.id).filter(|l| l.epoch == p.epoch) else {
                continue;
            };
            lease.stored_lo = lease.stored_lo.max(p.lo);
            if lease.stored_lo > lease.hi {
                state.leases.remove(&p.id);
            }
        }
    }

    /// The leases held, as (id, epoch), for renewal.
    pub(super) fn held(&self) -> Vec<(i64, i64)> {
        let state = self.state();
        state.leases.iter().map(|(&id, l)| (id, l.epoch)).collect()
    }

    /// Forgets leases another consumer took over (or that were deleted with their
    /// trigger), and their events not handed out yet.
    pub(super) fn lost(&self, ids: &HashSet<i64>) {
        let mut state = self.state();
        let before = state.leases.len();
        state.leases.retain(|id, _| !ids.contains(id));
        if state.leases.len() < before {
            debug!(trigger = %self.trigger, lost = before - state.leases.len(), "leases lost to another consumer");
            state.buffer.retain(|b| !ids.contains(&b.lease));
        }
    }

    /// Gives every lease up (the channel is closing); later acknowledgements are ignored.
    pub(super) fn detach(&self) -> Vec<Progress> {
        let mut state = self.state();
        state.detached = true;
        state.buffer.clear();
        let released = releases(&state.leases);
        state.leases.clear();
        released
    }

    /// Starts holding a lease claimed or taken over.
    fn hold(&self, id: i64, epoch: i64, lo: i64, hi: i64) {
        let lease = Lease {
            epoch,
            hi,
            stored_lo: lo,
            tracker: AckTracker::new((lo - 1).max(0) as u64),
            fetched: lo - 1,
        };
        self.state().leases.insert(id, lease);
    }

    /// The next events of a held lease that are not loaded yet, at most `want`.
    fn unfetched(&self, want: usize) -> Option<(i64, i64, i64)> {
        let state = self.state();
        state
            .leases
            .iter()
            .find(|(_, l)| l.fetched < l.hi)
            .map(|(&id, l)| (id, l.fetched + 1, l.hi.min(l.fetched + want as i64)))
    }

    /// Loads events `from..=to` of a held lease into the buffer: from the events this
    /// process appended lately if it has them all, else from the database.
    async fn fetch(&self, lease: i64, from: i64, to: i64) -> Result<(), ChannelError> {
        if let Some(rows) = self.shared.recent(self.broker_id, from, to) {
            self.load(lease, from, to, rows);
            return Ok(());
        }
        let rows: Vec<(i64, Vec<u8>)> = retry::query(|| async move {
            sqlx::query_as(include_str!("sql/select_events.sql"))
                .bind(self.broker_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.shared.bookkeeping)
                .await
        })
        .await?;
        let rows = rows
            .into_iter()
            .map(|(seq, body)| (seq, Bytes::from(body)))
            .collect();
        self.load(lease, from, to, rows);
        Ok(())
    }

    /// Puts the stored `rows` (sequence number, body) of events `from..=to` of a held
    /// lease into the buffer; numbers without a row are handed out as done.
    fn load(&self, lease: i64, from: i64, to: i64, rows: Vec<(i64, Bytes)>) {
        let mut state = self.state();
        let Some(held) = state.leases.get_mut(&lease) else {
            return; // lost meanwhile
        };
        held.fetched = to;
        let mut rows = rows.into_iter().peekable();
        for seq in from..=to {
            let body = rows
                .next_if(|(stored, _)| *stored == seq)
                .map(|(_, body)| body);
            state.buffer.push_back(Buffered { lease, seq, body });
        }
    }

    /// Hands out up to `max` buffered events. A record that cannot be decoded ends the
    /// batch; alone, it is an error (returned again on every call: the trigger stops
    /// rather than skip an event).
    fn hand_out(self: &Arc<Self>, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        let mut state = self.state();
        let state = &mut *state;
        let mut deliveries = Vec::new();
        while deliveries.len() < max {
            let Some(next) = state.buffer.front() else {
                break;
            };
            let (lease_id, seq) = (next.lease, next.seq);
            let Some(lease) = state.leases.get_mut(&lease_id) else {
                state.buffer.pop_front(); // its lease was lost
                continue;
            };
            let Some(body) = &next.body else {
                lease.tracker.hand_out(seq as u64);
                lease.tracker.ack(seq as u64);
                state.buffer.pop_front();
                continue;
            };
            match codec::decode(body.clone()) {
                Ok(event) => {
                    lease.tracker.hand_out(seq as u64);
                    state.buffer.pop_front();
                    let consumer = Arc::clone(self);
                    deliveries.push(Delivery {
                        event,
                        ack: AckHandle::new(move || consumer.ack(lease_id, seq)),
                    });
                }
                Err(source) if deliveries.is_empty() => {
                    return Err(ChannelError::Corrupt {
                        broker: self.broker.clone(),
                        seq: seq as u64,
                        source,
                    });
                }
                Err(_) => break,
            }
        }
        Ok(deliveries)
    }
}

/// Every lease as a release, with its progress.
fn releases(leases: &BTreeMap<i64, Lease>) -> Vec<Progress> {
    leases
        .iter()
        .map(|(&id, lease)| lease.progress(id, true))
        .collect()
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.detached || state.leases.is_empty() {
            return;
        }
        let release = Release {
            broker_id: self.broker_id,
            trigger: self.trigger.clone(),
            leases: releases(&state.leases),
        };
        // Without a keeper (the channel is gone) the leases expire instead.
        let _ = self.shared.keeper.send(Message::Release(release));
    }
}

/// What a claim found.
enum Claimed {
    /// Events are in the buffer.
    Events,
    /// Events of a lease taken over are in the buffer; there may be more such leases.
    TookOver,
    /// Nothing to claim now: wait for a wake-up.
    Nothing,
    /// Another consumer claimed the same range first: try again at once.
    Again,
}

/// Claims work for the consumer; see the module documentation for the order. Leases to
/// take over are looked for only with `takeover`: when one may be free.
async fn claim(
    consumer: Arc<Consumer>,
    want: usize,
    takeover: bool,
) -> Result<Claimed, ChannelError> {
    let want = want.max(CLAIM_MIN);
    if let Some((lease, from, to)) = consumer.unfetched(want) {
        consumer.fetch(lease, from, to).await?;
        return Ok(Claimed::Events);
    }
    let shared = &consumer.shared;
    let (trigger, id) = (&consumer.trigger, consumer.broker_id);
    let taken: Option<(i64, i64, i64, i64)> = if takeover {
        retry::query(|| async move {
            sqlx::query_as(include_str!("sql/take_lease.sql"))
                .bind(id)
                .bind(&trigger.namespace)
                .bind(&trigger.name)
                .bind(&shared.holder)
                .bind(shared.lease_secs())
                .fetch_optional(&shared.bookkeeping)
                .await
        })
        .await?
    } else {
        None
    };
    if let Some((lease, epoch, lo, hi)) = taken {
        debug!(trigger = %trigger, lo, hi, "took over a lease; its events are delivered again");
        consumer.hold(lease, epoch, lo, hi);
        consumer
            .fetch(lease, lo, hi.min(lo + want as i64 - 1))
            .await?;
        return Ok(Claimed::TookOver);
    }
    type Row = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let row: Row = retry::query(|| async move {
        sqlx::query_as(include_str!("sql/claim_range.sql"))
            .bind(id)
            .bind(&trigger.namespace)
            .bind(&trigger.name)
            .bind(want as i64)
            .bind(&shared.holder)
            .bind(shared.lease_secs())
            .fetch_one(&shared.bookkeeping)
            .await
    })
    .await?;
    match row {
        (_, None, ..) => {
            shared.forget_log(&consumer.broker, id);
            Err(ChannelError::UnknownLog {
                broker: consumer.broker.clone(),
            })
        }
        (_, _, Some(lease), Some(epoch), Some(lo), Some(hi)) => {
            consumer.hold(lease, epoch, lo, hi);
            consumer.fetch(lease, lo, hi).await?;
            Ok(Claimed::Events)
        }
        (Some(claimed), Some(head), ..) if head > claimed => Ok(Claimed::Again),
        // Everything is claimed, or the trigger's cursor was deleted under it.
        _ => Ok(Claimed::Nothing),
    }
}

/// A trigger's subscription on a [`PostgresChannel`](super::PostgresChannel).
pub(super) struct PostgresSubscription {
    consumer: Arc<Consumer>,
    /// Wake-ups of the log: appends, released leases, deletion.
    wake: watch::Receiver<u64>,
    /// The wake-ups' count of possible takeovers when this subscription last looked for
    /// leases to take over (`None`: never).
    takeovers_seen: Option<u64>,
    /// A claim still running (a `next` was cancelled while it ran); awaited first.
    claiming: Option<JoinHandle<Result<Claimed, ChannelError>>>,
}

impl PostgresSubscription {
    pub(super) fn new(
        shared: Arc<Shared>,
        consumers: &Consumers,
        broker: ObjectKey,
        broker_id: i64,
        trigger: ObjectKey,
    ) -> Self {
        let wake = shared.wake_receiver(broker_id);
        let consumer = Arc::new(Consumer {
            shared: Arc::clone(&shared),
            broker,
            broker_id,
            trigger,
            state: Mutex::default(),
        });
        consumers.register(&consumer);
        PostgresSubscription {
            consumer,
            wake,
            takeovers_seen: None,
            claiming: None,
        }
    }

    /// Waits for a wake-up of the log.
    async fn wait(&mut self) {
        if self.wake.changed().await.is_err() {
            // The sender is gone: the log was deleted here, or the channel closed. The
            // next claim (or `check_open`) says which; a fresh receiver keeps waits real.
            self.wake = self.consumer.shared.wake_receiver(self.consumer.broker_id);
        }
    }
}

#[async_trait]
impl Subscription for PostgresSubscription {
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            self.consumer.shared.check_open()?;
            let deliveries = self.consumer.hand_out(max)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let claiming = match &mut self.claiming {
                Some(claiming) => claiming,
                None => {
                    // Marked before claiming, so a wake-up during the claim is not missed.
                    let takeovers = *self.wake.borrow_and_update();
                    let takeover = self.takeovers_seen.replace(takeovers) != Some(takeovers);
                    let consumer = Arc::clone(&self.consumer);
                    self.claiming
                        .insert(tokio::spawn(claim(consumer, max, takeover)))
                }
            };
            let outcome = claiming.await;
            self.claiming = None;
            let claimed = outcome.map_err(|error| ChannelError::Unavailable {
                source: Box::new(error),
            })??;
            match claimed {
                Claimed::Events | Claimed::Again => {}
                // Look for the next one at the next claim, not only at the next wake-up.
                Claimed::TookOver => self.takeovers_seen = None,
                Claimed::Nothing => self.wait().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::Duration;

    use sqlx::postgres::PgPoolOptions;
    use tokio::sync::mpsc;
    use weft_config::Event;

    use super::*;

    /// A consumer whose pools never connect: these tests stay in memory.
    fn consumer() -> (Arc<Consumer>, mpsc::UnboundedReceiver<Message>) {
        let (keeper, messages) = mpsc::unbounded_channel();
        let lazy = || PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:9/none");
        let shared = Arc::new(Shared {
            pool: lazy().unwrap(),
            bookkeeping: lazy().unwrap(),
            schema: "weft".into(),
            holder: "test".into(),
            lease: Duration::from_secs(30),
            ids: Mutex::default(),
            wakes: Mutex::default(),
            tails: Mutex::default(),
            keeper,
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        });
        let consumer = Consumer {
            shared,
            broker: ObjectKey::new("default", "b"),
            broker_id: 1,
            trigger: ObjectKey::new("default", "t"),
            state: Mutex::default(),
        };
        (Arc::new(consumer), messages)
    }

    fn row(seq: i64) -> (i64, Bytes) {
        let event = Event::new(format!("e{seq}"), "/test", "test").unwrap();
        (seq, codec::encode(&event))
    }

    fn ids(deliveries: &[Delivery]) -> Vec<String> {
        deliveries.iter().map(|d| d.event.id().to_owned()).collect()
    }

    #[tokio::test]
    async fn acknowledgements_become_progress_and_finish_leases() {
        let (consumer, _keeper) = consumer();
        consumer.hold(7, 0, 1, 5);
        // Event 3 is missing from the log: it is skipped as done.
        consumer.load(7, 1, 5, vec![row(1), row(2), row(4), row(5)]);
        let mut got = consumer.hand_out(10).unwrap().into_iter();
        let taken: Vec<_> = got.by_ref().take(3).collect();
        assert_eq!(ids(&taken), ["e1", "e2", "e4"]);
        let mut taken = taken.into_iter();
        let (first, second, fourth) = (
            taken.next().unwrap(),
            taken.next().unwrap(),
            taken.next().unwrap(),
        );
        second.ack.ack();
        assert!(consumer.progress().is_empty(), "1 is not done yet");
        first.ack.ack();
        let progress = consumer.progress();
        assert_eq!(progress.len(), 1);
        assert_eq!((progress[0].id, progress[0].lo), (7, 4), "1..=3 are done");
        consumer.confirm(&progress);
        assert!(consumer.progress().is_empty(), "written");
        fourth.ack.ack();
        got.next().unwrap().ack.ack();
        let progress = consumer.progress();
        assert_eq!(progress[0].lo, 6, "past the lease's last event");
        consumer.confirm(&progress);
        assert!(consumer.held().is_empty(), "a finished lease is forgotten");
    }

    #[tokio::test]
    async fn a_consumer_that_ends_releases_what_it_did_not_finish() {
        let (consumer, mut keeper) = consumer();
        consumer.hold(1, 0, 1, 3);
        consumer.load(1, 1, 3, vec![row(1), row(2), row(3)]);
        consumer.hold(2, 4, 4, 6);
        consumer.load(2, 4, 6, vec![row(4), row(5), row(6)]);
        let got = consumer.hand_out(4).unwrap();
        assert_eq!(ids(&got), ["e1", "e2", "e3", "e4"]);
        let mut got = got.into_iter();
        got.next().unwrap().ack.ack();
        drop(got); // 2, 3 and 4 are dropped without an ack; 5 and 6 were never handed out
        assert!(
            keeper.try_recv().is_err(),
            "nothing while the consumer lives"
        );
        drop(consumer);
        let Ok(Message::Release(release)) = keeper.try_recv() else {
            panic!("the consumer released nothing");
        };
        assert_eq!(release.trigger, ObjectKey::new("default", "t"));
        let released: Vec<_> = release
            .leases
            .iter()
            .map(|p| (p.id, p.epoch, p.lo, p.release))
            .collect();
        assert_eq!(released, [(1, 0, 2, true), (2, 4, 4, true)]);
    }

    #[tokio::test]
    async fn lost_leases_take_their_buffered_events_along() {
        let (consumer, mut keeper) = consumer();
        consumer.hold(1, 0, 1, 2);
        consumer.load(1, 1, 2, vec![row(1), row(2)]);
        consumer.hold(2, 0, 3, 4);
        consumer.load(2, 3, 4, vec![row(3), row(4)]);
        let first = consumer.hand_out(1).unwrap();
        consumer.lost(&HashSet::from([1]));
        first.into_iter().for_each(|d| d.ack.ack()); // acknowledges nothing any more
        assert_eq!(ids(&consumer.hand_out(10).unwrap()), ["e3", "e4"]);
        assert_eq!(consumer.held(), [(2, 0)]);
        // Detached (the channel closes), the consumer gives its leases to the keeper's
        // last write and releases nothing more when it ends.
        assert_eq!(consumer.detach().len(), 1);
        drop(consumer);
        assert!(keeper.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_decoded_stops_the_subscription() {
        let (consumer, _keeper) = consumer();
        consumer.hold(1, 0, 1, 3);
        consumer.load(
            1,
            1,
            3,
            vec![row(1), (2, Bytes::from_static(b"not an event")), row(3)],
        );
        assert_eq!(
            ids(&consumer.hand_out(10).unwrap()),
            ["e1"],
            "the batch ends"
        );
        for _ in 0..2 {
            assert!(matches!(
                consumer.hand_out(10),
                Err(ChannelError::Corrupt { seq: 2, .. })
            ));
        }
    }
}
