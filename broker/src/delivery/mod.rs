//! Delivery: sending one event to one sink with Knative's delivery semantics.
//!
//! A [`SinkService`] is built once per trigger (and once for its dead-letter sink) from the
//! DeliverySpec by [`sink_service`], as a tower stack composed in one function, `stack`:
//!
//! ```text
//! retry    DeliverySpec: retry cap, backoff, Retry-After          (policy.rs)
//! attempt  number, span, metrics; classify; store a 200's reply   (attempt.rs, reply.rs)
//! timeout  DeliverySpec `timeout`, per attempt                    (tower)
//! sink     POST with hyper (TLS for https): binary or structured, Prefer: reply (http.rs)
//! ```
//!
//! [`SinkService::deliver`] runs the whole retry loop and returns an [`Outcome`]. On a
//! failure the dispatcher builds the dead letter with [`dead_letter_event`] and delivers it
//! through the dead-letter sink's own `SinkService`.
//!
//! # Layout
//! Each module uses only those listed before it; this one composes them.
//! - `classify`: [`ResponseClass`], status codes to success / retry / fail; `Retry-After`.
//! - `backoff`: [`Backoff`], the wait before each retry.
//! - `tls`: TLS for `https://` sinks, with the system's root certificates.
//! - `error`: [`DeliveryError`], why an attempt failed; [`ReplyError`], why a reply was
//!   not stored.
//! - `outcome`: [`Outcome`] and [`Failure`], how a whole delivery ended.
//! - `dead_letter`: [`dead_letter_event`] and its error extensions.
//! - `http`: the encoded request, the response, the HTTP service, [`http_client`].
//! - `policy`: the `tower::retry::Policy` (retry cap, backoff, Retry-After).
//! - `reply`: judging a response; [`ReplySink`], where replies go.
//! - `attempt`: the per-attempt layer (span, metrics, judging the response).

mod attempt;
mod backoff;
mod classify;
mod dead_letter;
mod error;
mod http;
mod outcome;
mod policy;
mod reply;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::http::StatusCode;
use ::http::header::{HeaderName, HeaderValue};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;
use url::Url;
use weft_config::{DeliveryConfig, Event, EventFormat};

use self::attempt::AttemptLayer;
use self::http::{HttpSink, Outgoing, SinkResponse};
use self::policy::DeliveryPolicy;

pub use self::attempt::{ATTEMPT_DURATION, ATTEMPTS};
pub use self::backoff::Backoff;
pub use self::classify::ResponseClass;
pub use self::dead_letter::{ERROR_CODE, ERROR_DATA, ERROR_DEST, dead_letter_event};
pub use self::error::{DeliveryError, ReplyError};
pub use self::http::{DeliveryClient, http_client};
pub use self::outcome::{Failure, Outcome};
pub use self::reply::ReplySink;

/// The header naming the namespace of the trigger a delivery is for.
const KN_NAMESPACE: HeaderName = HeaderName::from_static("kn-namespace");

/// Delivers events to one sink with one DeliverySpec. Cheap to clone and shareable: every
/// [`deliver`](SinkService::deliver) call runs on its own clone of the stack.
#[derive(Clone)]
pub struct SinkService {
    /// The whole stack, boxed so that its type does not depend on the inner service.
    stack: BoxCloneSyncService<Arc<Outgoing>, StatusCode, DeliveryError>,
    /// The sink's URL, for dead letters.
    url: Arc<Url>,
    /// The sink's URL without credentials, for spans and `Debug`.
    shown_url: Arc<str>,
    /// Binary or structured mode.
    format: EventFormat,
    /// The `Kn-Namespace` header: the namespace of the trigger the delivery is for.
    namespace: Option<HeaderValue>,
}

impl fmt::Debug for SinkService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkService")
            .field("url", &&*self.shown_url)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl SinkService {
    /// Delivers `event`, retrying as the DeliverySpec allows, and returns how it ended.
    /// The event goes out without `knativebrokerttl`; the reply sink sees it whole. Pass
    /// an `Arc` to keep the event (e.g. for a dead letter) without copying it.
    pub async fn deliver(&self, event: impl Into<Arc<Event>>) -> Outcome {
        let event = event.into();
        let span = tracing::debug_span!("deliver", event = event.id(), url = %self.shown_url);
        let mut outgoing = Outgoing::encode(event, self.format);
        if let Some(namespace) = &self.namespace {
            outgoing.headers.insert(KN_NAMESPACE, namespace.clone());
        }
        let outgoing = Arc::new(outgoing);
        let result = self
            .stack
            .clone()
            .oneshot(outgoing.clone())
            .instrument(span)
            .await;
        match result {
            Ok(status) => Outcome::Delivered {
                status: status.as_u16(),
                attempts: outgoing.attempts(),
            },
            Err(error) => Outcome::Failed(Failure::new(&error, outgoing.attempts())),
        }
    }

    /// The sink's URL: the `failed_target` of a dead letter.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends `Kn-Namespace: <namespace>` with every delivery, as Knative's broker does
    /// for the namespace of the trigger.
    pub fn for_namespace(mut self, namespace: &str) -> Self {
        // A Kubernetes namespace is a DNS label, always a valid header value.
        self.namespace = HeaderValue::from_str(namespace).ok();
        self
    }
}

/// Builds the delivery service for the sink at `url` from a DeliverySpec. Replies of 200
/// responses go to `replies`; with `None` (a dead-letter sink) response bodies are ignored.
pub fn sink_service(
    client: DeliveryClient,
    url: Url,
    config: &DeliveryConfig,
    replies: Option<Arc<dyn ReplySink>>,
) -> SinkService {
    let url = Arc::new(url);
    stack(HttpSink::new(client, &url), url, config, replies)
}

/// Composes the delivery stack over `sink`, the service that performs one HTTP exchange.
/// [`sink_service`] passes the HTTP sink; tests pass a scripted one.
pub(crate) fn stack<S>(
    sink: S,
    url: Arc<Url>,
    config: &DeliveryConfig,
    replies: Option<Arc<dyn ReplySink>>,
) -> SinkService
where
    S: Service<Arc<Outgoing>, Response = SinkResponse, Error = DeliveryError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let limit: Option<Duration> = config.timeout;
    let service = ServiceBuilder::new()
        // Retry: up to `retry` more attempts after a retriable failure, each after the
        // backoff (or a 429/503's Retry-After, up to `retryAfterMax`). Outermost, so every
        // layer below runs once per attempt.
        .retry(DeliveryPolicy::new(config))
        // Attempt: numbers and traces the attempt, classifies the response, stores a 200's
        // reply (a failure to store fails the attempt) and records the attempt's metrics.
        .layer(AttemptLayer::new(replies))
        // The timeout layer boxes errors: give them their type back (`Elapsed` becomes
        // `DeliveryError::Timeout`).
        .map_err(move |error: BoxError| DeliveryError::from_timeout_layer(error, limit))
        // Timeout: the DeliverySpec's `timeout` bounds each attempt, response body
        // included, not the whole retry loop. Without one, attempts are unbounded.
        .option_layer(limit.map(tower::timeout::TimeoutLayer::new))
        // Box the sink's errors so that both arms of the optional timeout agree on one type.
        .map_err(|error: DeliveryError| -> BoxError { Box::new(error) })
        // The sink: one POST and its response.
        .service(sink);
    SinkService {
        stack: BoxCloneSyncService::new(service),
        shown_url: weft_config::redact::redact(url.as_str()).into(),
        url,
        format: config.format,
        namespace: None,
    }
}

#[cfg(test)]
mod tests;
