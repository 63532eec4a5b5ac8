//! The Kafka backend: the cluster `WEFT_KAFKA_URL` names (e.g. `kafka://127.0.0.1:19092`,
//! started by `e2e/services/up kafka`), with a name prefix of its own per test so that
//! tests run in parallel and `logs()` sees only its own brokers.

use std::sync::Arc;

use async_trait::async_trait;
use weft_channels::kafka::KafkaChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::ObjectKey;

use super::{Backend, Server, opened, unique_name, with_params};

/// A channel URL on the test cluster (see [`Server::url`]) with `partitions` per new topic
/// and a prefix no other test uses.
pub fn unique_url(partitions: u32) -> Option<String> {
    let base = Server::Kafka.url()?;
    let prefix = unique_name("t");
    Some(with_params(
        &base,
        &format!("prefix={prefix}&partitions={partitions}&replication=1"),
    ))
}

/// The Kafka backend under one prefix.
pub struct Kafka {
    url: String,
    channel: Arc<KafkaChannel>,
}

/// The Kafka backend with one partition per topic, so that a log is totally ordered as
/// the generic bodies expect; `None` when no cluster is configured (see [`Server::url`]).
pub async fn kafka() -> Option<Box<dyn Backend>> {
    with_partitions(1).await
}

/// The Kafka backend with four partitions per topic, for the bodies that expect order
/// per partition key only.
pub async fn kafka_partitioned() -> Option<Box<dyn Backend>> {
    with_partitions(4).await
}

async fn with_partitions(partitions: u32) -> Option<Box<dyn Backend>> {
    let url = unique_url(partitions)?;
    let channel = Arc::new(open(&url).await);
    Some(Box::new(Kafka { url, channel }))
}

/// Opens a channel on `url` with the default options.
pub async fn open(url: &str) -> KafkaChannel {
    opened(
        url,
        KafkaChannel::open(url, ChannelOptions::default()).await,
    )
}

#[async_trait]
impl Backend for Kafka {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }

    async fn reopen(&mut self) {
        self.channel.close().await.unwrap();
        self.channel = Arc::new(open(&self.url).await);
    }

    async fn compact(&self) {
        // Retention is Kafka's own (by time or size); Weft deletes nothing it consumed.
    }

    async fn stored_events(&self, broker: &ObjectKey) -> u64 {
        self.channel.stored_events(broker).await.unwrap()
    }

    async fn open_second(&self) -> Option<Arc<dyn Channel>> {
        Some(Arc::new(open(&self.url).await))
    }

    fn deletes_consumed_events(&self) -> bool {
        false
    }
}
