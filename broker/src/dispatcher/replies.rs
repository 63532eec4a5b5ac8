//! Re-ingesting reply events: a reply in a sink's 200 response enters the same broker
//! through the same durable append as a producer's event, one hop closer to its limit.

use std::sync::Arc;

use async_trait::async_trait;
use weft_channels::Channel;
use weft_config::event::extensions::TTL_EXTENSION;
use weft_config::{Event, ObjectKey};

use crate::delivery::{ReplyError, ReplySink};
use crate::ingress::admit;
use crate::telemetry;

/// Stores replies into a broker's channel.
pub(crate) struct BrokerReplies {
    pub(crate) broker: ObjectKey,
    pub(crate) trigger: ObjectKey,
    pub(crate) channel: Arc<dyn Channel>,
}

#[async_trait]
impl ReplySink for BrokerReplies {
    async fn store(&self, original: &Event, mut reply: Event) -> Result<(), ReplyError> {
        // The reply inherits the hop count of the event that caused it, less one. The
        // original was admitted, so it carries a valid TTL; fall back to the default.
        let ttl = admit::ttl(original)
            .ok()
            .flatten()
            .unwrap_or(i64::from(admit::DEFAULT_TTL))
            - 1;
        if ttl <= 0 {
            tracing::debug!(trigger = %self.trigger, event = original.id(), "reply dropped: hop limit reached");
            metrics::counter!(telemetry::DISPATCH_REPLIES_EXPIRED, "trigger" => self.trigger.to_string()).increment(1);
            return Ok(());
        }
        reply.remove_extension(TTL_EXTENSION);
        admit::set_ttl(&mut reply, ttl as i32);
        admit::admit(&mut reply, &admit::now_rfc3339()).map_err(|e| ReplyError::Rejected {
            reason: e.to_string(),
        })?;
        self.channel
            .append(&self.broker, vec![reply])
            .await
            .map_err(|e| ReplyError::Store {
                reason: e.to_string(),
            })
    }
}
