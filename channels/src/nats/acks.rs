//! Acknowledging messages: one task per channel sends every `+ACK`, `-NAK`, `+WPI` and
//! `+TERM` in order, so an [`AckHandle`] (which is synchronous) only queues a command.
//!
//! - `+ACK`, `-NAK` and `+TERM` are requests: the server answers once it has applied them,
//!   so [`Acks::flush`] can wait until every earlier acknowledgement took effect (the
//!   backlog and retention reflect it). An acknowledgement that gets no answer (the server
//!   is down) is not retried: JetStream delivers the event again after `ack_wait`.
//! - [`Held`] lists the messages a subscription received and has not settled; a
//!   keep-alive task sends `+WPI` (work in progress) for each of them three times per
//!   `ack_wait`, so an event whose delivery takes long (retries with backoff) is not
//!   delivered again while this process still works on it. A subscription hands its
//!   unsettled messages back (`-NAK`) when it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::{Client, Subject};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use crate::AckHandle;

/// At most this many acknowledgements wait for the server's answer; further commands wait.
const MAX_UNANSWERED: usize = 4096;

/// What the acknowledging task does with a message's reply subject.
#[derive(Debug)]
pub(super) enum Command {
    /// Done: delivered, dead-lettered, parked or filtered out.
    Ack(Subject),
    /// Not done and not being worked on: deliver it again now.
    Nak(Subject),
    /// Still being worked on: restart its `ack_wait`.
    Progress(Subject),
    /// Never deliver it again (it is not a CloudEvent).
    Term(Subject),
    /// Answer once every earlier command took effect.
    Flush(oneshot::Sender<()>),
}

/// The way to the acknowledging task.
#[derive(Clone, Debug)]
pub(super) struct Acks(mpsc::UnboundedSender<Command>);

impl Acks {
    /// Starts the acknowledging task on `client`. It ends when every `Acks` is dropped.
    pub(super) fn start(client: Client) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        Acks(tx)
    }

    /// Queues a command. After the task ended (the channel is closing) nothing is sent,
    /// which only means JetStream delivers the message again.
    pub(super) fn send(&self, command: Command) {
        let _ = self.0.send(command);
    }

    /// Waits until every command queued before took effect on the server (or failed).
    pub(super) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Flush(tx));
        let _ = rx.await;
    }
}

async fn run(client: Client, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut unanswered = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = unanswered.next(), if !unanswered.is_empty() => {}
            command = commands.recv(), if unanswered.len() < MAX_UNANSWERED => {
                let (reply, body) = match command {
                    None => break,
                    Some(Command::Flush(done)) => {
                        while unanswered.next().await.is_some() {}
                        let _ = client.flush().await;
                        let _ = done.send(());
                        continue;
                    }
                    Some(Command::Progress(reply)) => {
                        // Fire and forget: a lost one only shortens the wait.
                        let _ = client.publish(reply, Bytes::from_static(b"+WPI")).await;
                        continue;
                    }
                    Some(Command::Ack(reply)) => (reply, &b"+ACK"[..]),
                    Some(Command::Nak(reply)) => (reply, &b"-NAK"[..]),
                    Some(Command::Term(reply)) => (reply, &b"+TERM"[..]),
                };
                unanswered.push(confirm(client.clone(), reply, Bytes::from_static(body)));
            }
        }
    }
    while unanswered.next().await.is_some() {}
}

/// Sends one acknowledgement and waits for the server to confirm it.
async fn confirm(client: Client, reply: Subject, body: Bytes) {
    if let Err(error) = client.request(reply, body).await {
        tracing::debug!(%error, "acknowledgement not confirmed; JetStream will deliver the event again");
    }
}

/// The messages one subscription received and has not settled, by a local id (in the
/// order received), with their reply subjects. Shared by the subscription, its ack handles
/// and its keep-alive task.
///
/// An ack handle dropped unacknowledged leaves its message *abandoned*: like SQLite's
/// cursor, the subscription does not hand it out again, but it stays held (with progress
/// reports, so JetStream does not redeliver it) until the subscription ends, which hands
/// it back with `-NAK` together with the messages it received and never handed out.
#[derive(Debug, Default)]
pub(super) struct Held(Mutex<HeldState>);

#[derive(Debug, Default)]
struct HeldState {
    entries: BTreeMap<u64, (Subject, State)>,
    next_id: u64,
    /// The subscription ended: an unacknowledged message is handed back at once.
    closed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Received, not handed out yet.
    Buffered,
    /// Handed out; its ack handle is alive.
    HandedOut,
    /// Handed out; its ack handle was dropped unacknowledged.
    Abandoned,
}

impl Held {
    fn state(&self) -> MutexGuard<'_, HeldState> {
        // Nothing panics while the lock is held, so poisoned data is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a received message; returns its id.
    pub(super) fn hold(&self, reply: Subject) -> u64 {
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.entries.insert(id, (reply, State::Buffered));
        id
    }

    /// Forgets a message and returns its reply subject, if it was still held.
    pub(super) fn release(&self, id: u64) -> Option<Subject> {
        self.state().entries.remove(&id).map(|(reply, _)| reply)
    }

    /// Ends the subscription: returns, in the order received, every message it did not
    /// hand out or whose handle was dropped, for `-NAK`.
    pub(super) fn close(&self) -> Vec<Subject> {
        let mut state = self.state();
        state.closed = true;
        let give_back: Vec<u64> = (state.entries.iter())
            .filter(|(_, (_, s))| *s != State::HandedOut)
            .map(|(id, _)| *id)
            .collect();
        give_back
            .into_iter()
            .filter_map(|id| state.entries.remove(&id).map(|(reply, _)| reply))
            .collect()
    }

    /// The handle of a message being handed out.
    pub(super) fn handle(self: &Arc<Self>, id: u64, acks: Acks) -> AckHandle {
        if let Some((_, state)) = self.state().entries.get_mut(&id) {
            *state = State::HandedOut;
        }
        let settle = Settle {
            held: self.clone(),
            id,
            acks,
            acked: false,
        };
        AckHandle::new(move || {
            let mut settle = settle;
            settle.acked = true;
        })
    }

    /// Settles a handed-out message: acknowledged, or dropped unacknowledged.
    fn settle(&self, id: u64, acked: bool) -> Option<Command> {
        let mut state = self.state();
        if acked || state.closed {
            let (reply, _) = state.entries.remove(&id)?;
            Some(if acked {
                Command::Ack(reply)
            } else {
                Command::Nak(reply)
            })
        } else {
            if let Some((_, s)) = state.entries.get_mut(&id) {
                *s = State::Abandoned;
            }
            None
        }
    }

    fn snapshot(&self) -> Vec<Subject> {
        self.state()
            .entries
            .values()
            .map(|(reply, _)| reply.clone())
            .collect()
    }
}

/// Reports progress on every held message, every `every`, until the [`Held`] is gone
/// (the subscription and all its ack handles are dropped).
pub(super) fn keep_alive(held: &Arc<Held>, acks: Acks, every: Duration) {
    let held: Weak<Held> = Arc::downgrade(held);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(held) = held.upgrade() else {
                return;
            };
            for reply in held.snapshot() {
                acks.send(Command::Progress(reply));
            }
        }
    });
}

/// Settles a handed-out message when its ack handle is used or dropped.
struct Settle {
    held: Arc<Held>,
    id: u64,
    acks: Acks,
    acked: bool,
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(command) = self.held.settle(self.id, self.acked) {
            self.acks.send(command);
        }
    }
}
