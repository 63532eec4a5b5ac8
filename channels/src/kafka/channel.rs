//! [`KafkaChannel`]: opening, topics and consumer groups, and its [`Channel`]
//! implementation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::OnceCell;
use weft_config::{Event, ObjectKey};

use super::client::{Quiet, retrying, unavailable, unavailable_because};
use super::config::KafkaConfig;
use super::log::Log;
use super::shared::Shared;
use super::subscription::{End, State};
use super::{binding, config, parked, subscription};
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

/// A channel on a Kafka cluster. See the [module documentation](super).
pub struct KafkaChannel {
    shared: Arc<Shared>,
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
