//! Parked events: records in the topic `<prefix>-parked` (one partition, so oldest
//! first), keyed by broker, holding the event in the binary binding plus Weft's headers
//! `weft_broker` and `weft_trigger` (`namespace/name`) and `weft_reason`. The record's
//! timestamp is when the event was parked.

use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};
use weft_config::{Event, ObjectKey};

use super::binding;
use super::client::{retrying, unavailable, unavailable_because};
use super::shared::Shared;
use crate::{ChannelError, ParkedEvent};

const BROKER: &str = "weft_broker";
const TRIGGER: &str = "weft_trigger";
const REASON: &str = "weft_reason";

/// The key and headers of a parked event's record.
pub(super) fn record(
    broker: &ObjectKey,
    trigger: &ObjectKey,
    event: &Event,
    reason: &str,
) -> (String, OwnedHeaders) {
    let (broker, trigger) = (broker.to_string(), trigger.to_string());
    let headers = binding::headers(
        event,
        &[(BROKER, &broker), (TRIGGER, &trigger), (REASON, reason)],
    );
    (broker, headers)
}

/// Reads the whole topic and returns the broker's parked events, oldest first.
pub(super) fn read(
    shared: &Shared,
    topic: &str,
    broker: &ObjectKey,
) -> Result<Vec<ParkedEvent>, ChannelError> {
    if shared.partitions_of(topic)?.is_none() {
        return Ok(Vec::new());
    }
    let reader = shared.reader(&shared.config.reader_group())?;
    let (low, high) = retrying(shared.config.timeout, || {
        reader.fetch_watermarks(topic, 0, shared.config.timeout)
    })
    .map_err(unavailable)?;
    let mut parked = Vec::new();
    if low >= high {
        return Ok(parked);
    }
    let mut from = TopicPartitionList::new();
    from.add_partition_offset(topic, 0, Offset::Offset(low))
        .map_err(unavailable)?;
    reader.assign(&from).map_err(unavailable)?;
    let deadline = Instant::now() + shared.config.timeout;
    let key = broker.to_string();
    let mut next = low;
    while next < high {
        let Some(message) = reader.poll(Duration::from_millis(100)) else {
            if Instant::now() >= deadline {
                return Err(unavailable_because(format!(
                    "reading parked events stopped at offset {next} of {high}"
                )));
            }
            continue;
        };
        let message = message.map_err(unavailable)?;
        next = message.offset() + 1;
        let headers = message.headers();
        if binding::header(headers, BROKER) != Some(key.as_str()) {
            continue;
        }
        let corrupt = |source| ChannelError::Corrupt {
            broker: broker.clone(),
            seq: message.offset() as u64,
            source,
        };
        let event = binding::decode(headers, message.payload()).map_err(corrupt)?;
        let trigger = (binding::header(headers, TRIGGER))
            .and_then(|t| t.split_once('/'))
            .map(|(ns, name)| ObjectKey::new(ns, name))
            .unwrap_or_else(|| ObjectKey::new("", ""));
        let millis = message.timestamp().to_millis().unwrap_or(0).max(0) as u64;
        parked.push(ParkedEvent {
            trigger,
            reason: binding::header(headers, REASON)
                .unwrap_or_default()
                .to_owned(),
            parked_at: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
            event,
        });
    }
    Ok(parked)
}
