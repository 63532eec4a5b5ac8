//! The wire: the message sent on every attempt, the response read back, and the innermost
//! service of the stack that POSTs one to the sink with reqwest.
//!
//! An event is encoded once per delivery into an [`Outgoing`] (headers and a [`Bytes`]
//! body) that every attempt shares; an attempt clones the header map and bumps the body's
//! reference count, which is all reqwest needs to own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tower::Service;
use url::Url;
use weft_config::event::http::{STRUCTURED_JSON, encode_binary, encode_structured};
use weft_config::{Event, EventFormat};

use super::error::DeliveryError;
use crate::ingress::admit::TTL_EXTENSION;

/// The most bytes read from a response body: enough for any reply the ingress would take,
/// and a bound on what a misbehaving sink can make Weft buffer.
pub(crate) const MAX_RESPONSE_BODY: usize = 1 << 20;

/// `knativebrokerttl` as a binary-mode header: the hop count stays inside the broker.
const TTL_HEADER: &str = "ce-knativebrokerttl";

/// `Prefer: reply`, which brokers must send to subscribers.
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// One event, encoded for its sink, shared by all attempts of one delivery.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The event as stored, `knativebrokerttl` included: the reply sink derives the
    /// reply's hop count from it.
    pub(crate) event: Arc<Event>,
    /// The request headers: the event's attributes (binary mode) or the structured
    /// content type, and `Prefer: reply`.
    pub(crate) headers: HeaderMap,
    /// The request body.
    pub(crate) body: Bytes,
    /// Attempts started so far; counted here so the outcome can report them.
    attempts: AtomicU32,
}

impl Outgoing {
    /// Encodes an event in the DeliverySpec's format, without `knativebrokerttl`.
    pub(crate) fn encode(event: impl Into<Arc<Event>>, format: EventFormat) -> Self {
        let event = event.into();
        let mut headers = HeaderMap::new();
        let body = match format {
            EventFormat::Binary => {
                let body = encode_binary(&event, &mut headers);
                headers.remove(TTL_HEADER);
                body
            }
            EventFormat::Json => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(STRUCTURED_JSON));
                if event.extension(TTL_EXTENSION).is_some() {
                    let mut outgoing = Event::clone(&event);
                    outgoing.remove_extension(TTL_EXTENSION);
                    encode_structured(&outgoing)
                } else {
                    encode_structured(&event)
                }
            }
        };
        headers.insert(PREFER, HeaderValue::from_static("reply"));
        Outgoing {
            event,
            headers,
            body,
            attempts: AtomicU32::new(0),
        }
    }

    /// Counts the start of an attempt and returns its number (the first is 1).
    pub(crate) fn start_attempt(&self) -> u32 {
        // Attempts of one delivery run one after another, so load-then-store is enough;
        // saturating keeps an absurd retry count from wrapping to zero.
        let n = self.attempts.load(Ordering::Relaxed).saturating_add(1);
        self.attempts.store(n, Ordering::Relaxed);
        n
    }

    /// The attempts started so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

/// What a sink answered to one attempt, before it is judged.
#[derive(Debug)]
pub(crate) struct SinkResponse {
    /// The response status.
    pub(crate) status: StatusCode,
    /// The response headers (a reply's attributes, `Retry-After`).
    pub(crate) headers: HeaderMap,
    /// The body, at most [`MAX_RESPONSE_BODY`] bytes of it.
    pub(crate) body: Bytes,
    /// Whether the body was longer and cut.
    pub(crate) truncated: bool,
}

/// The innermost service: POSTs an [`Outgoing`] to one URL and reads the response.
#[derive(Clone, Debug)]
pub(crate) struct HttpSink {
    client: reqwest::Client,
    url: Arc<Url>,
}

impl HttpSink {
    /// A sink at `url`, reached with `client`.
    pub(crate) fn new(client: reqwest::Client, url: Arc<Url>) -> Self {
        HttpSink { client, url }
    }
}

impl Service<Arc<Outgoing>> for HttpSink {
    type Response = SinkResponse;
    type Error = DeliveryError;
    type Future = Pin<Box<dyn Future<Output = Result<SinkResponse, DeliveryError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DeliveryError>> {
        // reqwest's pool queues requests itself; the dispatcher bounds what is in flight.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, outgoing: Arc<Outgoing>) -> Self::Future {
        let mut request = reqwest::Request::new(Method::POST, Url::clone(&self.url));
        *request.headers_mut() = outgoing.headers.clone();
        *request.body_mut() = Some(outgoing.body.clone().into());
        let sent = self.client.execute(request);
        Box::pin(async move {
            let transport = |source| DeliveryError::Transport { source };
            let mut response = sent.await.map_err(transport)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let (body, truncated) = read_body(&mut response, MAX_RESPONSE_BODY)
                .await
                .map_err(transport)?;
            Ok(SinkResponse {
                status,
                headers,
                body,
                truncated,
            })
        })
    }
}

/// Reads at most `limit` bytes of a body; says whether there was more. A body that
/// arrives in one chunk (the usual case) is kept without copying.
async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Bytes, bool), reqwest::Error> {
    let Some(mut first) = response.chunk().await? else {
        return Ok((Bytes::new(), false));
    };
    if first.len() > limit {
        first.truncate(limit);
        return Ok((first, true));
    }
    let Some(mut next) = response.chunk().await? else {
        return Ok((first, false));
    };
    let mut body = BytesMut::with_capacity(first.len() + next.len());
    body.extend_from_slice(&first);
    loop {
        let room = limit - body.len();
        if next.len() > room {
            body.extend_from_slice(&next[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&next);
        match response.chunk().await? {
            Some(chunk) => next = chunk,
            None => return Ok((body.freeze(), false)),
        }
    }
}

/// The HTTP client for deliveries: redirects are never followed (a 3xx is a failure),
/// connections are pooled per sink, and there is no overall timeout (the DeliverySpec's
/// `timeout` bounds each attempt in the stack). Connecting alone is bounded, so a
/// black-holed sink without a `timeout` still fails in seconds rather than minutes.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // Idle connections kept per sink: enough for a busy trigger's in-flight deliveries.
        .pool_max_idle_per_host(512)
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        // Building fails only when a TLS backend or the system resolver configuration
        // cannot be loaded; this client has no TLS and uses the default resolver.
        .expect("the delivery HTTP client builds")
}

#[cfg(test)]
mod tests {
    use weft_config::AttributeValue;

    use super::*;

    fn event() -> Event {
        let mut e = Event::new("1", "/src", "com.example").unwrap();
        e.set_extension(TTL_EXTENSION, AttributeValue::String("254".into()))
            .unwrap();
        e.set_extension("other", AttributeValue::String("x".into()))
            .unwrap();
        e.set_data(Some(Bytes::from_static(b"{\"a\":1}")));
        e.set_datacontenttype(Some("application/json".into()))
            .unwrap();
        e
    }

    #[test]
    fn ttl_header_is_the_ttl_extension() {
        assert_eq!(TTL_HEADER, format!("ce-{TTL_EXTENSION}"));
    }

    #[test]
    fn binary_mode_strips_the_ttl_and_asks_for_replies() {
        let out = Outgoing::encode(event(), EventFormat::Binary);
        assert!(out.headers.get(TTL_HEADER).is_none());
        assert_eq!(out.headers["ce-other"], "x");
        assert_eq!(out.headers["ce-id"], "1");
        assert_eq!(out.headers["prefer"], "reply");
        assert_eq!(out.headers[CONTENT_TYPE], "application/json");
        assert_eq!(out.body.as_ref(), b"{\"a\":1}");
        // The stored event keeps its hop count for the reply sink.
        assert!(out.event.extension(TTL_EXTENSION).is_some());
    }

    #[test]
    fn json_mode_is_structured_without_the_ttl() {
        let out = Outgoing::encode(event(), EventFormat::Json);
        assert_eq!(out.headers[CONTENT_TYPE], STRUCTURED_JSON);
        assert_eq!(out.headers["prefer"], "reply");
        assert!(out.headers.get("ce-id").is_none());
        let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(json["id"], "1");
        assert_eq!(json["other"], "x");
        assert!(json.get(TTL_EXTENSION).is_none());
        assert!(out.event.extension(TTL_EXTENSION).is_some());
    }

    #[test]
    fn attempts_are_counted_from_one() {
        let out = Outgoing::encode(event(), EventFormat::Binary);
        assert_eq!(out.attempts(), 0);
        assert_eq!(out.start_attempt(), 1);
        assert_eq!(out.start_attempt(), 2);
        assert_eq!(out.attempts(), 2);
    }
}
