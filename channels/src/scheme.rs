//! [`open`]: the backend a channel URL's scheme names, opened.

use std::sync::Arc;

#[cfg(feature = "kafka")]
use crate::kafka;
#[cfg(feature = "nats")]
use crate::nats;
#[cfg(feature = "postgres")]
use crate::postgres;
#[cfg(feature = "sqlite")]
use crate::sqlite;
use crate::{Channel, ChannelError, ChannelOptions, memory, redact};

/// Opens the channel a URL names: `sqlite://PATH` (a file, created if missing),
/// `postgres://…` (see [`postgres`]), `kafka://HOST:PORT[,…][?…]` (see [`kafka`]),
/// `nats://HOST:PORT[,…][?…]` (see [`nats`]) or `memory://`.
pub async fn open(url: &str, options: ChannelOptions) -> Result<Arc<dyn Channel>, ChannelError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    #[cfg(not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "kafka",
        feature = "nats"
    )))]
    let _ = options; // only the durable backends batch
    match scheme {
        "memory" => Ok(Arc::new(memory::MemoryChannel::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sqlite::SqliteChannel::open(url, options).await?)),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(Arc::new(kafka::KafkaChannel::open(url, options).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            postgres::PostgresChannel::open(url, options).await?,
        )),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(nats::NatsChannel::open(url, options).await?)),
        _ => Err(ChannelError::UnsupportedUrl { url: redact(url) }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn open_can_run_in_spawned_tasks() {
        fn send<T: Send>(_: &T) {}
        let opening = super::open("memory://", crate::ChannelOptions::default());
        send(&opening);
    }

    #[tokio::test]
    async fn errors_name_the_url_without_its_password() {
        let Err(error) = super::open("nosuch://weft:s3cret@db/x", Default::default()).await else {
            panic!("an unknown scheme opens nothing");
        };
        let text = error.to_string();
        assert!(text.contains("nosuch://weft:***@db/x"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
