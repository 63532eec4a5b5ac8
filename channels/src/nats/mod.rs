//! The NATS JetStream channel: a stream per broker, a durable pull consumer per trigger.
//!
//! # URL
//! `nats://HOST:PORT` (several servers comma-separated, `user:password@` allowed), with
//! optional query parameters:
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `prefix` | `weft` | starts every stream name and subject (`[A-Za-z0-9_-]`, ≤ 32) |
//! | `ack_wait` | `30s` | how soon an unacknowledged event goes to another replica if this one stops reporting progress |
//! | `max_ack_pending` | `1024` | a trigger's in-flight limit on the server, across replicas |
//! | `replicas` | `1` | stream replicas in a JetStream cluster |
//! | `timeout` | `5s` | how long a publish acknowledgement or API request may take |
//! | `max_age` | `0` (none) | how long a stream keeps an event whatever its triggers did; set it on servers before 2.9.16 |
//!
//! # Mapping (see `names` for the escaping of key parts)
//! - **Broker** → stream `<prefix>_<ns>_<name>` on subject `<prefix>.<ns>.<name>`, file
//!   storage, *interest* retention: a message is removed once every consumer acknowledged
//!   it, and one published while the broker has no trigger is not kept (Knative: with no
//!   triggers, events are not kept; a new trigger starts at the end). On servers before
//!   2.9.16, where interest retention loses acknowledged messages when the server shuts
//!   down, *limits* retention instead: events stay until `max_age` (see `retention`).
//! - **Trigger** → durable pull consumer `<ns>_<name>`: explicit acks, `DeliverPolicy::New`
//!   (evaluated when the consumer is created, so a new trigger starts at the end of the
//!   log), unlimited deliveries (Weft's dispatcher does its own retries and dead-lettering;
//!   the channel only delivers again what was never acknowledged), `ack_wait` and
//!   `max_ack_pending` from the URL.
//! - **Event** → one message in the CloudEvents NATS binding's binary mode (`binding`):
//!   `ce-*` headers, the data as payload.
//! - **Parked events** → stream `<prefix>_parked` (limits retention: kept until an operator
//!   removes them), subject `<prefix>._parked.<ns>.<broker>`, the event as above plus
//!   `weft-trigger` and `weft-reason` headers; the server's timestamp is `parked_at`.
//!
//! # Guarantees
//! - **Durability**: `append` returns once JetStream acknowledged every event (its
//!   `PubAck`), i.e. the events are in the stream's store (written to disk, synced as the
//!   server's `sync_interval` says; replicated when `replicas` > 1). An append sends all its
//!   events, then awaits all acknowledgements: concurrent appends share the connection and
//!   the server's writes, which is NATS's own group commit. If some acknowledgements fail
//!   the append fails, though some of its events may be stored; the producer's retry then
//!   stores them twice (at-least-once, never loss).
//! - **Ordering**: one append's events are sent back to back (appends from this process
//!   never interleave) and the stream numbers them in that order. A consumer hands events
//!   out in stream order; an event delivered again (after a `-NAK` or `ack_wait`) comes
//!   before newer ones but after those already handed out.
//! - **At-least-once, per event**: JetStream keeps an acknowledgement per event, not a
//!   cursor. An event is done when its [`AckHandle`](crate::AckHandle) acknowledges it
//!   (`+ACK`, confirmed by the server); out-of-order acknowledgements are kept as they are,
//!   so after a restart only the events never acknowledged are delivered again, and only
//!   those count in [`Channel::backlog`] (`num_pending + num_ack_pending`).
//! - **Redelivery** is the same message again (same `id`), with a higher delivery count
//!   in its JetStream metadata. It happens when an ack handle is dropped unacknowledged or a
//!   subscription is dropped with events it received but did not hand out (`-NAK`: at
//!   once), or when a process dies (after `ack_wait`). While a process works on an event
//!   (long retries included) it reports progress (`+WPI`) so that it is not redelivered
//!   under its feet.
//! - **Replicas** share a trigger through its durable consumer: each pull gets events no
//!   other pull got, so two processes (or two subscriptions) of one trigger split its
//!   events without doubling them; the events a dead process held go to the others after
//!   `ack_wait`. `max_ack_pending` bounds what all of them hold together.
//! - **Server down**: every operation fails within `timeout` with a retriable error
//!   ([`ChannelError::Append`] or [`ChannelError::Unavailable`], so the ingress answers
//!   503, never 202); the client reconnects by itself and pulls resume.
//! - **Not CloudEvents**: a message on a broker's subject that does not decode (published
//!   there by something else) is terminated (`+TERM`) and logged as an error, not handed
//!   out.
//!
//! # Layout
//! - [`NatsChannel`]: the [`Channel`] implementation.
//! - `config`: the URL. `names`: streams, subjects, consumers. `binding`: events as
//!   messages (headers from the shared `weft_config::event::headers`). `api`: JetStream management requests. `subscription`: pulling.
//!   `acks`: acknowledging, progress reports.

mod acks;
mod api;
mod binding;
mod config;
mod names;
mod retention;
mod subscription;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::context::{Publish, PublishErrorKind};
use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use async_trait::async_trait;
use futures::StreamExt;
use weft_config::{Event, ObjectKey};

use self::acks::Acks;
use self::api::{Api, Lookup, unavailable};
use self::config::Config;
use self::names::Names;
use self::subscription::NatsSubscription;
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription, telemetry};

const BACKEND: &str = "nats";
const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
const TRIGGER: &str = "weft-trigger";
const REASON: &str = "weft-reason";

/// A channel on a NATS JetStream server. See the [module documentation](self).
pub struct NatsChannel {
    shared: Arc<Shared>,
}

/// What the channel and its subscriptions share.
pub(super) struct Shared {
    config: Config,
    names: Names,
    client: Client,
    api: Api,
    acks: Acks,
    closed: AtomicBool,
    /// Held while an append sends its messages, so that one append's events are
    /// contiguous in the stream; not held while awaiting the acknowledgements.
    sending: tokio::sync::Mutex<()>,
    /// The parked-events stream is known to exist.
    parked_ready: AtomicBool,
    /// The retention of the broker streams this channel creates (`retention`).
    retention: stream::RetentionPolicy,
}

impl Shared {
    fn check_open(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ChannelError::Closed)
        } else {
            Ok(())
        }
    }

    /// `Ok` if the broker has a stream.
    async fn require_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        match self.api.stream_info(&self.names.stream(broker)).await? {
            Some(_) => Ok(()),
            None => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
        }
    }

    /// Publishes messages back to back, then awaits every acknowledgement.
    async fn publish(
        &self,
        subject: &str,
        stream: &str,
        messages: impl Iterator<Item = (HeaderMap, bytes::Bytes)>,
    ) -> Result<usize, async_nats::jetstream::context::PublishError> {
        let mut pending = Vec::new();
        {
            let _sending = self.sending.lock().await;
            for (mut headers, payload) in messages {
                headers.insert(EXPECTED_STREAM, stream);
                let publish = Publish::build().headers(headers).payload(payload);
                pending.push(
                    self.api
                        .js
                        .send_publish(subject.to_owned(), publish)
                        .await?,
                );
            }
        }
        let count = pending.len();
        for ack in pending {
            ack.await?;
        }
        Ok(count)
    }

    /// Classifies a failed publish: no stream for the subject means no log.
    async fn publish_failed(
        &self,
        broker: &ObjectKey,
        error: async_nats::jetstream::context::PublishError,
    ) -> ChannelError {
        if error.kind() == PublishErrorKind::StreamNotFound
            && let Err(e @ ChannelError::UnknownLog { .. }) = self.require_log(broker).await
        {
            return e;
        }
        ChannelError::Append {
            broker: broker.clone(),
            source: Box::new(error),
        }
    }
}

impl NatsChannel {
    /// Connects to the server a `nats://` URL names and checks that JetStream is enabled.
    /// Must be called within a Tokio runtime. `options` are not used: NATS batches on its
    /// own.
    pub async fn open(url: &str, options: ChannelOptions) -> Result<Self, ChannelError> {
        let _ = options;
        let config = Config::parse(url)?;
        let failed = |source: crate::error::BoxError| ChannelError::open(url, source);
        let client = ConnectOptions::new()
            .name("weft")
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            // Reconnect quickly: at most a second between attempts, forever.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100 * attempts.min(10) as u64)
            })
            .connect(config.servers.as_str())
            .await
            .map_err(|e| failed(e.into()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.timeout);
        let api = Api { js };
        api.check_account().await.map_err(|e| failed(e.into()))?;
        let version = client.server_info().version;
        let retention = retention::policy(&version);
        if retention == stream::RetentionPolicy::Interest {
            tracing::info!(servers = %config.shown_servers(), prefix = %config.prefix, %version, "nats channel opened");
        } else {
            tracing::warn!(servers = %config.shown_servers(), prefix = %config.prefix, %version, max_age = ?config.max_age, "nats channel opened; this server version loses events with interest retention (fixed in 2.9.16), so new broker streams keep every event until max_age");
        }
        let shared = Arc::new(Shared {
            names: Names::new(&config.prefix),
            acks: Acks::start(client.clone()),
            api,
            client,
            config,
            closed: AtomicBool::new(false),
            sending: tokio::sync::Mutex::new(()),
            parked_ready: AtomicBool::new(false),
            retention,
        });
        Ok(NatsChannel { shared })
    }

    /// How many events the broker's stream still stores (retention removes the rest).
    pub async fn stored_events(&self, broker: &ObjectKey) -> Result<u64, ChannelError> {
        let stream = self.shared.names.stream(broker);
        match self.shared.api.stream_info(&stream).await? {
            Some(info) => Ok(info.state.messages),
            None => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
        }
    }

    /// Waits until every acknowledgement made so far took effect on the server.
    pub async fn flush(&self) {
        self.shared.acks.flush().await;
    }

    /// Whether the broker streams this channel creates remove the events every trigger
    /// has acknowledged. They do not on servers before 2.9.16 (see the module
    /// documentation): there, events stay until the URL's `max_age`.
    pub fn deletes_consumed_events(&self) -> bool {
        self.shared.retention == stream::RetentionPolicy::Interest
    }

    /// Creates the parked-events stream unless it is known to exist.
    async fn ensure_parked(&self) -> Result<(), ChannelError> {
        if self.shared.parked_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let names = &self.shared.names;
        self.shared
            .api
            .create_stream(&stream::Config {
                name: names.parked_stream(),
                subjects: vec![names.parked_subjects()],
                description: Some("events Weft could neither deliver nor dead-letter".into()),
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: self.shared.config.replicas,
                ..Default::default()
            })
            .await?;
        self.shared.parked_ready.store(true, Ordering::Release);
        Ok(())
    }

    fn parked_event(
        &self,
        broker: &ObjectKey,
        message: jetstream::Message,
    ) -> Result<ParkedEvent, ChannelError> {
        let info = message
            .info()
            .map_err(|source| ChannelError::Unavailable { source })?;
        let (seq, parked_at) = (info.stream_sequence, SystemTime::from(info.published));
        let corrupt = |source| ChannelError::Corrupt {
            broker: broker.clone(),
            seq,
            source,
        };
        let headers = message.headers.as_ref();
        let header = |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let trigger = header(TRIGGER).and_then(names::parse_key).ok_or_else(|| {
            corrupt(weft_config::EventError::Corrupt {
                reason: "parked event without a valid weft-trigger header",
            })
        })?;
        let reason =
            binding::percent_decode(REASON, header(REASON).unwrap_or_default()).map_err(corrupt)?;
        let event =
            binding::decode(message.headers.as_ref(), message.payload.clone()).map_err(corrupt)?;
        Ok(ParkedEvent {
            trigger,
            reason,
            parked_at,
            event,
        })
    }

    /// Creates the trigger's durable consumer if it does not exist (delivering what is
    /// published from now on); returns the stream's and the consumer's names.
    async fn consumer(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(String, String), ChannelError> {
        self.shared.check_open()?;
        let (names, config) = (&self.shared.names, &self.shared.config);
        let (stream, name) = (names.stream(broker), names.consumer(trigger));
        let consumer = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(Names::description(trigger)),
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: -1,
            max_ack_pending: config.max_ack_pending,
            ..Default::default()
        };
        match self.shared.api.create_consumer(&stream, &consumer).await? {
            Lookup::Found(()) | Lookup::NoConsumer => Ok((stream, name)),
            Lookup::NoStream => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
        }
    }
}

impl std::fmt::Debug for NatsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsChannel")
            .field("servers", &self.shared.config.servers)
            .field("prefix", &self.shared.config.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Channel for NatsChannel {
    async fn ensure_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let (names, config) = (&self.shared.names, &self.shared.config);
        self.shared
            .api
            .create_stream(&stream::Config {
                name: names.stream(broker),
                subjects: vec![names.subject(broker)],
                description: Some(Names::description(broker)),
                retention: self.shared.retention,
                max_age: config.max_age,
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
    }

    async fn delete_log(&self, broker: &ObjectKey) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let stream = self.shared.names.stream(broker);
        if self.shared.api.delete_stream(&stream).await? {
            tracing::info!(%broker, %stream, "broker stream deleted");
        }
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let streams = self.shared.api.streams().await?;
        let mut logs: Vec<_> = streams
            .iter()
            .filter_map(|s| {
                let config = &s.config;
                self.shared
                    .names
                    .broker_of(&config.name, config.description.as_deref())
            })
            .collect();
        logs.sort();
        Ok(logs)
    }

    async fn append(&self, broker: &ObjectKey, events: Vec<Event>) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        if events.is_empty() {
            return self.shared.require_log(broker).await;
        }
        let (names, shared) = (&self.shared.names, &self.shared);
        let (subject, stream) = (names.subject(broker), names.stream(broker));
        let messages = events.iter().map(binding::encode);
        match shared.publish(&subject, &stream, messages).await {
            Ok(count) => {
                telemetry::appended(BACKEND, count);
                Ok(())
            }
            Err(error) => {
                let error = shared.publish_failed(broker, error).await;
                telemetry::append_failed(BACKEND, &error);
                Err(error)
            }
        }
    }

    async fn subscribe(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<Box<dyn Subscription>, ChannelError> {
        let (stream, name) = self.consumer(broker, trigger).await?;
        let subscription =
            NatsSubscription::open(self.shared.clone(), broker.clone(), stream, name).await?;
        Ok(Box::new(subscription))
    }

    async fn ensure_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.consumer(broker, trigger).await.map(drop)
    }

    async fn delete_subscription(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        let names = &self.shared.names;
        self.shared
            .api
            .delete_consumer(&names.stream(broker), &names.consumer(trigger))
            .await
    }

    async fn subscriptions(&self, broker: &ObjectKey) -> Result<Vec<ObjectKey>, ChannelError> {
        self.shared.check_open()?;
        let names = &self.shared.names;
        let Some(consumers) = self.shared.api.consumers(&names.stream(broker)).await? else {
            return Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            });
        };
        let mut triggers: Vec<_> = consumers
            .iter()
            .filter_map(|c| names.trigger_of(&c.name, c.config.description.as_deref()))
            .collect();
        triggers.sort();
        Ok(triggers)
    }

    async fn backlog(&self, broker: &ObjectKey, trigger: &ObjectKey) -> Result<u64, ChannelError> {
        self.shared.check_open()?;
        // Acknowledgements made before this call count.
        self.shared.acks.flush().await;
        let names = &self.shared.names;
        match (self.shared.api)
            .consumer_info(&names.stream(broker), &names.consumer(trigger))
            .await?
        {
            Lookup::Found(info) => Ok(info.num_pending + info.num_ack_pending as u64),
            Lookup::NoConsumer => Ok(0),
            Lookup::NoStream => Err(ChannelError::UnknownLog {
                broker: broker.clone(),
            }),
        }
    }

    async fn park(
        &self,
        broker: &ObjectKey,
        trigger: &ObjectKey,
        event: &Event,
        reason: &str,
    ) -> Result<(), ChannelError> {
        self.shared.check_open()?;
        self.ensure_parked().await?;
        let names = &self.shared.names;
        let (mut headers, payload) = binding::encode(event);
        headers.insert(TRIGGER, Names::description(trigger));
        headers.insert(REASON, binding::percent_encode(reason));
        let (subject, stream) = (names.parked_subject(broker), names.parked_stream());
        match (self.shared)
            .publish(&subject, &stream, std::iter::once((headers, payload)))
            .await
        {
            Ok(_) => {
                telemetry::parked(BACKEND);
                Ok(())
            }
            Err(error) => {
                // The stream may have been removed by an operator: create it next time.
                self.shared.parked_ready.store(false, Ordering::Release);
                Err(unavailable(error))
            }
        }
    }

    async fn parked(&self, broker: &ObjectKey) -> Result<Vec<ParkedEvent>, ChannelError> {
        self.shared.check_open()?;
        let names = &self.shared.names;
        let stream = names.parked_stream();
        if self.shared.api.stream_info(&stream).await?.is_none() {
            return Ok(Vec::new());
        }
        // An ephemeral consumer reading the broker's subject once, from the start.
        let reader: consumer::PullConsumer = (self.shared.api.js)
            .create_consumer_on_stream(
                consumer::pull::Config {
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::None,
                    filter_subject: names.parked_subject(broker),
                    inactive_threshold: Duration::from_secs(60),
                    ..Default::default()
                },
                &stream,
            )
            .await
            .map_err(unavailable)?;
        let mut parked = Vec::new();
        let result = async {
            loop {
                let mut batch = (reader.fetch().max_messages(256).messages())
                    .await
                    .map_err(unavailable)?;
                let before = parked.len();
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|source| ChannelError::Unavailable { source })?;
                    parked.push(self.parked_event(broker, message)?);
                }
                if parked.len() == before {
                    return Ok(());
                }
            }
        }
        .await;
        let name = reader.cached_info().name.clone();
        if let Err(error) = self.shared.api.delete_consumer(&stream, &name).await {
            tracing::debug!(%error, "could not delete the parked-events reader; it expires by itself");
        }
        result.map(|()| parked)
    }

    async fn close(&self) -> Result<(), ChannelError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.acks.flush().await;
        // Ends live subscriptions: their inboxes close, and `next` reports `Closed`.
        let _ = self.shared.client.drain().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test server (`WEFT_NATS_URL`), under a prefix of this test's own.
    fn url(test: &str) -> Option<String> {
        match std::env::var("WEFT_NATS_URL") {
            Ok(url) if !url.is_empty() => {
                Some(format!("{url}?prefix=U{}{test}", std::process::id()))
            }
            _ if std::env::var("WEFT_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") => {
                panic!("WEFT_REQUIRE_BACKENDS=1 but WEFT_NATS_URL is not set")
            }
            _ => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_is_not_a_cloudevent_is_terminated_not_handed_out() {
        let Some(url) = url("garbage") else {
            return;
        };
        let ch = NatsChannel::open(&url, ChannelOptions::default())
            .await
            .unwrap();
        let (broker, trigger) = (
            ObjectKey::new("default", "b"),
            ObjectKey::new("default", "t"),
        );
        ch.ensure_log(&broker).await.unwrap();
        let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
        let subject = ch.shared.names.subject(&broker);
        (ch.shared.api.js)
            .publish(subject, "not an event".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let event = Event::new("good", "/s", "t").unwrap();
        ch.append(&broker, vec![event.clone()]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event, event);
        got.into_iter().for_each(|d| d.ack.ack());
        assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
        ch.delete_log(&broker).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_fails_to_open() {
        let error = NatsChannel::open("nats://127.0.0.1:1?timeout=1s", ChannelOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ChannelError::Open { .. }), "{error}");
    }
}
