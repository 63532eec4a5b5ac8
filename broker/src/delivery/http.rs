//! The wire: the message sent on every attempt, the response read back, and the innermost
//! service of the stack that POSTs one to the sink with hyper's pooled client, over TLS for
//! an `https://` sink (see `tls`).
//!
//! An event is encoded once per delivery into an [`Outgoing`] (headers and a [`Bytes`]
//! body) that every attempt shares; an attempt clones the header map and bumps the body's
//! reference count, which is all the request needs to own. The sink's URL is converted to
//! a request URI once, when the sink is built.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;
use url::Url;
use weft_config::event::extensions::{TRACEPARENT, TRACESTATE, TTL_EXTENSION};
use weft_config::event::http::{STRUCTURED_JSON, encode_binary, encode_structured};
use weft_config::{Event, EventFormat};

use super::error::DeliveryError;

/// The most bytes read from a response body: enough for any reply the ingress would take,
/// and a bound on what a misbehaving sink can make Weft buffer.
pub(crate) const MAX_RESPONSE_BODY: usize = 1 << 20;

/// `knativebrokerttl` as a binary-mode header: the hop count stays inside the broker.
const TTL_HEADER: &str = "ce-knativebrokerttl";

/// The W3C Trace Context headers.
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);

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
        // The event's trace context (the ingress keeps the request's with the event) as W3C
        // Trace Context headers, which is where the sink's tracing looks for its parent.
        for (extension, header) in [
            (TRACEPARENT, TRACEPARENT_HEADER),
            (TRACESTATE, TRACESTATE_HEADER),
        ] {
            if let Some(value) = event
                .extension(extension)
                .and_then(|v| HeaderValue::from_str(&v.as_str()).ok())
            {
                headers.insert(header, value);
            }
        }
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

/// The HTTP client deliveries share: pooled HTTP/1.1 connections per sink, plain or TLS.
pub type DeliveryClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The innermost service: POSTs an [`Outgoing`] to one URL and reads the response.
#[derive(Clone, Debug)]
pub(crate) struct HttpSink {
    client: DeliveryClient,
    uri: Uri,
}

impl HttpSink {
    /// A sink at `url`, reached with `client`.
    pub(crate) fn new(client: DeliveryClient, url: &Url) -> Self {
        // A `Url` is always a valid URI: the parse cannot fail for the http(s) URLs that
        // manifests accept.
        let uri = url.as_str().parse().expect("a URL is a valid URI");
        HttpSink { client, uri }
    }
}

impl Service<Arc<Outgoing>> for HttpSink {
    type Response = SinkResponse;
    type Error = DeliveryError;
    type Future = Pin<Box<dyn Future<Output = Result<SinkResponse, DeliveryError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DeliveryError>> {
        // The client's pool queues requests itself; the dispatcher bounds what is in flight.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, outgoing: Arc<Outgoing>) -> Self::Future {
        let mut request = Request::new(Full::new(outgoing.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = outgoing.headers.clone();
        let sent = self.client.request(request);
        Box::pin(async move {
            let response = sent
                .await
                .map_err(|e| DeliveryError::Transport { source: e.into() })?;
            let (parts, body) = response.into_parts();
            let (body, truncated) = read_body(body, MAX_RESPONSE_BODY)
                .await
                .map_err(|e| DeliveryError::Transport { source: e.into() })?;
            Ok(SinkResponse {
                status: parts.status,
                headers: parts.headers,
                body,
                truncated,
            })
        })
    }
}

/// Reads at most `limit` bytes of a body; says whether there was more. A body that
/// arrives in one chunk (the usual case) is kept without copying.
async fn read_body<B>(mut body: B, limit: usize) -> Result<(Bytes, bool), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut single = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers
        };
        let len = joined.as_ref().map_or(single.len(), BytesMut::len);
        let truncated = data.len() > limit - len;
        if truncated {
            data.truncate(limit - len);
        }
        match joined.as_mut() {
            None if single.is_empty() => single = data,
            None => {
                let mut all = BytesMut::with_capacity(single.len() + data.len());
                all.extend_from_slice(&single);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
            Some(all) => all.extend_from_slice(&data),
        }
        if truncated {
            return Ok((joined.map_or(single, BytesMut::freeze), true));
        }
    }
    Ok((joined.map_or(single, BytesMut::freeze), false))
}

/// The HTTP client for deliveries: redirects are never followed (a 3xx is a failure; the
/// client has no redirect support at all), connections are pooled per sink, and there is
/// no overall timeout (the DeliverySpec's `timeout` bounds each attempt in the stack).
/// Connecting alone is bounded, so a black-holed sink without a `timeout` still fails in
/// seconds rather than minutes. `https://` sinks are reached over TLS, their certificate
/// checked against the system's roots.
pub fn http_client() -> DeliveryClient {
    let mut tcp = HttpConnector::new();
    // The TLS connector below takes both schemes; this one only opens the TCP connection.
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(Duration::from_secs(10)));
    tcp.set_nodelay(true);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(super::tls::client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        // Idle connections kept per sink: enough for a busy trigger's in-flight deliveries.
        .pool_max_idle_per_host(512)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use weft_e2e::event;
    use weft_e2e::producer::EventBuilder;

    use super::*;

    /// An event with a hop count, another extension and JSON data.
    fn sample() -> EventBuilder {
        event("com.example")
            .id("1")
            .source("/src")
            .ext(TTL_EXTENSION, "254")
            .ext("other", "x")
            .json(r#"{"a":1}"#)
    }

    #[test]
    fn ttl_header_is_the_ttl_extension() {
        assert_eq!(TTL_HEADER, format!("ce-{TTL_EXTENSION}"));
    }

    #[test]
    fn binary_mode_strips_the_ttl_and_asks_for_replies() {
        let out = Outgoing::encode(sample().build(), EventFormat::Binary);
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
        let out = Outgoing::encode(sample().build(), EventFormat::Json);
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
    fn the_trace_context_goes_out_as_w3c_headers_in_both_modes() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for format in [EventFormat::Binary, EventFormat::Json] {
            assert!(
                Outgoing::encode(sample().build(), format)
                    .headers
                    .get(TRACEPARENT)
                    .is_none()
            );
            let e = sample()
                .ext(TRACEPARENT, parent)
                .ext(TRACESTATE, "congo=t61")
                .build();
            let out = Outgoing::encode(e, format);
            assert_eq!(out.headers[TRACEPARENT], parent, "{format:?}");
            assert_eq!(out.headers[TRACESTATE], "congo=t61", "{format:?}");
        }
    }

    fn chunked(chunks: &[&'static str]) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let frames = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))));
        StreamBody::new(futures::stream::iter(frames.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn a_response_body_is_read_whole_or_cut_at_the_limit() {
        let read = |chunks, limit| read_body(chunked(chunks), limit);
        assert_eq!(read(&[], 8).await.unwrap(), (Bytes::new(), false));
        assert_eq!(read(&["hello"], 8).await.unwrap(), ("hello".into(), false));
        assert_eq!(
            read(&["he", "llo"], 8).await.unwrap(),
            ("hello".into(), false)
        );
        assert_eq!(
            read(&["hello", "world"], 8).await.unwrap(),
            ("hellowor".into(), true)
        );
        assert_eq!(
            read(&["hello world"], 8).await.unwrap(),
            ("hello wo".into(), true)
        );
        assert_eq!(
            read(&["a", "b", "c"], 3).await.unwrap(),
            ("abc".into(), false)
        );
    }

    #[test]
    fn attempts_are_counted_from_one() {
        let out = Outgoing::encode(sample().build(), EventFormat::Binary);
        assert_eq!(out.attempts(), 0);
        assert_eq!(out.start_attempt(), 1);
        assert_eq!(out.start_attempt(), 2);
        assert_eq!(out.attempts(), 2);
    }
}
