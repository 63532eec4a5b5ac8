//! The Kafka backend: the cluster `WEFT_KAFKA_URL` names (e.g. `kafka://127.0.0.1:19092`,
//! started by `e2e/services/up kafka`), with a name prefix of its own per test so that
//! tests run in parallel and `logs()` sees only its own brokers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use weft_channels::kafka::KafkaChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::ObjectKey;

use super::Backend;

/// The cluster's URL from `WEFT_KAFKA_URL`. Unset, tests that need it skip, unless
/// `WEFT_REQUIRE_BACKENDS=1` makes that a failure.
pub fn kafka_url() -> Option<String> {
    match std::env::var("WEFT_KAFKA_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WEFT_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") => panic!(
            "WEFT_REQUIRE_BACKENDS=1 but WEFT_KAFKA_URL is not set: start Kafka with \
             `e2e/services/up kafka` and export WEFT_KAFKA_URL=kafka://127.0.0.1:19092"
        ),
        _ => None,
    }
}

/// A channel URL on the test cluster with `partitions` per new topic and a prefix no
/// other test uses.
pub fn unique_url(partitions: u32) -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = kafka_url()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!(
        "t{:x}x{:x}x{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}prefix={prefix}&partitions={partitions}&replication=1"
    ))
}

/// The Kafka backend under one prefix.
pub struct Kafka {
    url: String,
    channel: Arc<KafkaChannel>,
}

/// The Kafka backend with one partition per topic, so that a log is totally ordered as
/// the generic bodies expect; `None` when no cluster is configured (see [`kafka_url`]).
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

async fn open(url: &str) -> KafkaChannel {
    KafkaChannel::open(url, ChannelOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open {url}: {e} ({:?})",
                std::error::Error::source(&e)
            )
        })
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
