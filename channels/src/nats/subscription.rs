//! The read side: a trigger's subscription, pulling from its durable consumer.
//!
//! A subscription owns one inbox subscription (`<inbox>.*`) for its whole life and sends
//! pull requests with reply subject `<inbox>.<n>`; whatever the server sends there is
//! received into the subscription's own buffer, so cancelling [`Subscription::next`]
//! never strands a message. It pulls only on demand:
//! 1. a `no_wait` request for as many events as asked: the server sends what is there at
//!    once and ends the request with a status (404 or 408);
//! 2. if that was nothing, a request for one event that the server keeps for
//!    [`WAIT`], with a heartbeat every [`HEARTBEAT`]; when an event arrives, back to 1 to
//!    fill the batch.
//!
//! A request the server stays silent on for [`SILENCE`] is presumed lost: the consumer or
//! stream was deleted (then `next` fails: [`ChannelError::UnknownLog`] for a deleted log)
//! or the server restarted (then it asks again).
//!
//! So between calls no request is open (but after a cancelled wait), and events sit in
//! the buffer only when a call asked for fewer than a request brought. Everything
//! received and not settled is [`Held`]: progress is reported on it, and a dropped
//! subscription hands back (`-NAK`) what it did not hand out and what was handed out but
//! dropped unacknowledged; a handle dropped after that hands its event back at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, StatusCode, Subscriber, jetstream};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use weft_config::ObjectKey;

use super::acks::{self, Command, Held};
use super::api::{Lookup, unavailable};
use super::binding;
use super::shared::Shared;
use crate::error::BoxError;
use crate::{ChannelError, Delivery, Subscription};

/// How long the server keeps a request that waits for the next event.
const WAIT: Duration = Duration::from_secs(5);
/// How often the server reports on a waiting request when it has nothing to send.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which an open request is presumed lost: the consumer or its stream was
/// deleted (the server then answers nothing), or the server restarted. Two heartbeats.
const SILENCE: Duration = Duration::from_secs(2);
/// The same for a `no_wait` request, which the server answers at once. Presuming one lost
/// too early costs only a look at the consumer's state.
const SILENCE_NO_WAIT: Duration = Duration::from_secs(1);

/// A pull request the server has not finished.
#[derive(Clone, Copy, Debug)]
struct Pull {
    /// Its number: the last token of its reply subject.
    id: u64,
    /// Messages it may still bring.
    remaining: usize,
    /// When the server's silence means the request is lost; moved on by every message.
    quiet_until: Instant,
}

/// A trigger's subscription on a [`NatsChannel`](super::NatsChannel).
pub(super) struct NatsSubscription {
    shared: Arc<Shared>,
    broker: ObjectKey,
    stream: String,
    consumer: String,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
    pull_subject: String,
    /// Reply subjects are `<inbox>.<pull id>`.
    inbox: String,
    /// Receives on `<inbox>.*`. Only `Drop` takes it, to hand it to the drain task.
    messages: Option<Subscriber>,
    pending: Option<Pull>,
    pulls: u64,
    /// The last request asked for what is there now (as opposed to waiting for an event).
    topped_up: bool,
    /// Received, not handed out, with their ids in `held`.
    buffer: VecDeque<(u64, Message)>,
    held: Arc<Held>,
}

impl NatsSubscription {
    pub(super) async fn open(
        shared: Arc<Shared>,
        broker: ObjectKey,
        stream: String,
        consumer: String,
    ) -> Result<Self, ChannelError> {
        let inbox = shared.client.new_inbox();
        let messages = shared
            .client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(unavailable)?;
        let held = Arc::new(Held::default());
        acks::keep_alive(&held, shared.acks.clone(), shared.config.ack_wait / 3);
        Ok(NatsSubscription {
            pull_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            shared,
            broker,
            stream,
            consumer,
            inbox,
            messages: Some(messages),
            pending: None,
            pulls: 0,
            topped_up: false,
            buffer: VecDeque::new(),
            held,
        })
    }

    /// Asks the server for up to `batch` events: at once (`immediate`), or waiting up to
    /// [`WAIT`] for the first (with a heartbeat while nothing comes).
    async fn start_pull(&mut self, batch: usize, immediate: bool) -> Result<(), ChannelError> {
        self.pulls += 1;
        let request = if immediate {
            json!({"batch": batch, "no_wait": true})
        } else {
            json!({
                "batch": batch,
                "expires": WAIT.as_nanos() as u64,
                "idle_heartbeat": HEARTBEAT.as_nanos() as u64,
            })
        };
        // Recorded first: were this call cancelled after the request left, its answer
        // must still be awaited.
        self.pending = Some(Pull {
            id: self.pulls,
            remaining: batch,
            quiet_until: Instant::now() + if immediate { SILENCE_NO_WAIT } else { SILENCE },
        });
        let reply = format!("{}.{}", self.inbox, self.pulls);
        let sent = self
            .shared
            .client
            .publish_with_reply(self.pull_subject.clone(), reply, request.to_string().into())
            .await;
        if sent.is_err() {
            self.pending = None;
        }
        sent.map_err(unavailable)
    }

    /// Receives until the open request (if any) is finished.
    async fn finish_pull(&mut self) -> Result<(), ChannelError> {
        while let Some(pull) = self.pending {
            let Some(messages) = self.messages.as_mut() else {
                return Err(ChannelError::Closed);
            };
            match tokio::time::timeout_at(pull.quiet_until, messages.next()).await {
                Ok(Some(message)) => self.receive(message).await?,
                // The client is gone: the channel was closed.
                Ok(None) => return Err(ChannelError::Closed),
                Err(_) => {
                    self.pending = None;
                    if let Some(error) = self.why_no_answer().await {
                        return Err(error);
                    }
                    // The consumer is there: the server forgot the request (it
                    // restarted). Ask again.
                }
            }
        }
        Ok(())
    }

    /// Takes one message or status from the inbox.
    async fn receive(&mut self, message: Message) -> Result<(), ChannelError> {
        let status = message.status.unwrap_or(StatusCode::OK);
        if let Some(pull) = &mut self.pending {
            pull.quiet_until = Instant::now() + SILENCE;
        }
        if status == StatusCode::OK {
            let Some(reply) = message.reply.clone() else {
                return Ok(()); // not a JetStream delivery
            };
            let id = self.held.hold(reply);
            self.buffer.push_back((id, message));
            if let Some(pull) = &mut self.pending {
                pull.remaining = pull.remaining.saturating_sub(1);
                if pull.remaining == 0 {
                    self.pending = None;
                }
            }
            return Ok(());
        }
        if status == StatusCode::IDLE_HEARTBEAT {
            return Ok(());
        }
        // Any other status ends the request it answers.
        let answers = message
            .subject
            .rsplit_once('.')
            .and_then(|(_, id)| id.parse::<u64>().ok());
        let current = self.pending.is_some_and(|p| Some(p.id) == answers);
        if current {
            self.pending = None;
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::TIMEOUT || !current {
            return Ok(()); // nothing (more) to deliver now, or an old request's answer
        }
        let description = message.description.unwrap_or_default();
        if status == StatusCode::REQUEST_TERMINATED && description.contains("Deleted") {
            return Err(self.why_no_answer().await.unwrap_or_else(consumer_deleted));
        }
        if status == StatusCode::NO_RESPONDERS {
            // Newer servers answer a pull for a consumer that does not exist this way.
            return match self.why_no_answer().await {
                Some(error) => Err(error),
                None => {
                    // JetStream was not ready yet: pull again shortly.
                    tokio::time::sleep(HEARTBEAT / 10).await;
                    Ok(())
                }
            };
        }
        if status == StatusCode::REQUEST_TERMINATED {
            // Limits (max waiting, max ack pending) or a leader change: pull again later.
            tracing::debug!(stream = %self.stream, consumer = %self.consumer, %description, "pull request ended early");
            return Ok(());
        }
        Err(unavailable(std::io::Error::other(format!(
            "pull request answered with status {status}: {description}"
        ))))
    }

    /// Why a request got no answer: the log is gone, the consumer is gone, or the server
    /// cannot be asked; `None` when all is in place (the server forgot the request).
    async fn why_no_answer(&self) -> Option<ChannelError> {
        match self
            .shared
            .api
            .consumer_info(&self.stream, &self.consumer)
            .await
        {
            Ok(Lookup::NoStream) => Some(ChannelError::UnknownLog {
                broker: self.broker.clone(),
            }),
            Ok(Lookup::NoConsumer) => Some(consumer_deleted()),
            Ok(Lookup::Found(_)) => None,
            Err(e) => Some(e),
        }
    }

    /// Decodes up to `max` buffered messages. One that is not a CloudEvent is terminated
    /// (`+TERM`, never delivered again) and logged as an error rather than handed out.
    fn hand_out(&mut self, max: usize) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(max.min(self.buffer.len()));
        while deliveries.len() < max {
            let Some((id, message)) = self.buffer.pop_front() else {
                break;
            };
            match binding::decode(message.headers.as_ref(), message.payload.clone()) {
                Ok(event) => deliveries.push(Delivery {
                    event,
                    ack: self.held.handle(id, self.shared.acks.clone()),
                }),
                Err(error) => {
                    let seq = jetstream::Message {
                        message,
                        context: self.shared.api.js.clone(),
                    }
                    .info()
                    .map(|i| i.stream_sequence)
                    .unwrap_or_default();
                    tracing::error!(broker = %self.broker, stream = %self.stream, seq, %error, "message is not a CloudEvent; terminated without delivery");
                    if let Some(reply) = self.held.release(id) {
                        self.shared.acks.send(Command::Term(reply));
                    }
                }
            }
        }
        deliveries
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self, max: usize) -> Result<Vec<Delivery>, ChannelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            self.shared.check_open()?;
            self.finish_pull().await?;
            if self.buffer.len() >= max || (!self.buffer.is_empty() && self.topped_up) {
                self.topped_up = false;
                let deliveries = self.hand_out(max);
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            } else if self.topped_up {
                // Nothing is there: wait for the next event.
                self.topped_up = false;
                self.start_pull(1, false).await?;
            } else {
                self.start_pull(max - self.buffer.len(), true).await?;
                self.topped_up = true;
            }
        }
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        // Received but never handed out, or abandoned by their handles: deliver them
        // again at once, in order.
        self.buffer.clear();
        for reply in self.held.close() {
            self.shared.acks.send(Command::Nak(reply));
        }
        // An open request may still bring events: listen until it ends, handing back
        // whatever arrives, rather than leave them to `ack_wait`.
        if let (Some(pull), Some(messages)) = (self.pending.take(), self.messages.take())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(hand_back(messages, pull, self.shared.acks.clone()));
        }
    }
}

fn consumer_deleted() -> ChannelError {
    ChannelError::Unavailable {
        source: BoxError::from("the trigger's consumer was deleted"),
    }
}

/// Receives what an abandoned request still brings and returns it with `-NAK`.
async fn hand_back(mut messages: Subscriber, mut pull: Pull, acks: acks::Acks) {
    while pull.remaining > 0 {
        let Ok(Some(message)) = tokio::time::timeout_at(pull.quiet_until, messages.next()).await
        else {
            return;
        };
        pull.quiet_until = Instant::now() + SILENCE;
        match message.status {
            None => {
                if let Some(reply) = message.reply {
                    acks.send(Command::Nak(reply));
                }
                pull.remaining -= 1;
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {}
            Some(_) => {
                let id = message.subject.rsplit_once('.').map(|(_, id)| id);
                if id == Some(pull.id.to_string().as_str()) {
                    return;
                }
            }
        }
    }
}
