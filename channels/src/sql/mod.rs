//! What the two SQL backends ([`sqlite`](crate::sqlite) and [`postgres`](crate::postgres))
//! share: the group commit their writers append with, the decoding of a parked event's
//! row, and the classification of database errors. The statements themselves stay with
//! each backend (`sqlite/sql/`, `postgres/sql/`), as their dialects differ.
//!
//! # Layout
//! - [`group_commit`]: gathering waiting appends into one commit, and answering them.
//! - [`ParkedRow`], [`parked_event`]: a row of the parked-events table, decoded.
//! - [`unavailable`]: a database error as a [`ChannelError`].

pub(crate) mod group_commit;

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use weft_config::ObjectKey;
use weft_config::event::codec;

use crate::{ChannelError, ParkedEvent};

/// A parked event as both backends' `select_parked.sql` return it: its id, the trigger's
/// namespace and name, the reason, when it was parked (milliseconds since the Unix epoch)
/// and the encoded event.
pub(crate) type ParkedRow = (i64, String, String, String, i64, Vec<u8>);

/// Decodes a parked event of `broker`. A time before the epoch (which Weft never writes)
/// reads as the epoch. A body that cannot be decoded is [`ChannelError::Corrupt`], with the
/// parking id as its sequence number.
pub(crate) fn parked_event(
    broker: &ObjectKey,
    row: ParkedRow,
) -> Result<ParkedEvent, ChannelError> {
    let (id, namespace, name, reason, millis, body) = row;
    let event = codec::decode(Bytes::from(body)).map_err(|source| ChannelError::Corrupt {
        broker: broker.clone(),
        seq: id as u64,
        source,
    })?;
    Ok(ParkedEvent {
        trigger: ObjectKey::new(namespace, name),
        reason,
        parked_at: UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64),
        event,
    })
}

/// Classifies a database error: a pool closed by `close` means the channel is closed,
/// anything else that the database cannot serve the request now.
pub(crate) fn unavailable(error: sqlx::Error) -> ChannelError {
    match error {
        sqlx::Error::PoolClosed => ChannelError::Closed,
        error => ChannelError::Unavailable {
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use weft_config::Event;

    use super::*;

    fn row(id: i64, millis: i64, body: Vec<u8>) -> ParkedRow {
        let (ns, name, reason) = ("default".into(), "t".into(), "no sink".into());
        (id, ns, name, reason, millis, body)
    }

    #[test]
    fn parked_rows_decode_to_events() {
        let broker = ObjectKey::new("default", "b");
        let event = Event::new("e1", "/test", "test").unwrap();
        let body = codec::encode(&event).to_vec();
        let parked = parked_event(&broker, row(7, 1_500, body.clone())).unwrap();
        assert_eq!(parked.trigger, ObjectKey::new("default", "t"));
        assert_eq!(parked.reason, "no sink");
        assert_eq!(parked.parked_at, UNIX_EPOCH + Duration::from_millis(1_500));
        assert_eq!(parked.event, event);
        // SQLite once read a negative time as 584 million years after the epoch.
        let early = parked_event(&broker, row(8, -5, body)).unwrap();
        assert_eq!(early.parked_at, UNIX_EPOCH);
        let corrupt = parked_event(&broker, row(9, 0, b"not an event".to_vec()));
        assert!(matches!(
            corrupt,
            Err(ChannelError::Corrupt { seq: 9, ref broker, .. }) if broker.name == "b"
        ));
    }

    #[test]
    fn a_closed_pool_means_a_closed_channel() {
        assert!(matches!(
            unavailable(sqlx::Error::PoolClosed),
            ChannelError::Closed
        ));
        let timeout = unavailable(sqlx::Error::PoolTimedOut);
        assert!(matches!(timeout, ChannelError::Unavailable { .. }));
        assert!(timeout.is_retriable());
    }
}
