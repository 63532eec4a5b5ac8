//! The latest events this process appended to each log, kept in memory so that its
//! subscriptions read them without a round trip.

use std::collections::VecDeque;

use bytes::Bytes;

/// The most events, and bytes of events, a log's [`Tail`] keeps.
const TAIL_EVENTS: usize = 4096;
const TAIL_BYTES: usize = 2 << 20;

/// The latest events this process appended to one log, contiguous by sequence number, so
/// that its subscriptions read them without a round trip (the common case: a trigger keeps
/// up with its broker). Events appended by other processes interleave with ours; then the
/// tail starts again after them, and what it lacks is read from the database.
#[derive(Debug, Default)]
pub(super) struct Tail {
    /// The sequence number of `bodies[0]`.
    first: i64,
    bodies: VecDeque<Bytes>,
    /// The bodies' total size.
    bytes: usize,
}

impl Tail {
    /// Adds events `first..` at the end.
    pub(super) fn push(&mut self, first: i64, bodies: &[Bytes]) {
        if first != self.first + self.bodies.len() as i64 {
            self.bodies.clear();
            self.bytes = 0;
            self.first = first;
        }
        for body in bodies {
            self.bytes += body.len();
            self.bodies.push_back(body.clone());
        }
        while self.bodies.len() > TAIL_EVENTS || self.bytes > TAIL_BYTES {
            let Some(oldest) = self.bodies.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.first += 1;
        }
    }

    /// Events `from..=to`, if the tail has every one of them.
    pub(super) fn get(&self, from: i64, to: i64) -> Option<Vec<(i64, Bytes)>> {
        let last = self.first + self.bodies.len() as i64 - 1;
        if from < self.first || to > last || from > to {
            return None;
        }
        let skip = (from - self.first) as usize;
        let bodies = self.bodies.iter().skip(skip).take((to - from + 1) as usize);
        Some((from..=to).zip(bodies.cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_latest_contiguous_events() {
        let body = |i: u8| Bytes::from(vec![i; 10]);
        let mut tail = Tail::default();
        assert_eq!(tail.get(1, 1), None);
        tail.push(1, &[body(1), body(2)]);
        tail.push(3, &[body(3)]);
        let got = tail.get(2, 3).unwrap();
        assert_eq!(got, vec![(2, body(2)), (3, body(3))]);
        assert_eq!(tail.get(0, 1), None, "before the tail");
        assert_eq!(tail.get(3, 4), None, "after the tail");
        // Another process appended 4 and 5: the tail starts again at 6.
        tail.push(6, &[body(6)]);
        assert_eq!(tail.get(3, 3), None);
        assert_eq!(tail.get(6, 6).unwrap(), vec![(6, body(6))]);
        let many: Vec<_> = (0..TAIL_EVENTS + 10).map(|_| body(0)).collect();
        tail.push(7, &many);
        assert_eq!(tail.bodies.len(), TAIL_EVENTS);
        assert_eq!(tail.first, 17);
        assert_eq!(tail.get(16, 16), None, "the oldest are forgotten");
    }
}
