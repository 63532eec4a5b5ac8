//! [`NatsChannel`]: opening, status queries, parked events, and its [`Channel`]
//! implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use weft_config::{Event, ObjectKey};

use super::acks::Acks;
use super::api::{Api, Lookup, unavailable};
use super::config::Config;
use super::names::Names;
use super::shared::Shared;
use super::subscription::NatsSubscription;
use super::{binding, names, retention};
use crate::{Channel, ChannelError, ChannelOptions, ParkedEvent, Subscription, telemetry};

const BACKEND: &str = "nats";
const TRIGGER: &str = "weft-trigger";
const REASON: &str = "weft-reason";

/// A channel on a NATS JetStream server. See the [module documentation](super).
pub struct NatsChannel {
    shared: Arc<Shared>,
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
