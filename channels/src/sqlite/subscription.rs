//! The read side: a trigger's subscription, decoding the events it reads.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tokio::sync::watch;
use weft_config::ObjectKey;
use weft_config::event::codec;

use super::shared::{MAX_SEQ, Shared, event_key, seq_of};
use crate::ack::SharedTracker;
use crate::sql::unavailable;
use crate::{ChannelError, Delivery, Subscription};

/// A trigger's subscription on a [`SqliteChannel`](super::SqliteChannel).
pub(super) struct SqliteSubscription {
    pub(super) shared: Arc<Shared>,
    pub(super) broker: ObjectKey,
    /// The log this subscription was opened on; a re-created broker is another log.
    pub(super) broker_id: i64,
    /// The log's head, published by the writer after each commit.
    pub(super) head_rx: watch::Receiver<u64>,
    pub(super) tracker: SharedTracker,
}

impl SqliteSubscription {
    /// Decodes rows and hands them out. A record that cannot be decoded ends the batch;
    /// alone, it is an error (returned again on every call: the trigger stops rather
    /// than skip an event).
    fn hand_out(&self, rows: Vec<SqliteRow>) -> Result<Vec<Delivery>, ChannelError> {
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let seq = seq_of(row.try_get::<i64, _>(0).map_err(unavailable)?);
            let body: Vec<u8> = row.try_get(1).map_err(unavailable)?;
            match codec::decode(Bytes::from(body)) {
                Ok(event) => deliveries.push(Delivery {
                    event,
                    ack: self.tracker.hand_out(seq),
                }),
                Err(source) if deliveries.is_empty() => {
                    return Err(ChannelError::Corrupt {
                        broker: self.broker.clone(),
                        seq,
                        source,
                    });
                }
                Err(_) => break,
            }
        }
        Ok(deliveries)
    }
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            self.shared.check_open()?;
            let head = *self.head_rx.borrow_and_update();
            let after = self.tracker.last_handed();
            if head > after {
                let rows = sqlx::query(include_str!("sql/select_events.sql"))
                    .bind(event_key(self.broker_id, after))
                    .bind(event_key(self.broker_id, MAX_SEQ))
                    .bind(i64::try_from(max).unwrap_or(i64::MAX))
                    .fetch_all(&self.shared.readers)
                    .await
                    .map_err(unavailable)?;
                let deliveries = self.hand_out(rows)?;
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            }
            if self.head_rx.changed().await.is_err() {
                // The head sender is gone: the channel was closed or the log deleted.
                self.shared.check_open()?;
                return Err(ChannelError::UnknownLog {
                    broker: self.broker.clone(),
                });
            }
        }
    }
}
