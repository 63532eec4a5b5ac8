//! The read side: a trigger's subscription is one member of the trigger's consumer group.
//!
//! Each subscription runs a thread that owns a librdkafka consumer (`BaseConsumer`): it
//! polls continuously, so heartbeats, rebalances and commits go on even while the
//! dispatcher has no room for more events, and it may block in rebalance callbacks
//! without stalling a Tokio worker. Fetched events wait in a buffer for
//! [`Subscription::next`]; above [`HIGH_WATER`] the thread pauses its partitions and
//! keeps polling for group traffic only.
//!
//! # Offsets
//! Per owned partition an [`SharedTracker`] counts offsets as sequence numbers
//! `offset + 1`, so its committed cursor `c` ("every sequence up to `c` is done") is
//! exactly the offset Kafka wants committed (the next one to read). Events are handed to
//! the tracker when `next` returns them, not when they are fetched. Every
//! [`COMMIT_INTERVAL`] the thread commits the cursors that moved (asynchronously; a failed
//! commit is retried with the next one).
//!
//! # Rebalances (eager, `roundrobin`)
//! - Revoke: events still in the buffer are dropped (the next owner fetches them again);
//!   events handed out get up to [`REVOKE_GRACE`] to be acknowledged, then the cursors are
//!   committed synchronously. The trackers are kept aside.
//! - Assign: a partition this member gets back resumes right after the last event it
//!   handed out, with its tracker, so a rebalance that leaves a partition where it was
//!   neither repeats nor loses anything. Other partitions start at the committed offset.
//! - A partition that moves while events are still unacknowledged after the grace is
//!   delivered again from its committed offset by its new owner (at-least-once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, oneshot, watch};
use weft_config::{Event, ObjectKey};

use super::binding;
use super::client::{log_client_error, log_librdkafka, retrying};
use super::log::Log;
use crate::ack::SharedTracker;
use crate::{ChannelError, Delivery, Subscription};

/// How often acknowledged progress is committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// How long one poll blocks: the longest a stop request waits to be noticed.
const POLL: Duration = Duration::from_millis(50);
/// Fetched events waiting for `next` at which fetching pauses.
const HIGH_WATER: usize = 2048;
/// Fetched events waiting for `next` at which fetching resumes.
const LOW_WATER: usize = 512;
/// The most records taken from librdkafka at once.
const DRAIN: usize = 512;
/// How long a revoked partition waits for the events it handed out to be acknowledged.
const REVOKE_GRACE: Duration = Duration::from_secs(2);
/// A member that stops heartbeating for this long leaves the group; its partitions go to
/// the others.
const SESSION_TIMEOUT_MS: &str = "10000";
/// Heartbeats also carry "rebalance in progress", so their interval bounds how quickly
/// the other members let a new one in.
const HEARTBEAT_MS: &str = "500";
/// The same consumer error is logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Why a subscription stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The [`KafkaSubscription`] was dropped.
    Dropped,
    /// The channel was closed.
    Closed,
    /// The broker's log was deleted.
    LogDeleted,
    /// The consumer hit an error it cannot recover from.
    Failed,
}

/// An event fetched from Kafka, waiting for `next`.
struct Fetched {
    partition: i32,
    offset: i64,
    /// [`Inner::generation`] when it was fetched.
    generation: u64,
    event: Event,
}

/// What the subscription, its consumer thread and the channel share.
pub(super) struct State {
    /// The broker whose log this subscription reads.
    pub broker: ObjectKey,
    /// The consumer group: the trigger's cursor.
    pub group: String,
    topic: Arc<str>,
    inner: Mutex<Inner>,
    /// Wakes `next` when events arrive or the subscription ends.
    ready: Notify,
    /// Becomes true once the consumer thread has committed and left the group.
    done: watch::Sender<bool>,
}

#[derive(Default)]
struct Inner {
    /// Fetched, not yet handed out, in partition order.
    buffer: VecDeque<Fetched>,
    /// The partitions this member owns.
    assigned: HashSet<i32>,
    /// Cursor trackers of owned partitions that handed out events.
    trackers: HashMap<i32, SharedTracker>,
    /// Trackers of partitions revoked by the rebalance in progress, for resuming them if
    /// this member gets them back.
    stash: HashMap<i32, SharedTracker>,
    /// Set once the subscription stops; `next` then reports it.
    end: Option<End>,
    /// Counts rebalances, so records fetched before one are not buffered after it.
    generation: u64,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held, so poisoned data is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the consumer thread to commit, leave the group and stop.
    pub fn stop(&self, why: End) {
        let mut inner = self.lock();
        inner.end.get_or_insert(why);
        if why != End::Dropped {
            inner.buffer.clear();
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Whether the subscription is stopping or stopped.
    pub fn stopping(&self) -> bool {
        self.lock().end.is_some()
    }

    /// Whether the consumer thread has committed and left the group.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }

    /// Waits until the consumer thread has committed and left the group.
    pub async fn finished(&self) {
        let mut done = self.done.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = done.wait_for(|done| *done).await;
    }

    /// The committed cursor of every partition this member owns and handed events of.
    pub fn live_cursors(&self) -> Vec<(i32, i64)> {
        let inner = self.lock();
        (inner.trackers.iter())
            .map(|(&p, t)| (p, t.committed() as i64))
            .collect()
    }

    /// Hands out up to `max` buffered events, or the reason the subscription ended.
    fn take(&self, max: usize) -> Option<Result<Vec<Delivery>, End>> {
        let mut inner = self.lock();
        if inner.buffer.is_empty() {
            return inner.end.map(Err);
        }
        let n = max.min(inner.buffer.len());
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            // `n` is at most the buffer's length.
            let fetched = inner.buffer.pop_front().expect("buffered event");
            let tracker = (inner.trackers.entry(fetched.partition))
                .or_insert_with(|| SharedTracker::new(fetched.offset as u64));
            batch.push(Delivery {
                event: fetched.event,
                ack: tracker.hand_out(fetched.offset as u64 + 1),
            });
        }
        Some(Ok(batch))
    }

    /// Commits the cursors that moved since the last commit.
    fn commit_moved(&self, consumer: &BaseConsumer<Member>, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (&p, tracker) in &self.lock().trackers {
            if let Some(c) = tracker.take_dirty() {
                // Offsets of a partition are below 2^63, so the cursor fits an i64.
                let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(c as i64));
                moved.push(tracker.clone());
            }
        }
        if moved.is_empty() {
            return;
        }
        if let Err(error) = consumer.commit(&tpl, mode) {
            tracing::warn!(group = %self.group, %error, "committing offsets failed; retrying");
            moved.iter().for_each(SharedTracker::mark_dirty);
        }
    }
}

/// The consumer's context: logging, and the rebalance and commit callbacks, which run on
/// the consumer thread inside `poll`.
pub(super) struct Member {
    state: Arc<State>,
}

impl ClientContext for Member {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl ConsumerContext for Member {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assignment = self.assign(tpl);
                let result = if cooperative {
                    consumer.incremental_assign(&assignment)
                } else {
                    consumer.assign(&assignment)
                };
                if let Err(error) = result {
                    tracing::warn!(group = %self.state.group, %error, "taking partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(error) = result {
                    tracing::warn!(group = %self.state.group, %error, "releasing partitions failed");
                }
            }
            other => {
                let code = RDKafkaErrorCode::from(other);
                tracing::warn!(group = %self.state.group, error = %code, "rebalance failed");
                let all = self.state.lock().assigned.clone();
                let mut owned = TopicPartitionList::new();
                for p in all {
                    owned.add_partition(&self.state.topic, p);
                }
                self.revoke(consumer, &owned);
                let _ = consumer.unassign();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::debug!(group = %self.state.group, %error, "offset commit failed; retrying");
            let inner = self.state.lock();
            for element in offsets.elements_for_topic(&self.state.topic) {
                if let Some(tracker) = inner.trackers.get(&element.partition()) {
                    tracker.mark_dirty();
                }
            }
        }
    }
}

impl Member {
    /// Records a new assignment and returns it with the offsets to start from.
    fn assign(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let topic = &*self.state.topic;
        let mut inner = self.state.lock();
        inner.generation += 1;
        let mut stash = std::mem::take(&mut inner.stash);
        let mut assignment = TopicPartitionList::with_capacity(tpl.count());
        for element in tpl.elements() {
            let p = element.partition();
            let mut offset = element.offset();
            if element.topic() == topic {
                if let Some(tracker) = stash.remove(&p) {
                    // Right after the last event this member handed out.
                    offset = Offset::Offset(tracker.last_handed() as i64);
                    inner.trackers.insert(p, tracker);
                }
                inner.assigned.insert(p);
            }
            let _ = assignment.add_partition_offset(element.topic(), p, offset);
        }
        tracing::debug!(group = %self.state.group, partitions = ?inner.assigned, "partitions assigned");
        assignment
    }

    /// Gives up partitions: drops their buffered events, lets handed-out ones finish for
    /// a while, commits, and keeps the trackers aside.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let topic = &*self.state.topic;
        let revoked: Vec<i32> = (tpl.elements_for_topic(topic).iter())
            .map(|e| e.partition())
            .collect();
        let (trackers, stopping) = {
            let mut inner = self.state.lock();
            inner.generation += 1;
            inner.buffer.retain(|f| !revoked.contains(&f.partition));
            for p in &revoked {
                inner.assigned.remove(p);
            }
            let trackers: Vec<_> = (revoked.iter())
                .filter_map(|p| inner.trackers.remove(p).map(|t| (*p, t)))
                .collect();
            (trackers, inner.end.is_some())
        };
        if consumer.assignment_lost() {
            // Another member may own them already; our commits would be refused.
            tracing::warn!(group = %self.state.group, "partitions lost; unacknowledged events will be delivered again");
            return;
        }
        if !stopping {
            drain(&trackers, REVOKE_GRACE);
        }
        let mut commit = TopicPartitionList::new();
        for (p, tracker) in &trackers {
            let _ =
                commit.add_partition_offset(topic, *p, Offset::Offset(tracker.committed() as i64));
        }
        if commit.count() > 0
            && let Err(error) = consumer.commit(&commit, CommitMode::Sync)
        {
            tracing::warn!(group = %self.state.group, %error, "committing revoked partitions failed; their unacknowledged events will be delivered again");
        }
        self.state.lock().stash.extend(trackers);
    }
}

/// Waits until every event handed out of these partitions is acknowledged (or can no
/// longer be: its handle was dropped), at most `grace`.
fn drain(trackers: &[(i32, SharedTracker)], grace: Duration) {
    let deadline = Instant::now() + grace;
    let busy = |t: &SharedTracker| t.in_use() && t.committed() < t.last_handed();
    while trackers.iter().any(|(_, t)| busy(t)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A trigger's subscription. See the [module documentation](self).
pub(super) struct KafkaSubscription {
    state: Arc<State>,
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        self.state.stop(End::Dropped);
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            match self.state.take(max) {
                Some(Ok(batch)) => return Ok(batch),
                Some(Err(end)) => {
                    return Err(match end {
                        End::LogDeleted => ChannelError::UnknownLog {
                            broker: self.state.broker.clone(),
                        },
                        End::Failed => ChannelError::Unavailable {
                            source: "the kafka consumer failed; subscribe again".into(),
                        },
                        End::Closed | End::Dropped => ChannelError::Closed,
                    });
                }
                // `notify_one` keeps a permit, so an event pushed after `take` still wakes us.
                None => self.state.ready.notified().await,
            }
        }
    }
}

/// Starts a member of `group` on the broker's log and returns its subscription and
/// state once it has subscribed. A group without committed offsets (a new trigger)
/// first gets the log's current end committed, so that it receives exactly the events
/// appended after `subscribe` returns.
pub(super) async fn start(
    client: ClientConfig,
    broker: ObjectKey,
    log: &Log,
    group: String,
    timeout: Duration,
) -> Result<(KafkaSubscription, Arc<State>), ChannelError> {
    let state = Arc::new(State {
        broker,
        group: group.clone(),
        topic: Arc::clone(&log.topic),
        inner: Mutex::default(),
        ready: Notify::new(),
        done: watch::Sender::new(false),
    });
    let mut config = client;
    config
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Only partitions added after the trigger subscribed lack an offset: read them
        // from their start.
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "roundrobin")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", HEARTBEAT_MS)
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "16384")
        .set("topic.metadata.refresh.interval.ms", "10000");
    let (started_tx, started) = oneshot::channel();
    let thread_state = Arc::clone(&state);
    std::thread::Builder::new()
        .name("weft-kafka-sub".into())
        .spawn(move || run(config, thread_state, timeout, started_tx))
        .map_err(|e| ChannelError::Unavailable { source: e.into() })?;
    let subscription = KafkaSubscription {
        state: Arc::clone(&state),
    };
    match started.await {
        Ok(Ok(())) => Ok((subscription, state)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ChannelError::Unavailable {
            source: "the kafka consumer thread stopped while starting".into(),
        }),
    }
}

/// The consumer thread: creates and subscribes the consumer, then polls until stopped.
fn run(
    config: ClientConfig,
    state: Arc<State>,
    timeout: Duration,
    started: oneshot::Sender<Result<(), ChannelError>>,
) {
    let member = Member {
        state: Arc::clone(&state),
    };
    let consumer = config
        .create_with_context::<_, BaseConsumer<Member>>(member)
        .map_err(|e| ChannelError::Unavailable { source: e.into() })
        .and_then(|consumer| {
            start_at_end_if_new(&consumer, &state.topic, timeout)
                .and_then(|()| consumer.subscribe(&[&state.topic]))
                .map_err(|e| match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => ChannelError::UnknownLog {
                        broker: state.broker.clone(),
                    },
                    _ => ChannelError::Unavailable { source: e.into() },
                })
                .map(|()| consumer)
        });
    let consumer = match consumer {
        Ok(consumer) => {
            let _ = started.send(Ok(()));
            consumer
        }
        Err(error) => {
            state.lock().end = Some(End::Failed);
            let _ = started.send(Err(error));
            state.done.send_replace(true);
            return;
        }
    };
    tracing::debug!(group = %state.group, "consumer started");
    poll_until_stopped(&consumer, &state);
    state.commit_moved(&consumer, CommitMode::Sync);
    // Closing leaves the group; the revoke callback commits once more on the way out.
    drop(consumer);
    state.done.send_replace(true);
    tracing::debug!(group = %state.group, "consumer stopped");
}

fn poll_until_stopped(consumer: &BaseConsumer<Member>, state: &State) {
    let mut last_commit = Instant::now();
    let mut paused = false;
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        let buffered = {
            let inner = state.lock();
            if inner.end.is_some() {
                return;
            }
            inner.buffer.len()
        };
        if paused && buffered <= LOW_WATER {
            paused = !set_paused(consumer, false);
        }
        // Waits for one record, then takes whatever else librdkafka already holds, so a
        // fetched batch reaches `next` whole and costs one lock and one wake-up.
        let mut polled = consumer.poll(POLL);
        let mut fetched = Vec::new();
        while let Some(Ok(message)) = &polled {
            fetched.extend(fetch(state, message));
            if fetched.len() >= DRAIN {
                polled = None;
                break;
            }
            polled = consumer.poll(Duration::ZERO);
        }
        if !fetched.is_empty() {
            let buffered = push(state, fetched);
            paused = paused || (buffered >= HIGH_WATER && set_paused(consumer, true));
        }
        match polled {
            Some(Ok(_)) | None => {}
            Some(Err(error)) => {
                if let Some(end) = classify(consumer, state, &error) {
                    state.stop(end);
                    return;
                }
                let text = error.to_string();
                let repeated = matches!(&last_error, Some((t, at)) if *t == text && at.elapsed() < ERROR_LOG_INTERVAL);
                if !repeated {
                    tracing::warn!(group = %state.group, %error, "kafka consumer error; retrying");
                    last_error = Some((text, Instant::now()));
                }
            }
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            state.commit_moved(consumer, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
}

/// Pauses or resumes fetching of every owned partition; returns whether it worked.
fn set_paused(consumer: &BaseConsumer<Member>, pause: bool) -> bool {
    let result = consumer.assignment().and_then(|owned| {
        if pause {
            consumer.pause(&owned)
        } else {
            consumer.resume(&owned)
        }
    });
    result.is_ok()
}

/// Decodes a record for the buffer.
fn fetch(state: &State, message: &BorrowedMessage<'_>) -> Option<Fetched> {
    if message.topic() != &*state.topic {
        return None;
    }
    match binding::decode(message.headers(), message.payload()) {
        Ok(event) => Some(Fetched {
            partition: message.partition(),
            offset: message.offset(),
            generation: state.lock().generation,
            event,
        }),
        Err(error) => {
            // Not a CloudEvent (another producer wrote it): it can be neither delivered nor
            // parked. Its offset is simply never handed out, so the cursor passes it.
            let (partition, offset) = (message.partition(), message.offset());
            tracing::error!(group = %state.group, partition, offset, %error, "skipping a record that is not a cloudevent");
            None
        }
    }
}

/// Buffers fetched records for `next`, except those a rebalance since their fetch made
/// stale (the partition's new position fetches them again); returns how many are buffered.
fn push(state: &State, fetched: Vec<Fetched>) -> usize {
    let mut inner = state.lock();
    let current = inner.generation;
    let before = inner.buffer.len();
    for f in fetched {
        if f.generation == current && inner.assigned.contains(&f.partition) {
            inner.buffer.push_back(f);
        }
    }
    let buffered = inner.buffer.len();
    drop(inner);
    if buffered > before {
        state.ready.notify_one();
    }
    buffered
}

/// Whether a consumer error ends the subscription.
fn classify(consumer: &BaseConsumer<Member>, state: &State, error: &KafkaError) -> Option<End> {
    match error {
        KafkaError::MessageConsumptionFatal(code) => {
            tracing::error!(group = %state.group, error = %code, "kafka consumer failed");
            Some(End::Failed)
        }
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicId,
        ) => {
            // Metadata may lag behind; only a topic the cluster denies is gone.
            let gone = consumer
                .fetch_metadata(Some(&state.topic), Duration::from_secs(5))
                .is_ok_and(|md| {
                    md.topics().first().is_none_or(|t| {
                        t.error() == Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                    })
                });
            gone.then_some(End::LogDeleted)
        }
        _ => None,
    }
}

/// Commits the log's current end for a group that has no committed offset at all, so a
/// new trigger starts at the end, including events appended before its first rebalance
/// completes. A group another member already runs refuses the commit, and needs none.
pub(super) fn start_at_end_if_new<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> KafkaResult<()> {
    let metadata = retrying(timeout, || consumer.fetch_metadata(Some(topic), timeout))?;
    let partitions: Vec<i32> = match metadata.topics().first() {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        _ => {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
    };
    let mut all = TopicPartitionList::with_capacity(partitions.len());
    for &p in &partitions {
        all.add_partition(topic, p);
    }
    let committed = retrying(timeout, || consumer.committed_offsets(all.clone(), timeout))?;
    if (committed.elements().iter()).any(|e| matches!(e.offset(), Offset::Offset(_))) {
        return Ok(());
    }
    let mut end = TopicPartitionList::with_capacity(partitions.len());
    for p in partitions {
        let (_, high) = retrying(timeout, || consumer.fetch_watermarks(topic, p, timeout))?;
        end.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    match retrying(timeout, || consumer.commit(&end, CommitMode::Sync)) {
        Err(KafkaError::ConsumerCommit(
            RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress,
        )) => Ok(()),
        other => other,
    }
}
