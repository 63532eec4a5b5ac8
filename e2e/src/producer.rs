//! The producer side: test events with unique ids ([`event`]) and a [`Producer`] that POSTs
//! them in binary, structured or batched mode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use weft_config::event::http::{BATCH_JSON, STRUCTURED_JSON, encode_binary, encode_structured};
use weft_config::{AttributeValue, Event};

/// Numbers events so that ids are unique within a test process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id, unique within this process and distinct from other processes' ids.
pub fn unique_id() -> String {
    format!(
        "e2e-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// Builds a test event; see [`event`].
#[derive(Clone, Debug)]
pub struct EventBuilder {
    event: Event,
}

/// Starts an event of type `ty` with a unique id, source `/e2e/producer` and JSON data
/// `{"test":true}`.
pub fn event(ty: &str) -> EventBuilder {
    // A unique id, a fixed source and a caller's type are all non-empty; an empty type is
    // a bug in the test itself.
    let mut event = Event::new(unique_id(), "/e2e/producer", ty).expect("a non-empty type");
    event
        .set_datacontenttype(Some("application/json".into()))
        .expect("non-empty");
    event.set_data(Some(Bytes::from_static(br#"{"test":true}"#)));
    EventBuilder { event }
}

// Setters below panic on invalid input: these are fixtures, and an invalid value is a bug in
// the test that should fail it right there.
impl EventBuilder {
    /// Sets the id.
    pub fn id(mut self, id: &str) -> Self {
        self.event
            .set_attribute_str("id", id.into())
            .expect("a valid id");
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: &str) -> Self {
        self.event
            .set_attribute_str("source", source.into())
            .expect("a valid source");
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: &str) -> Self {
        self.event
            .set_subject(Some(subject.into()))
            .expect("a valid subject");
        self
    }

    /// Sets the time (RFC 3339).
    pub fn time(mut self, time: &str) -> Self {
        self.event
            .set_time(Some(time.into()))
            .expect("an RFC 3339 time");
        self
    }

    /// Sets a string extension attribute.
    pub fn ext(mut self, name: &str, value: &str) -> Self {
        self.event
            .set_extension(name, AttributeValue::String(value.into()))
            .expect("a valid extension name");
        self
    }

    /// Sets an integer extension attribute.
    pub fn ext_int(mut self, name: &str, value: i32) -> Self {
        self.event
            .set_extension(name, AttributeValue::Integer(value))
            .expect("a valid extension name");
        self
    }

    /// Sets JSON data (`datacontenttype: application/json`).
    pub fn json(self, json: &str) -> Self {
        self.data("application/json", Bytes::copy_from_slice(json.as_bytes()))
    }

    /// Sets data of any content type.
    pub fn data(mut self, content_type: &str, data: impl Into<Bytes>) -> Self {
        self.event
            .set_datacontenttype(Some(content_type.into()))
            .expect("a non-empty content type");
        self.event.set_data(Some(data.into()));
        self
    }

    /// Leaves the event without data (and without `datacontenttype`).
    pub fn without_data(mut self) -> Self {
        self.event.set_data(None);
        self.event
            .set_datacontenttype(None)
            .expect("no content type is valid");
        self
    }

    /// The event.
    pub fn build(self) -> Event {
        self.event
    }
}

impl From<EventBuilder> for Event {
    fn from(b: EventBuilder) -> Event {
        b.event
    }
}

/// What came back from a POST.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body as text (lossy).
    pub body: String,
}

impl Sent {
    /// A header as a string, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// POSTs events to a broker URL. Cheap to clone; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Producer {
    client: reqwest::Client,
}

impl Default for Producer {
    fn default() -> Self {
        Self::new()
    }
}

impl Producer {
    /// A producer with a 30 s request timeout that never follows redirects.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Building a plain-HTTP client has no failure mode short of a broken system.
            .expect("an HTTP client");
        Producer { client }
    }

    /// The underlying client, for requests the helpers do not cover.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `event` in binary mode.
    pub async fn send(&self, url: &str, event: &Event) -> reqwest::Result<Sent> {
        let mut headers = HeaderMap::new();
        let body = encode_binary(event, &mut headers);
        self.post(url, headers, body).await
    }

    /// POSTs `event` in binary mode and fails the test unless the broker answers
    /// `202 Accepted`.
    pub async fn send_accepted(&self, url: &str, event: &Event) -> Sent {
        let sent = self
            .send(url, event)
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(
            sent.status,
            StatusCode::ACCEPTED,
            "POST {url}: {}",
            sent.body
        );
        sent
    }

    /// POSTs `event` in structured mode.
    pub async fn send_structured(&self, url: &str, event: &Event) -> reqwest::Result<Sent> {
        self.post(url, content_type(STRUCTURED_JSON), encode_structured(event))
            .await
    }

    /// POSTs `events` as one batch (`application/cloudevents-batch+json`).
    pub async fn send_batch(&self, url: &str, events: &[Event]) -> reqwest::Result<Sent> {
        let mut body = BytesMut::from(&b"["[..]);
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(b",");
            }
            body.extend_from_slice(&encode_structured(e));
        }
        body.extend_from_slice(b"]");
        self.post(url, content_type(BATCH_JSON), body.freeze())
            .await
    }

    /// POSTs a raw body with these headers: for malformed input.
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> reqwest::Result<Sent> {
        self.request(Method::POST, url, headers, body.into()).await
    }

    /// GETs a URL (health, readiness, metrics).
    pub async fn get(&self, url: &str) -> reqwest::Result<Sent> {
        self.request(Method::GET, url, HeaderMap::new(), Bytes::new())
            .await
    }

    /// Sends any request.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> reqwest::Result<Sent> {
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Sent {
            status,
            headers,
            body,
        })
    }
}

/// Headers holding only a `Content-Type`.
pub fn content_type(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static(value),
    );
    headers
}
