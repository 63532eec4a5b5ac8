//! The Kafka channel: a topic per broker, a consumer group per trigger (feature `kafka`).
//!
//! # URL
//! `kafka://HOST:PORT[,HOST:PORT…][?partitions=N&replication=R&prefix=P&timeout_ms=T&linger_ms=L]`;
//! see `config` for each parameter and for how topics and groups are named
//! (`weft-broker-<namespace>.<name>`, `weft-broker-<namespace>.<name>/<namespace>.<trigger>`).
//! Weft creates what it needs with the admin API; it never relies on automatic topic
//! creation, so an append to a deleted broker cannot bring its topic back.
//!
//! # Guarantees
//! - **Durability**: `append` returns once Kafka acknowledged every record of the call
//!   with `acks=all` (every in-sync replica has it) from an idempotent producer, so a
//!   retry inside the producer never writes a record twice. Kafka, not Weft, decides how
//!   that reaches disk: with replication 1 a record survives a crash of Kafka's process
//!   but not of its machine before the page cache is flushed.
//! - **Group commit**: appends from concurrent requests share produce requests:
//!   librdkafka batches whatever is queued while earlier requests are in flight. No timer
//!   waits for more by default (`linger_ms=0`), so a lone event is sent at once;
//!   `linger_ms` can add such a wait.
//! - **Bounded failure**: when Kafka cannot take records, `append` fails after at most
//!   `timeout_ms` with [`ChannelError::Unavailable`] (the ingress answers 503, never
//!   202); librdkafka reconnects by itself and later appends succeed again. A failed
//!   append of several events may have stored some of them; the producer's retry then
//!   stores them again (at-least-once).
//! - **Ordering**: per partition. Events with a `partitionkey` go to the partition of
//!   their key (Kafka's `murmur2` partitioner, as Java clients and Knative use); the
//!   events of one append without a key all go to one partition, in order. Appends
//!   without a key share one partition for 10 ms, then move to the next, so concurrent
//!   appends fill one large batch and every partition gets its share over time. With
//!   `partitions=1` the whole log is ordered.
//! - **At-least-once**: a trigger's cursor is its consumer group's committed offsets.
//!   Per partition, an offset is committed only up to the lowest event still in flight
//!   ([`crate::ack`]), every 100 ms and when a partition is revoked or the subscription
//!   stops. After a restart, or when a partition moves to another member, everything
//!   above the committed offset is delivered again.
//! - **Redelivery** is the same record again (same `id`), with no marker.
//! - **New triggers** start at the end: a subscription of a group without offsets first
//!   commits the log's current end offsets, so it receives what is appended after
//!   `subscribe` returns, even before its first rebalance completes.
//! - **Replicas** share a trigger through its consumer group: every Weft process
//!   subscribing the trigger joins it, and Kafka spreads the partitions over them; a
//!   process that dies is replaced after the 10 s session timeout. See `subscription`
//!   for what a rebalance does to events in flight.
//! - **Retention** is Kafka's own (the topic's `retention.ms`, 7 days by default): Weft
//!   never deletes consumed records, and a cursor that falls behind retention resumes at
//!   the oldest record left.
//! - **Parked events** go to the topic `<prefix>-parked` (one partition, records keyed
//!   by broker), with headers `weft_broker`, `weft_trigger`, `weft_reason`; deleting a
//!   broker keeps them.
//! - **Records** follow the CloudEvents Kafka binding in binary mode (`binding`);
//!   records that are not CloudEvents are skipped with an error log.
//! - **Size**: records up to 4 MiB (topic `max.message.bytes`).
//!
//! # Layout
//! - [`KafkaChannel`]: the [`Channel`] implementation: topics, groups, appends, status.
//! - `config`: the URL and the naming of topics and groups.
//! - `binding`: the CloudEvents Kafka protocol binding: record key and value; the headers
//!   come from the shared `weft_config::event::headers`.
//! - `parked`: the records of parked events.
//! - `subscription`: a trigger's consumer, its offsets and rebalances.

mod binding;
mod config;
mod parked;
mod subscription;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::OnceCell;
use weft_config::{Event, ObjectKey};

use self::config::KafkaConfig;
use self::subscription::{End, State};
use crate::error::BoxError;
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription, telemetry};

const BACKEND: &str = "kafka";
/// The largest record a topic takes; above Weft's default 1 MiB body limit.
const MAX_MESSAGE_BYTES: &str = "4194304";
/// How long appends without a partition key go to the same partition before the next
/// one takes over. Concurrent appends then fill one large batch rather than a small one
/// per partition, which is what Kafka's cost per request is made of; over time the
/// partitions get equal shares (librdkafka's sticky partitioner does the same per record).
const STICKY_PARTITION: Duration = Duration::from_millis(10);
/// How long `ensure_log` and `delete_log` wait for the cluster's metadata to agree.
const METADATA_SETTLE: Duration = Duration::from_secs(10);

/// A channel on a Kafka cluster. See the [module documentation](self).
pub struct KafkaChannel {
    shared: Arc<Shared>,
}

/// A broker's log as this process knows it.
#[derive(Clone, Debug)]
pub(super) struct Log {
    topic: Arc<str>,
    partitions: i32,
}

/// What the channel's calls share; blocking librdkafka calls take it into
/// `spawn_blocking`.
struct Shared {
    config: KafkaConfig,
    /// The settings every client starts from (servers, client id, logging).
    client: ClientConfig,
    producer: FutureProducer<Quiet>,
    admin: AdminClient<Quiet>,
    /// Logs known to exist, so that appends need no metadata request.
    logs: Mutex<HashMap<ObjectKey, Log>>,
    /// This process's subscriptions per consumer group, for backlogs that include
    /// acknowledgements not committed yet and for stopping them.
    members: Mutex<HashMap<String, Vec<Arc<State>>>>,
    /// Held while one append queues its records, so they stay together in a partition.
    enqueue: Mutex<()>,
    /// When the channel opened: appends without a partition key take turns by time
    /// ([`STICKY_PARTITION`]).
    opened: Instant,
    /// Created on the first `park`.
    parked_topic: OnceCell<()>,
    closed: AtomicBool,
}

impl Shared {
    fn logs(&self) -> MutexGuard<'_, HashMap<ObjectKey, Log>> {
        // Nothing panics while these locks are held, so poisoned data is still consistent.
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn members(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<State>>>> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|_, states| {
            states.retain(|s| !s.is_finished());
            !states.is_empty()
        });
        members
    }

    fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The partition count of a topic that exists and has a leader for every partition;
    /// `None` if the cluster does not know it.
    fn partitions_of(&self, topic: &str) -> Result<Option<i32>, ChannelError> {
        let metadata = (self.producer.client())
            .fetch_metadata(Some(topic), self.config.timeout)
            .map_err(unavailable)?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match t.error() {
            None => {}
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
            Some(code) => return Err(unavailable(KafkaError::MetadataFetch(code.into()))),
        }
        let ready = !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0);
        Ok(ready.then_some(t.partitions().len() as i32))
    }

    /// Whether every partition's leader answers for it (it may lag behind the metadata
    /// that names it, right after the topic is created).
    fn leaders_answer(&self, topic: &str, partitions: i32) -> bool {
        let client = self.producer.client();
        (0..partitions).all(|p| (client.fetch_watermarks(topic, p, self.config.timeout)).is_ok())
    }

    /// A short-lived consumer that reads offsets of `group` (or records) without
    /// joining it.
    fn reader(&self, group: &str) -> Result<BaseConsumer<Quiet>, ChannelError> {
        let mut config = self.client.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        config.create_with_context(Quiet).map_err(unavailable)
    }
}

/// The context of the channel's own clients: routes librdkafka's logs to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl ConsumerContext for Quiet {}

/// Forwards a librdkafka log line. Its errors are connection trouble that librdkafka
/// retries, so they are warnings here; losing an event is what Weft logs as an error.
fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let message = weft_config::redact::redact_urls_in(message);
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// Forwards a client-wide error (all brokers down, a failed connection), which
/// librdkafka recovers from by itself.
fn log_client_error(error: KafkaError, reason: &str) {
    let reason = weft_config::redact::redact_urls_in(reason);
    tracing::warn!(%error, reason = %reason, "kafka client error; reconnecting");
}

/// Whether Kafka may answer differently in a moment: leadership moving (as right after
/// a topic is created), a coordinator loading, a connection being re-established.
fn transient(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | NetworkException
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | NotEnoughReplicas
                | KafkaStorageError
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | OffsetNotAvailable
                | BrokerTransportFailure
                | AllBrokersDown
                | OperationTimedOut
        )
    )
}

/// Repeats a blocking call while it fails transiently, for at most `within`.
fn retrying<T>(within: Duration, mut call: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    let deadline = Instant::now() + within;
    loop {
        match call() {
            Err(e) if transient(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn unavailable(error: KafkaError) -> ChannelError {
    ChannelError::Unavailable {
        source: Box::new(error),
    }
}

fn unavailable_because(reason: String) -> ChannelError {
    ChannelError::Unavailable {
        source: BoxError::from(reason),
    }
}

impl KafkaChannel {
    /// Connects to the cluster a `kafka://` URL names. Must be called within a Tokio
    /// runtime. An unreachable cluster is not an error here: librdkafka keeps trying, and
    /// calls fail with [`ChannelError::Unavailable`] until it answers.
    pub async fn open(url: &str, options: ChannelOptions) -> Result<Self, ChannelError> {
        // Kafka batches on its own; one append is never split.
        let _ = options;
        let config = KafkaConfig::parse(url)?;
        let failed = |e: KafkaError| ChannelError::open(url, Box::new(e));
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap)
            .set("client.id", "weft")
            .set("allow.auto.create.topics", "false")
            .set("reconnect.backoff.max.ms", "1000")
            .set("socket.keepalive.enable", "true")
            // Small produce requests go out at once rather than after the previous ack.
            .set("socket.nagle.disable", "true");
        let timeout_ms = config.timeout.as_millis().to_string();
        let mut producer = client.clone();
        producer
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Concurrent appends share requests; see `linger_ms` in `config` for the
            // default's cost and gain.
            .set("linger.ms", config.linger_ms.to_string())
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", &timeout_ms)
            .set("request.timeout.ms", &timeout_ms)
            .set("message.max.bytes", MAX_MESSAGE_BYTES);
        let producer = producer.create_with_context(Quiet).map_err(failed)?;
        let admin = client.create_with_context(Quiet).map_err(failed)?;
        let shared = Arc::new(Shared {
            config,
            client,
            producer,
            admin,
            logs: Mutex::default(),
            members: Mutex::default(),
            enqueue: Mutex::new(()),
            opened: Instant::now(),
            parked_topic: OnceCell::new(),
            closed: AtomicBool::new(false),
        });
        let channel = KafkaChannel { shared };
        match channel.blocking(|s| s.partitions_of("__weft_probe")).await {
            Ok(_) => {
                tracing::info!(servers = %channel.shared.config.bootstrap, "kafka channel opened")
            }
            Err(error) => {
                tracing::warn!(servers = %channel.shared.config.bootstrap, %error, "kafka is not reachable yet; retrying in the background")
            }
        }
        Ok(channel)
    }

    /// Runs a blocking librdkafka call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> T + Send + 'static,
    ) -> T {
        let shared = Arc::clone(&self.shared);
        match tokio::task::spawn_blocking(move || f(&shared)).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The broker's log: from memory, or from the cluster's metadata when another
    /// process created it.
    async fn log(&self, broker: &ObjectKey) -> Result<Log, ChannelError> {
        self.shared.check_open()?;
        if let Some(log) = self.shared.logs().get(broker) {
            return Ok(log.clone());
        }
        let unknown = || ChannelError::UnknownLog {
            broker: broker.clone(),
        };
        let topic = self.shared.config.topic(broker).map_err(|_| unknown())?;
        let lookup = topic.clone();
        match self.blocking(move |s| s.partitions_of(&lookup)).await? {
            Some(partitions) => {
                let log = Log {
                    topic: topic.into(),
                    partitions,
                };
                self.shared.logs().insert(broker.clone(), log.clone());
                Ok(log)
            }
            None => Err(unknown()),
        }
    }

    /// Waits until the cluster's metadata shows the topic (with a leader for every
    /// partition) or no longer shows it; returns its partition count.
    async fn settle(&self, topic: &str, present: bool) -> Result<i32, ChannelError> {
        let deadline = Instant::now() + METADATA_SETTLE;
        loop {
            let lookup = topic.to_owned();
            match self.blocking(move |s| s.partitions_of(&lookup)).await {
                Ok(Some(n)) if present => {
                    let lookup = topic.to_owned();
                    if self.blocking(move |s| s.leaders_answer(&lookup, n)).await {
                        return Ok(n);
                    }
                }
                Ok(None) if !present => return Ok(0),
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ if Instant::now() >= deadline => {
                    let what = if present { "appear" } else { "disappear" };
                    return Err(unavailable_because(format!(
                        "topic {topic} did not {what} in kafka's metadata within {METADATA_SETTLE:?}"
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Creates a topic unless it exists, and waits until it is usable.
    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<i32, ChannelError> {
        let replication = match self.shared.config.replication {
            Some(r) => r,
            None => {
                let brokers = self
                    .blocking(|s| {
                        (s.producer.client())
                            .fetch_metadata(None, s.config.timeout)
                            .map(|md| md.brokers().len() as i32)
                    })
                    .await
                    .map_err(unavailable)?;
                brokers.clamp(1, config::DEFAULT_REPLICATION)
            }
        };
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
            .set("max.message.bytes", MAX_MESSAGE_BYTES);
        let options = AdminOptions::new().operation_timeout(Some(self.shared.config.timeout));
        let results = (self.shared.admin)
            .create_topics([&new], &options)
            .await
            .map_err(unavailable)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(unavailable_because(format!(
                        "cannot create topic {name}: {code}"
                    )));
                }
            }
        }
        self.settle(topic, true).await
    }

    /// This process's subscriptions that match, after asking them to stop, once their
    /// consumers have committed and left their groups.
    async fn stop_members(&self, matching: impl Fn(&State) -> bool, why: Option<End>) {
        let states: Vec<Arc<State>> = (self.shared.members().values())
            .flatten()
            .filter(|s| matching(s))
            .cloned()
            .collect();
        for state in &states {
            if let Some(why) = why {
                state.stop(why);
            }
        }
        for state in states {
            if state.stopping() {
                state.finished().await;
            }
        }
    }

    /// The consumer groups on the cluster whose names start with `prefix`, except dead ones.
    async fn groups(&self, prefix: String) -> Result<Vec<String>, ChannelError> {
        self.blocking(move |s| {
            let list = (s.producer.client())
                .fetch_group_list(None, s.config.timeout)
                .map_err(unavailable)?;
            Ok(list
                .groups()
                .iter()
                .filter(|g| g.name().starts_with(&prefix) && g.state() != "Dead")
                .map(|g| g.name().to_owned())
                .collect())
        })
        .await
    }

    /// Deletes consumer groups; a group that does not exist is fine. A group that
    /// still has members (a subscription of another process) is retried for a few
    /// seconds, as members that just left may not be gone yet.
    async fn delete_groups(&self, groups: &[String]) -> Result<(), ChannelError> {
        let mut pending: Vec<String> = groups.to_vec();
        let deadline = Instant::now() + Duration::from_secs(3);
        let options = AdminOptions::new().operation_timeout(Some(self.shared.config.timeout));
        while !pending.is_empty() {
            let names: Vec<&str> = pending.iter().map(String::as_str).collect();
            let results = (self.shared.admin)
                .delete_groups(&names, &options)
                .await
                .map_err(unavailable)?;
            let mut busy = Vec::new();
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                    Err((group, RDKafkaErrorCode::NonEmptyGroup)) => busy.push(group),
                    Err((group, code)) => {
                        return Err(unavailable_because(format!(
                            "cannot delete consumer group {group}: {code}"
                        )));
                    }
                }
            }
            if !busy.is_empty() && Instant::now() >= deadline {
                return Err(unavailable_because(format!(
                    "consumer groups {busy:?} still have members (a subscription in another process?)"
                )));
            }
            pending = busy;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// How many records the broker's topic holds (Kafka's retention decides).
    pub async fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        let log = self.log(broker).await?;
        self.blocking(move |s| {
            let reader = s.reader(&s.config.reader_group())?;
            let mut total = 0;
            for p in 0..log.partitions {
                let (low, high) = retrying(s.config.timeout, || {
                    reader.fetch_watermarks(&log.topic, p, s.config.timeout)
                })
                .map_err(unavailable)?;
                total += (high - low).max(0) as u64;
            }
            Ok(total)
        })
        .await
    }

    /// Makes sure the topic of parked events exists.
    async fn parked_topic(&self) -> Result<String, ChannelError> {
        let topic = self.shared.config.parked_topic();
        (self.shared.parked_topic)
            .get_or_try_init(|| async { self.create_topic(&topic, 1).await.map(drop) })
            .await?;
        Ok(topic)
    }
}

impl std::fmt::Debug for KafkaChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaChannel")
            .field("servers", &self.shared.config.bootstrap)
            .finish_non_exhaustive()
    }
}

/// What the cluster answered for one record of an append.
fn delivery_error(broker: &ObjectKey, error: KafkaError) -> ChannelError {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicId,
        ) => ChannelError::UnknownLog {
            broker: broker.clone(),
        },
        _ => unavailable(error),
    }
}

#[async_trait]
impl Channel for KafkaChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let topic = self.shared.config.topic(broker)?;
        let partitions = self
            .create_topic(&topic, self.shared.config.partitions)
            .await?;
        let log = Log {
            topic: topic.into(),
            partitions,
        };
        self.shared.logs().insert(broker.clone(), log);
        Ok(())
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let Ok(topic) = self.shared.config.topic(broker) else {
            return Ok(()); // a name that cannot be a topic has no log
        };
        self.shared.logs().remove(broker);
        self.stop_members(|s| s.broker == *broker, Some(End::LogDeleted))
            .await;
        let options = AdminOptions::new().operation_timeout(Some(self.shared.config.timeout));
        let results = (self.shared.admin)
            .delete_topics(&[&topic], &options)
            .await
            .map_err(unavailable)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((name, code)) => {
                    return Err(unavailable_because(format!(
                        "cannot delete topic {name}: {code}"
                    )));
                }
            }
        }
        self.settle(&topic, false).await?;
        // Kafka drops the offsets of a deleted topic; the groups go too, so that the
        // triggers of a re-created broker start at its end.
        let groups = self.groups(KafkaConfig::groups_of(&topic)).await?;
        if let Err(error) = self.delete_groups(&groups).await {
            tracing::warn!(broker = %broker, %error, "consumer groups of a deleted log remain");
        }
        tracing::info!(broker = %broker, topic, "kafka log deleted");
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let mut logs = self
            .blocking(|s| {
                let metadata = (s.producer.client())
                    .fetch_metadata(None, s.config.timeout)
                    .map_err(unavailable)?;
                Ok::<_, ChannelError>(
                    (metadata.topics().iter())
                        .filter(|t| t.error().is_none())
                        .filter_map(|t| s.config.broker_of(t.name()))
                        .collect::<Vec<_>>(),
                )
            })
            .await?;
        logs.sort();
        logs.dedup();
        Ok(logs)
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        let log = self.log(broker).await?;
        if events.is_empty() {
            return Ok(());
        }
        let records: Vec<_> = (events.iter())
            .map(|e| (binding::headers(e, &[]), binding::key(e)))
            .collect();
        let producer = &self.shared.producer;
        let mut deliveries = Vec::with_capacity(events.len());
        let mut refused = None;
        {
            let _together = self
                .shared
                .enqueue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let turn = self.shared.opened.elapsed().as_millis() / STICKY_PARTITION.as_millis();
            let keyless = (turn % log.partitions.max(1) as u128) as i32;
            for (event, (headers, key)) in events.iter().zip(records) {
                let mut record = FutureRecord::<str, [u8]>::to(&log.topic).headers(headers);
                record = match &key {
                    Some(key) => record.key(key.as_str()),
                    None => record.partition(keyless),
                };
                if let Some(data) = event.data() {
                    record = record.payload(&data[..]);
                }
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((error, _)) => {
                        refused = Some(error);
                        break;
                    }
                }
            }
        }
        let wait = self.shared.config.timeout + Duration::from_secs(5);
        let results = tokio::time::timeout(wait, futures::future::join_all(deliveries)).await;
        let error = match (refused, results) {
            (Some(error), _) => Some(delivery_error(broker, error)),
            (None, Err(_)) => Some(unavailable_because(format!(
                "kafka did not acknowledge the records within {wait:?}"
            ))),
            (None, Ok(results)) => results.into_iter().find_map(|r| match r {
                Ok(Ok(_)) => None,
                Ok(Err((error, _))) => Some(delivery_error(broker, error)),
                Err(_) => Some(ChannelError::Closed),
            }),
        };
        match error {
            None => {
                telemetry::appended(BACKEND, events.len());
                Ok(())
            }
            Some(error) => {
                if matches!(error, ChannelError::UnknownLog { .. }) {
                    self.shared.logs().remove(broker);
                }
                telemetry::append_failed(BACKEND, &error);
                Err(error)
            }
        }
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let log = self.log(broker).await?;
        let group = KafkaConfig::group(&log.topic, trigger)?;
        // A subscription of this trigger that is still leaving must have committed
        // before the new one reads the group's offsets.
        self.stop_members(|s| s.group == group, None).await;
        let (subscription, state) = subscription::start(
            self.shared.client.clone(),
            broker.clone(),
            &log,
            group.clone(),
            self.shared.config.timeout,
        )
        .await?;
        (self.shared.members().entry(group))
            .or_default()
            .push(state);
        Ok(Box::new(subscription))
    }

    async fn ensure_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        let log = self.log(broker).await?;
        let group = KafkaConfig::group(&log.topic, trigger)?;
        let broker = broker.clone();
        // Commits the end of each partition for a group that has no offsets yet, without
        // joining it (which would make the dispatchers' members rebalance).
        self.blocking(move |s| {
            let reader = s.reader(&group)?;
            subscription::start_at_end_if_new(&reader, &log.topic, s.config.timeout).map_err(|e| {
                match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                        ChannelError::UnknownLog { broker }
                    }
                    _ => unavailable(e),
                }
            })
        })
        .await
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let Ok(topic) = self.shared.config.topic(broker) else {
            return Ok(());
        };
        let Ok(group) = KafkaConfig::group(&topic, trigger) else {
            return Ok(());
        };
        self.stop_members(|s| s.group == group, None).await;
        self.delete_groups(&[group]).await
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        let log = self.log(broker).await?;
        let groups = self.groups(KafkaConfig::groups_of(&log.topic)).await?;
        let mut triggers: Vec<_> = (groups.iter())
            .filter_map(|g| KafkaConfig::trigger_of(&log.topic, g))
            .collect();
        triggers.sort();
        triggers.dedup();
        Ok(triggers)
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        let log = self.log(broker).await?;
        let group = KafkaConfig::group(&log.topic, trigger)?;
        // Acknowledgements of this process's subscriptions that are not committed yet.
        let mut live: HashMap<i32, i64> = HashMap::new();
        for state in self.shared.members().get(&group).into_iter().flatten() {
            for (p, cursor) in state.live_cursors() {
                let c = live.entry(p).or_insert(cursor);
                *c = (*c).max(cursor);
            }
        }
        self.blocking(move |s| {
            let reader = s.reader(&group)?;
            let mut all = TopicPartitionList::with_capacity(log.partitions as usize);
            for p in 0..log.partitions {
                all.add_partition(&log.topic, p);
            }
            let stored = retrying(s.config.timeout, || {
                reader.committed_offsets(all.clone(), s.config.timeout)
            })
            .map_err(unavailable)?;
            let stored: HashMap<i32, i64> = (stored.elements().iter())
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect();
            if stored.is_empty() && live.is_empty() {
                return Ok(0); // a trigger that never subscribed starts at the end
            }
            let mut backlog = 0;
            for p in 0..log.partitions {
                let (low, high) = retrying(s.config.timeout, || {
                    reader.fetch_watermarks(&log.topic, p, s.config.timeout)
                })
                .map_err(unavailable)?;
                let cursor = match (stored.get(&p), live.get(&p)) {
                    (None, None) => low,
                    (a, b) => *a.max(b).unwrap_or(&low),
                };
                backlog += (high - cursor.max(low)).max(0) as u64;
            }
            Ok(backlog)
        })
        .await
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let topic = self.parked_topic().await?;
        let (key, headers) = parked::record(broker, trigger, event, reason);
        let mut record = FutureRecord::<str, [u8]>::to(&topic)
            .key(&key)
            .headers(headers);
        if let Some(data) = event.data() {
            record = record.payload(&data[..]);
        }
        let delivery = (self.shared.producer)
            .send_result(record)
            .map_err(|(e, _)| unavailable(e))?;
        match delivery.await {
            Ok(Ok(_)) => {
                telemetry::parked(BACKEND);
                Ok(())
            }
            Ok(Err((error, _))) => Err(unavailable(error)),
            Err(_) => Err(ChannelError::Closed),
        }
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let topic = self.shared.config.parked_topic();
        let wanted = broker.clone();
        self.blocking(move |s| parked::read(s, &topic, &wanted))
            .await
    }

    async fn close(&self) -> Result<(), ChannelError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_members(|_| true, Some(End::Closed)).await;
        let flushed = self.blocking(|s| s.producer.flush(s.config.timeout)).await;
        if let Err(error) = flushed {
            tracing::warn!(%error, "kafka producer did not flush before closing");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
