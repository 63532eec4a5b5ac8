//! The group commit both SQL writers append with.
//!
//! A writer task takes the append request that woke it and every one already waiting
//! behind it, up to `max_batch` events (a larger request goes alone), writes them in one
//! commit, and only then answers each: `Ok` once the commit is durable, or the same
//! retriable [`ChannelError::Append`] for all when it failed. A lone append commits at
//! once: nothing waits for company. What one commit writes, and how, is the backend's
//! ([`GroupCommit::write`]); gathering the batch and answering it is [`group_commit`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::warn;
use weft_config::ObjectKey;

use crate::error::SharedError;
use crate::{ChannelError, telemetry};

/// Events to append to one log, already encoded by the caller, and who waits for them.
pub(crate) struct AppendRequest<L> {
    pub(crate) broker: ObjectKey,
    /// What the caller resolved `broker` to before queueing, where the backend does that
    /// (PostgreSQL: the log's id); `()` otherwise.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // `()` is never read
    pub(crate) log: L,
    pub(crate) bodies: Vec<Bytes>,
    pub(crate) reply: oneshot::Sender<Result<(), ChannelError>>,
}

/// A backend's writer, seen by [`group_commit`]: its queue and its write of one batch.
pub(crate) trait GroupCommit {
    /// The backend's name in logs and metrics.
    const BACKEND: &'static str;
    /// What an [`AppendRequest`] carries besides the broker.
    type Log;
    /// What the writer's queue holds: append requests and, for SQLite, other commands.
    type Item: From<AppendRequest<Self::Log>>;

    /// The most events one commit writes.
    fn max_batch(&self) -> usize;

    /// The queue's next item if one is waiting (never waits).
    fn try_next(&mut self) -> Option<Self::Item>;

    /// The append request `item` is, or `item` back when it is something else.
    fn as_append(item: Self::Item) -> Result<AppendRequest<Self::Log>, Self::Item>;

    /// Where the group commits made are counted (the channels' `commits()`).
    fn commits(&self) -> &AtomicU64;

    /// Writes `batch` in one commit; returns how many events it stored. Requests it cannot
    /// write (their log is gone) it answers itself and removes from `batch`; it may take
    /// the requests' bodies. The requests left in `batch` are answered by the caller.
    async fn write(
        &mut self,
        batch: &mut Vec<AppendRequest<Self::Log>>,
    ) -> Result<usize, sqlx::Error>;
}

/// Makes one group commit, starting with `first`: gathers the appends already waiting
/// (see [`gather`]), has the backend write them, and answers every request. Returns the
/// item taken off the queue but left out of the batch (another command, or an append that
/// would take the batch past `max_batch`), for the writer to serve next.
pub(crate) async fn group_commit<W: GroupCommit>(
    writer: &mut W,
    first: AppendRequest<W::Log>,
) -> Option<W::Item> {
    let max_batch = writer.max_batch();
    let (mut batch, left) = gather(first, max_batch, || writer.try_next(), W::as_append);
    let events: usize = batch.iter().map(|request| request.bodies.len()).sum();
    match writer.write(&mut batch).await {
        Ok(stored) => {
            // A batch whose logs were all gone stored nothing: no commit to count.
            if stored > 0 {
                writer.commits().fetch_add(1, Ordering::Relaxed);
                telemetry::appended(W::BACKEND, stored);
            }
            for request in batch {
                let _ = request.reply.send(Ok(()));
            }
        }
        Err(error) => {
            warn!(%error, events, "{} group commit failed", W::BACKEND);
            let closed = matches!(error, sqlx::Error::PoolClosed);
            let shared = SharedError(Arc::new(error));
            for request in batch {
                let error = if closed {
                    ChannelError::Closed
                } else {
                    ChannelError::Append {
                        broker: request.broker,
                        source: shared.boxed(),
                    }
                };
                telemetry::append_failed(W::BACKEND, &error);
                let _ = request.reply.send(Err(error));
            }
        }
    }
    left
}

/// Takes `first` and the appends already waiting behind it (`try_next` takes the queue's
/// next item without waiting, `as_append` tells an append from anything else) into one
/// batch of at most `max_batch` events; a larger request goes alone. Returns the batch and
/// the item taken off the queue but left out.
fn gather<L, T: From<AppendRequest<L>>>(
    first: AppendRequest<L>,
    max_batch: usize,
    mut try_next: impl FnMut() -> Option<T>,
    as_append: impl Fn(T) -> Result<AppendRequest<L>, T>,
) -> (Vec<AppendRequest<L>>, Option<T>) {
    let mut total = first.bodies.len();
    let mut batch = vec![first];
    while total < max_batch {
        let Some(item) = try_next() else {
            return (batch, None);
        };
        match as_append(item) {
            Ok(next) if total + next.bodies.len() <= max_batch => {
                total += next.bodies.len();
                batch.push(next);
            }
            Ok(next) => return (batch, Some(T::from(next))),
            Err(other) => return (batch, Some(other)),
        }
    }
    (batch, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a writer's queue may hold besides appends.
    enum Item {
        Append(AppendRequest<()>),
        Other,
    }

    impl From<AppendRequest<()>> for Item {
        fn from(request: AppendRequest<()>) -> Self {
            Item::Append(request)
        }
    }

    fn append(events: usize) -> Item {
        let (reply, _) = oneshot::channel();
        Item::Append(AppendRequest {
            broker: ObjectKey::new("default", "b"),
            log: (),
            bodies: vec![Bytes::from_static(b"e"); events],
            reply,
        })
    }

    /// The batch sizes `gather` makes of a queue, and what it leaves for the caller.
    fn batches(queue: Vec<Item>, max_batch: usize) -> Vec<Result<usize, &'static str>> {
        let mut queue = queue.into_iter();
        let mut next = queue.next();
        let mut made = Vec::new();
        while let Some(item) = next.take() {
            let first = match item {
                Item::Append(first) => first,
                Item::Other => {
                    made.push(Err("other"));
                    next = queue.next();
                    continue;
                }
            };
            let (batch, left) = gather(
                first,
                max_batch,
                || queue.next(),
                |item| match item {
                    Item::Append(request) => Ok(request),
                    other => Err(other),
                },
            );
            made.push(Ok(batch.iter().map(|r| r.bodies.len()).sum()));
            next = left.or_else(|| queue.next());
        }
        made
    }

    #[test]
    fn a_batch_takes_what_waits_up_to_max_batch() {
        let queue = vec![append(1), append(2), append(3), append(4)];
        assert_eq!(batches(queue, 100), [Ok(10)], "everything waiting");
        let queue = vec![append(1), append(2), append(3), append(4)];
        assert_eq!(batches(queue, 6), [Ok(6), Ok(4)]);
        // PostgreSQL once took the append that crossed the limit as well: one batch of 7.
        let queue = vec![append(1), append(2), append(4)];
        assert_eq!(batches(queue, 6), [Ok(3), Ok(4)]);
        let queue = vec![append(9), append(1), append(1)];
        assert_eq!(
            batches(queue, 4),
            [Ok(9), Ok(2)],
            "a larger request goes alone"
        );
    }

    /// A writer whose queue is a list and whose writes fail while `fail` is set.
    struct Fake {
        queue: std::collections::VecDeque<Item>,
        commits: AtomicU64,
        written: Vec<usize>,
        fail: bool,
    }

    impl GroupCommit for Fake {
        const BACKEND: &'static str = "fake";
        type Log = ();
        type Item = Item;

        fn max_batch(&self) -> usize {
            4
        }

        fn try_next(&mut self) -> Option<Item> {
            self.queue.pop_front()
        }

        fn as_append(item: Item) -> Result<AppendRequest<()>, Item> {
            match item {
                Item::Append(request) => Ok(request),
                other => Err(other),
            }
        }

        fn commits(&self) -> &AtomicU64 {
            &self.commits
        }

        async fn write(
            &mut self,
            batch: &mut Vec<AppendRequest<()>>,
        ) -> Result<usize, sqlx::Error> {
            if self.fail {
                return Err(sqlx::Error::PoolTimedOut);
            }
            let events = batch.iter().map(|r| r.bodies.len()).sum();
            self.written.push(events);
            Ok(events)
        }
    }

    fn request(
        events: usize,
    ) -> (
        AppendRequest<()>,
        oneshot::Receiver<Result<(), ChannelError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            broker: ObjectKey::new("default", "b"),
            log: (),
            bodies: vec![Bytes::from_static(b"e"); events],
            reply,
        };
        (request, answer)
    }

    #[tokio::test]
    async fn every_request_is_answered_after_its_commit() {
        let (first, first_answer) = request(1);
        let (second, second_answer) = request(2);
        let (third, third_answer) = request(3);
        let mut fake = Fake {
            queue: [Item::Append(second), Item::Append(third)].into(),
            commits: AtomicU64::new(0),
            written: Vec::new(),
            fail: false,
        };
        let left = group_commit(&mut fake, first).await;
        assert_eq!(
            fake.written,
            [3],
            "1 + 2 events; 3 more would pass max_batch"
        );
        assert_eq!(fake.commits.load(Ordering::Relaxed), 1);
        assert!(first_answer.await.unwrap().is_ok());
        assert!(second_answer.await.unwrap().is_ok());
        let Some(Item::Append(third)) = left else {
            panic!("the append that did not fit is left for the next commit");
        };
        fake.fail = true;
        assert!(group_commit(&mut fake, third).await.is_none());
        let failed = third_answer.await.unwrap().unwrap_err();
        assert!(
            matches!(failed, ChannelError::Append { .. }) && failed.is_retriable(),
            "{failed}"
        );
        assert_eq!(
            fake.commits.load(Ordering::Relaxed),
            1,
            "a failure is no commit"
        );
    }

    #[test]
    fn other_commands_end_a_batch_and_are_served_in_order() {
        let queue = vec![append(1), append(1), Item::Other, append(1)];
        assert_eq!(batches(queue, 100), [Ok(2), Err("other"), Ok(1)]);
    }
}
