//! The NATS JetStream backend: the server `WEFT_NATS_URL` names (e.g.
//! `nats://127.0.0.1:14222`, started by `e2e/services/up nats`), with a stream prefix of
//! its own per test so that tests run in parallel and `logs()` sees only its own brokers.

use std::sync::Arc;

use async_trait::async_trait;
use weft_channels::nats::NatsChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::ObjectKey;

use super::{Backend, Server, clean_up, opened, unique_name, with_params};

/// A channel URL on the test server (see [`Server::url`]) with a prefix no other test
/// uses.
pub fn unique_url() -> Option<String> {
    let base = Server::Nats.url()?;
    Some(with_params(&base, &format!("prefix={}", unique_name("T"))))
}

/// The NATS backend under one prefix; its streams are deleted when it is dropped.
pub struct Nats {
    url: String,
    channel: Arc<NatsChannel>,
}

/// The NATS backend, or `None` when no server is configured (see [`Server::url`]).
pub async fn nats() -> Option<Box<dyn Backend>> {
    let url = unique_url()?;
    let channel = Arc::new(open(&url).await);
    Some(Box::new(Nats { url, channel }))
}

async fn open(url: &str) -> NatsChannel {
    opened(url, NatsChannel::open(url, ChannelOptions::default()).await)
}

#[async_trait]
impl Backend for Nats {
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }

    async fn reopen(&mut self) {
        self.channel.close().await.unwrap();
        self.channel = Arc::new(open(&self.url).await);
    }

    async fn compact(&self) {
        // Interest retention removes a message as its last acknowledgement is applied;
        // waiting for the acknowledgements is all there is to do.
        self.channel.flush().await;
    }

    async fn stored_events(&self, broker: &ObjectKey) -> u64 {
        self.channel.stored_events(broker).await.unwrap()
    }

    async fn open_second(&self) -> Option<Arc<dyn Channel>> {
        Some(Arc::new(open(&self.url).await))
    }

    fn acks_each_event(&self) -> bool {
        true
    }

    fn deletes_consumed_events(&self) -> bool {
        self.channel.deletes_consumed_events()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        // Removes this test's streams.
        let url = self.url.clone();
        clean_up(move || async move {
            let Ok(channel) = NatsChannel::open(&url, ChannelOptions::default()).await else {
                return;
            };
            for broker in channel.logs().await.unwrap_or_default() {
                let _ = channel.delete_log(&broker).await;
            }
            let _ = channel.close().await;
        });
    }
}
