//! Cursor tracking when acknowledgements arrive out of order.
//!
//! A dispatcher in unordered mode keeps many events in flight, so event 7 may be
//! acknowledged before event 3. A trigger's cursor means "every event up to here is done",
//! so it may only advance to just below the lowest event still unacknowledged; after a
//! crash everything above it is delivered again (duplicates, never loss).
//!
//! Every backend keeps sequence numbers of its own (SQLite rows, Kafka offsets, JetStream
//! stream sequences) and shares these pieces:
//! - [`AckTracker`]: the pure bookkeeping, O(log n) per hand-out and per ack.
//! - [`SharedTracker`]: a tracker shared by a subscription and the [`AckHandle`]s it gave
//!   out, with a dirty flag so the backend persists the cursor lazily, in batches.
//! - [`LiveCursor`]: the trackers of one trigger's subscriptions, for resuming where a
//!   previous subscription in this process stopped before its cursor was persisted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::AckHandle;

/// Which handed-out sequence numbers are still unacknowledged, and the committed cursor
/// that follows from them.
///
/// Sequence numbers must be handed out in increasing order; gaps (numbers that do not
/// exist in the log) are allowed.
#[derive(Clone, Debug)]
pub struct AckTracker {
    /// Every sequence number up to and including this one is done.
    committed: u64,
    /// The highest sequence number handed out so far (or `committed` if none).
    last_handed: u64,
    /// Handed out, not yet acknowledged. Ordered, so the lowest is found in O(log n).
    unacked: BTreeSet<u64>,
}

impl AckTracker {
    /// Starts after `committed`: everything up to it is already done.
    pub fn new(committed: u64) -> Self {
        AckTracker {
            committed,
            last_handed: committed,
            unacked: BTreeSet::new(),
        }
    }

    /// Records that `seq` was handed out. A `seq` at or below the committed cursor is
    /// already done and is not tracked.
    pub fn hand_out(&mut self, seq: u64) {
        if seq <= self.committed {
            return;
        }
        debug_assert!(seq > self.last_handed, "sequence numbers must increase");
        self.unacked.insert(seq);
        self.last_handed = self.last_handed.max(seq);
    }

    /// Records that `seq` is done. Returns whether the committed cursor advanced.
    pub fn ack(&mut self, seq: u64) -> bool {
        if !self.unacked.remove(&seq) {
            return false;
        }
        let committed = match self.unacked.first() {
            Some(&lowest) => lowest - 1,
            None => self.last_handed,
        };
        let advanced = committed > self.committed;
        self.committed = self.committed.max(committed);
        advanced
    }

    /// Every sequence number up to and including this one is done.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The highest sequence number handed out (or the starting cursor if none was).
    pub fn last_handed(&self) -> u64 {
        self.last_handed
    }

    /// How many handed-out events are not acknowledged yet.
    pub fn in_flight(&self) -> usize {
        self.unacked.len()
    }
}

/// An [`AckTracker`] shared by a subscription and the ack handles it gave out, remembering
/// whether its cursor moved since the backend last persisted it.
#[derive(Clone, Debug)]
pub struct SharedTracker {
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Debug)]
struct Tracked {
    tracker: AckTracker,
    /// The committed cursor moved and is not persisted yet.
    dirty: bool,
}

impl SharedTracker {
    /// Starts after `committed`.
    pub fn new(committed: u64) -> Self {
        SharedTracker {
            inner: Arc::new(Mutex::new(Tracked {
                tracker: AckTracker::new(committed),
                dirty: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        // Nothing panics while the lock is held, so a poisoned state is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `seq` was handed out and returns the handle that acknowledges it.
    pub fn hand_out(&self, seq: u64) -> AckHandle {
        self.lock().tracker.hand_out(seq);
        let inner = self.clone();
        AckHandle::new(move || {
            let mut tracked = inner.lock();
            if tracked.tracker.ack(seq) {
                tracked.dirty = true;
            }
        })
    }

    /// Every sequence number up to and including this one is done.
    pub fn committed(&self) -> u64 {
        self.lock().tracker.committed()
    }

    /// The highest sequence number handed out.
    pub fn last_handed(&self) -> u64 {
        self.lock().tracker.last_handed()
    }

    /// The committed cursor if it moved since the last call, clearing the dirty flag.
    /// A backend that then fails to persist it calls [`SharedTracker::mark_dirty`].
    pub fn take_dirty(&self) -> Option<u64> {
        let mut tracked = self.lock();
        std::mem::take(&mut tracked.dirty).then_some(tracked.tracker.committed())
    }

    /// Marks the cursor as not persisted.
    pub fn mark_dirty(&self) {
        self.lock().dirty = true;
    }

    /// Whether anything besides this handle holds the tracker: the subscription or an
    /// unacknowledged delivery. An unused, clean tracker can be forgotten.
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.inner) > 1
    }
}

/// The trackers of one trigger's subscriptions in this process.
///
/// A new subscription starts from the higher of the persisted cursor and what earlier
/// subscriptions committed in memory; trackers are kept until they are neither used nor
/// dirty, so no acknowledgement is lost before it is persisted.
#[derive(Debug, Default)]
pub struct LiveCursor {
    trackers: Vec<SharedTracker>,
}

impl LiveCursor {
    /// Opens a tracker for a new subscription whose persisted cursor is `stored`.
    pub fn open(&mut self, stored: u64) -> SharedTracker {
        let start = self.committed().map_or(stored, |c| c.max(stored));
        let tracker = SharedTracker::new(start);
        if start > stored {
            tracker.mark_dirty();
        }
        self.trackers.push(tracker.clone());
        tracker
    }

    /// The highest cursor any tracker committed, if there is a tracker.
    pub fn committed(&self) -> Option<u64> {
        self.trackers.iter().map(SharedTracker::committed).max()
    }

    /// The highest cursor that moved since the last call, to be persisted. Forgets
    /// trackers that are unused and were clean.
    pub fn take_dirty(&mut self) -> Option<u64> {
        let mut highest = None;
        self.trackers.retain(|tracker| match tracker.take_dirty() {
            Some(c) => {
                highest = highest.max(Some(c));
                true
            }
            None => tracker.in_use(),
        });
        highest
    }

    /// Marks every tracker as not persisted, after a failed write.
    pub fn mark_dirty(&self) {
        self.trackers.iter().for_each(SharedTracker::mark_dirty);
    }

    /// Whether no tracker is left.
    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_acks_advance_the_cursor() {
        let mut t = AckTracker::new(0);
        (1..=3).for_each(|s| t.hand_out(s));
        assert!(t.ack(1));
        assert!(t.ack(2));
        assert_eq!(t.committed(), 2);
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn out_of_order_acks_stop_below_the_lowest_unacked() {
        let mut t = AckTracker::new(10);
        (11..=17).for_each(|s| t.hand_out(s));
        for s in [17, 12, 15] {
            assert!(!t.ack(s));
        }
        assert_eq!(t.committed(), 10);
        assert!(t.ack(11));
        assert_eq!(t.committed(), 12);
        for s in [13, 14] {
            t.ack(s);
        }
        assert_eq!(t.committed(), 15);
        t.ack(16);
        assert_eq!(t.committed(), 17);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn gaps_and_stray_acks() {
        let mut t = AckTracker::new(5);
        t.hand_out(3); // already done: not tracked
        t.hand_out(6);
        t.hand_out(9); // 7 and 8 do not exist
        assert!(!t.ack(42));
        assert!(t.ack(6));
        assert_eq!(t.committed(), 8);
        assert!(t.ack(9));
        assert_eq!(t.committed(), 9);
        assert!(!t.ack(9));
    }

    #[test]
    fn many_acks_in_reverse_order() {
        let mut t = AckTracker::new(0);
        (1..=100_000).for_each(|s| t.hand_out(s));
        for s in (2..=100_000).rev() {
            t.ack(s);
        }
        assert_eq!(t.committed(), 0);
        t.ack(1);
        assert_eq!(t.committed(), 100_000);
    }

    #[test]
    fn shared_tracker_handles_and_dirty_flag() {
        let shared = SharedTracker::new(0);
        let handles: Vec<_> = (1..=3).map(|s| shared.hand_out(s)).collect();
        assert!(shared.in_use());
        assert_eq!(shared.take_dirty(), None);
        let mut handles = handles.into_iter();
        let first = handles.next().unwrap();
        drop(handles); // 2 and 3 are dropped without ack
        first.ack();
        assert_eq!(shared.take_dirty(), Some(1));
        assert_eq!(shared.take_dirty(), None);
        assert_eq!(shared.last_handed(), 3);
        assert!(!shared.in_use());
    }

    #[test]
    fn live_cursor_resumes_from_memory_and_forgets_idle_trackers() {
        let mut live = LiveCursor::default();
        let first = live.open(4);
        first.hand_out(5).ack();
        let handle = first.hand_out(6);
        drop(first);
        // A second subscription starts after what the first committed, not what is stored.
        let second = live.open(4);
        assert_eq!(second.committed(), 5);
        assert_eq!(live.take_dirty(), Some(5));
        drop(handle);
        drop(second);
        assert_eq!(live.take_dirty(), None);
        assert!(live.is_empty());
    }
}
