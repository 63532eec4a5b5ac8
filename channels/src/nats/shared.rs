//! [`Shared`]: what the channel and its subscriptions share (the client, the JetStream
//! API, acknowledgements), and publishing to a broker's stream.

use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::context::{Publish, PublishErrorKind};
use async_nats::jetstream::stream;
use async_nats::{Client, HeaderMap};
use weft_config::ObjectKey;

use super::acks::Acks;
use super::api::Api;
use super::config::Config;
use super::names::Names;
use crate::ChannelError;

/// The header that makes JetStream refuse a message unless the stream that would store it
/// is the one named.
const EXPECTED_STREAM: &str = "Nats-Expected-Stream";

/// What the channel and its subscriptions share.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) names: Names,
    pub(super) client: Client,
    pub(super) api: Api,
    pub(super) acks: Acks,
    pub(super) closed: AtomicBool,
    /// Held while an append sends its messages, so that one append's events are
    /// contiguous in the stream; not held while awaiting the acknowledgements.
    pub(super) sending: tokio::sync::Mutex<()>,
    /// The parked-events stream is known to exist.
    pub(super) parked_ready: AtomicBool,
    /// The retention of the broker streams this channel creates (`retention`).
    pub(super) retention: stream::RetentionPolicy,
}

impl Shared {
    pub(super) fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// `Ok` if the broker has a stream.
    pub(super) async fn require_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        match self.api.stream_info(&self.names.stream(broker)).await? {
            Some(_) => Ok(()),
            None => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
        }
    }

    /// Publishes messages back to back, then awaits every acknowledgement.
    pub(super) async fn publish(
        &self,
        subject: &str,
        stream: &str,
        messages: impl Iterator<Item = (HeaderMap, bytes::Bytes)>,
    ) -> Result<usize, async_nats::jetstream::context::PublishError> {
        let mut pending = Vec::new();
        {
            let _sending = self.sending.lock().await;
            for (mut headers, payload) in messages {
                headers.insert(EXPECTED_STREAM, stream);
                let publish = Publish::build().headers(headers).payload(payload);
                pending.push(
                    self.api
                        .js
                        .send_publish(subject.to_owned(), publish)
                        .await?,
                );
            }
        }
        let count = pending.len();
        for ack in pending {
            ack.await?;
        }
        Ok(count)
    }

    /// Classifies a failed publish: no stream for the subject means no log.
    pub(super) async fn publish_failed(
        &self,
        broker: &ObjectKey,
        error: async_nats::jetstream::context::PublishError,
    ) -> ChannelError {
        if error.kind() == PublishErrorKind::StreamNotFound
            && let Err(e @ ChannelError::UnknownLog { .. }) = self.require_log(broker).await
        {
            return e;
        }
        ChannelError::Append {
            broker: broker.clone(),
            source: Box::new(error),
        }
    }
}
