//! The NATS JetStream backend: the server `WEFT_NATS_URL` names (e.g.
//! `nats://127.0.0.1:14222`, started by `e2e/services/up nats`), with a stream prefix of
//! its own per test so that tests run in parallel and `logs()` sees only its own brokers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use weft_channels::nats::NatsChannel;
use weft_channels::{Channel, ChannelOptions};
use weft_config::ObjectKey;

use super::Backend;

/// The server's URL from `WEFT_NATS_URL`. Unset, tests that need it skip, unless
/// `WEFT_REQUIRE_BACKENDS=1` makes that a failure.
pub fn nats_url() -> Option<String> {
    match std::env::var("WEFT_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WEFT_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") => panic!(
            "WEFT_REQUIRE_BACKENDS=1 but WEFT_NATS_URL is not set: start NATS with \
             `e2e/services/up nats` and export WEFT_NATS_URL=$(e2e/services/nats.sh url)"
        ),
        _ => None,
    }
}

/// A channel URL on the test server with a prefix no other test uses.
pub fn unique_url() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = nats_url()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!(
        "T{:x}x{:x}x{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{separator}prefix={prefix}"))
}

/// The NATS backend under one prefix; its streams are deleted when it is dropped.
pub struct Nats {
    url: String,
    channel: Arc<NatsChannel>,
}

/// The NATS backend, or `None` when no server is configured (see [`nats_url`]).
pub async fn nats() -> Option<Box<dyn Backend>> {
    let url = unique_url()?;
    let channel = Arc::new(open(&url).await);
    Some(Box::new(Nats { url, channel }))
}

async fn open(url: &str) -> NatsChannel {
    NatsChannel::open(url, ChannelOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open {url}: {e} ({:?})",
                std::error::Error::source(&e)
            )
        })
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
        // Removes this test's streams, from a thread of its own: `drop` may run inside the
        // test's runtime, which cannot block on another future.
        let url = self.url.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(channel) = NatsChannel::open(&url, ChannelOptions::default()).await else {
                    return;
                };
                for broker in channel.logs().await.unwrap_or_default() {
                    let _ = channel.delete_log(&broker).await;
                }
                let _ = channel.close().await;
            });
        });
        let _ = cleanup.join();
    }
}
