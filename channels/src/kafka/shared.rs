//! [`Shared`]: what the channel's calls share (clients, known logs, this process's
//! subscriptions); blocking librdkafka calls take it into `spawn_blocking`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::OnceCell;
use weft_config::ObjectKey;

use super::client::{Quiet, unavailable};
use super::config::KafkaConfig;
use super::log::Log;
use super::subscription::State;
use crate::ChannelError;

/// What the channel's calls share; blocking librdkafka calls take it into
/// `spawn_blocking`.
pub(super) struct Shared {
    pub(super) config: KafkaConfig,
    /// The settings every client starts from (servers, client id, logging).
    pub(super) client: ClientConfig,
    pub(super) producer: FutureProducer<Quiet>,
    pub(super) admin: AdminClient<Quiet>,
    /// Logs known to exist, so that appends need no metadata request.
    pub(super) logs: Mutex<HashMap<ObjectKey, Log>>,
    /// This process's subscriptions per consumer group, for backlogs that include
    /// acknowledgements not committed yet and for stopping them.
    pub(super) members: Mutex<HashMap<String, Vec<Arc<State>>>>,
    /// Held while one append queues its records, so they stay together in a partition.
    pub(super) enqueue: Mutex<()>,
    /// When the channel opened: appends without a partition key take turns by time
    /// (`STICKY_PARTITION`).
    pub(super) opened: Instant,
    /// Created on the first `park`.
    pub(super) parked_topic: OnceCell<()>,
    pub(super) closed: AtomicBool,
}

impl Shared {
    pub(super) fn logs(&self) -> MutexGuard<'_, HashMap<ObjectKey, Log>> {
        // Nothing panics while these locks are held, so poisoned data is still consistent.
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn members(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<State>>>> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|_, states| {
            states.retain(|s| !s.is_finished());
            !states.is_empty()
        });
        members
    }

    pub(super) fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The partition count of a topic that exists and has a leader for every partition;
    /// `None` if the cluster does not know it.
    pub(super) fn partitions_of(&self, topic: &str) -> Result<Option<i32>, ChannelError> {
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
    pub(super) fn leaders_answer(&self, topic: &str, partitions: i32) -> bool {
        let client = self.producer.client();
        (0..partitions).all(|p| (client.fetch_watermarks(topic, p, self.config.timeout)).is_ok())
    }

    /// A short-lived consumer that reads offsets of `group` (or records) without
    /// joining it.
    pub(super) fn reader(&self, group: &str) -> Result<BaseConsumer<Quiet>, ChannelError> {
        let mut config = self.client.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        config.create_with_context(Quiet).map_err(unavailable)
    }
}
