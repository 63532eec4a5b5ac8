//! What the channel, its subscriptions and the writer share: the brokers' heads, the live
//! cursors, the readers' pool, and how an event's key is made of broker id and sequence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sqlx::sqlite::SqlitePool;
use tokio::sync::watch;
use weft_config::ObjectKey;

use crate::ChannelError;
use crate::ack::LiveCursor;

/// The backend label of this crate's metrics.
pub(super) const BACKEND: &str = "sqlite";
/// Bits of an event's key that hold its sequence number; the broker id takes the rest.
const SEQ_BITS: u32 = 40;
/// The largest sequence number a log can hold (about 10^12 events).
pub(super) const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// The `events` key of a broker's event: `(broker_id << 40) | seq`. A log's keys form the
/// contiguous range `event_key(id, 0) .. event_key(id, MAX_SEQ)`.
pub(super) fn event_key(broker_id: i64, seq: u64) -> i64 {
    (broker_id << SEQ_BITS) | (seq.min(MAX_SEQ) as i64)
}

/// The sequence number in an `events` key.
pub(super) fn seq_of(key: i64) -> u64 {
    key as u64 & MAX_SEQ
}
/// What the channel, its subscriptions and the writer share.
pub(super) struct Shared {
    /// Every broker with a log, and its head. Only the writer changes it.
    pub(super) brokers: Mutex<HashMap<ObjectKey, BrokerState>>,
    /// Cursor trackers of subscriptions in this process, per (broker id, trigger); the
    /// writer persists what moved.
    pub(super) live: Mutex<HashMap<(i64, ObjectKey), LiveCursor>>,
    pub(super) readers: SqlitePool,
    pub(super) closed: AtomicBool,
    /// Group commits of appends so far.
    pub(super) commits: AtomicU64,
}

pub(super) struct BrokerState {
    /// The row id; never reused, so a re-created broker is a different log.
    pub(super) id: i64,
    /// The highest committed sequence number; the writer publishes every commit here and
    /// subscriptions wait on it. Dropped with the log, which ends its subscriptions.
    pub(super) head_tx: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn brokers(&self) -> MutexGuard<'_, HashMap<ObjectKey, BrokerState>> {
        // Nothing panics while these locks are held, so poisoned data is still consistent.
        self.brokers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn live(&self) -> MutexGuard<'_, HashMap<(i64, ObjectKey), LiveCursor>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// The broker's id and head.
    pub(super) fn broker(&self, broker: &ObjectKey) -> Result<(i64, u64), ChannelError> {
        self.check_open()?;
        let brokers = self.brokers();
        let state = brokers
            .get(broker)
            .ok_or_else(|| ChannelError::UnknownLog {
                broker: broker.clone(),
            })?;
        Ok((state.id, *state.head_tx.borrow()))
    }
}
