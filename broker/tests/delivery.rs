//! Delivery over real HTTP: the e2e test sink on 127.0.0.1:0, reached through
//! `sink_service` and the delivery HTTP client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use url::Url;
use weft_broker::delivery::{
    ERROR_CODE, ERROR_DATA, ERROR_DEST, Outcome, ReplyError, ReplySink, dead_letter_event,
    http_client, sink_service,
};
use weft_config::{DeliveryConfig, Event, EventFormat};
use weft_e2e::{Received, Reply, Sink, event};

/// The test sink: `/reply` answers 200 with a reply event, `/redirect` 302, `/bad` 400 with
/// a reason, `/slow` takes 30 s, and every other path 202.
async fn sink() -> Sink {
    let reply = event("com.example.reply")
        .id("reply-1")
        .source("/sink")
        .data("text/plain", "pong")
        .build();
    Sink::builder()
        .always("/reply", Reply::event(&reply))
        .always("/redirect", Reply::status(302).header("location", "/reply"))
        .always(
            "/bad",
            Reply::status(400).body("invalid payload: missing field `a`"),
        )
        .always("/slow", Reply::status(200).delay(Duration::from_secs(30)))
        .start()
        .await
}

/// The sink's URL of `path`.
fn url(sink: &Sink, path: &str) -> Url {
    Url::parse(&sink.url(path)).unwrap()
}

/// Records replies with the hop count of their original.
#[derive(Default)]
struct Replies(Mutex<Vec<(Option<String>, Event)>>);

#[async_trait]
impl ReplySink for Replies {
    async fn store(&self, original: &Event, reply: Event) -> Result<(), ReplyError> {
        let ttl = original
            .extension("knativebrokerttl")
            .map(|v| v.as_str().into_owned());
        self.0.lock().unwrap().push((ttl, reply));
        Ok(())
    }
}

/// The event every test delivers.
fn sample() -> Event {
    event("com.example.ping")
        .id("e-1")
        .source("/producer")
        .ext("knativebrokerttl", "254")
        .json(r#"{"a":1}"#)
        .build()
}

fn retrying(retry: u32) -> DeliveryConfig {
    DeliveryConfig {
        retry,
        backoff_delay: Duration::from_millis(10),
        ..DeliveryConfig::default()
    }
}

#[tokio::test]
async fn a_200_reply_reaches_the_reply_sink_and_the_request_is_clean() {
    let sink = sink().await;
    let replies = Arc::new(Replies::default());
    let service = sink_service(
        http_client(),
        url(&sink, "/reply"),
        &retrying(2),
        Some(replies.clone()),
    );
    let outcome = service.deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 200,
            attempts: 1
        }
    );

    let requests = sink.requests_to("/reply");
    assert_eq!(requests.len(), 1);
    let Received { headers, body, .. } = &requests[0];
    assert_eq!(headers["prefer"], "reply");
    assert_eq!(headers["ce-id"], "e-1");
    assert_eq!(headers["ce-type"], "com.example.ping");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("ce-knativebrokerttl").is_none());
    assert_eq!(body.as_ref(), br#"{"a":1}"#);

    let stored = replies.0.lock().unwrap();
    assert_eq!(stored.len(), 1);
    let (ttl, reply) = &stored[0];
    assert_eq!(ttl.as_deref(), Some("254"));
    assert_eq!(reply.id(), "reply-1");
    assert_eq!(reply.ty(), "com.example.reply");
    assert_eq!(reply.data().unwrap().as_ref(), b"pong");
}

#[tokio::test]
async fn json_format_sends_structured_mode() {
    let sink = sink().await;
    let config = DeliveryConfig {
        format: EventFormat::Json,
        ..DeliveryConfig::default()
    };
    let service = sink_service(http_client(), url(&sink, "/accepted"), &config, None);
    let outcome = service.deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 202,
            attempts: 1
        }
    );
    let Received { headers, body, .. } = &sink.requests_to("/accepted")[0];
    assert_eq!(headers["content-type"], "application/cloudevents+json");
    assert_eq!(headers["prefer"], "reply");
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["id"], "e-1");
    assert_eq!(json["data"]["a"], 1);
    assert!(json.get("knativebrokerttl").is_none());
}

#[tokio::test]
async fn a_redirect_is_a_failure_that_is_not_retried_or_followed() {
    let sink = sink().await;
    let service = sink_service(
        http_client(),
        url(&sink, "/redirect"),
        &retrying(3),
        Some(Arc::new(Replies::default())),
    );
    let Outcome::Failed(failure) = service.deliver(sample()).await else {
        panic!("a 302 must fail");
    };
    assert_eq!(failure.status, Some(302));
    assert_eq!(failure.attempts, 1);
    assert!(!failure.retriable);
    assert_eq!(sink.requests_to("/redirect").len(), 1);
    assert!(
        sink.requests_to("/reply").is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_400_gives_a_dead_letter_with_the_error_extensions() {
    let sink = sink().await;
    let target = url(&sink, "/bad");
    let service = sink_service(http_client(), target.clone(), &retrying(3), None);
    let original = sample();
    let Outcome::Failed(failure) = service.deliver(original.clone()).await else {
        panic!("a 400 must fail");
    };
    assert_eq!(failure.status, Some(400));
    assert_eq!(failure.attempts, 1);
    assert!(!failure.retriable);
    assert_eq!(failure.reason, "400 Bad Request");
    assert_eq!(sink.requests_to("/bad").len(), 1);

    let letter = dead_letter_event(&original, service.url(), &failure);
    let ext = |name: &str| letter.extension(name).map(|v| v.as_str().into_owned());
    assert_eq!(ext(ERROR_DEST).as_deref(), Some(target.as_str()));
    assert_eq!(ext(ERROR_CODE).as_deref(), Some("400"));
    let data = base64::engine::general_purpose::STANDARD
        .decode(ext(ERROR_DATA).unwrap())
        .unwrap();
    assert_eq!(data, b"invalid payload: missing field `a`");
    assert_eq!(letter.id(), original.id());
    assert_eq!(letter.data(), original.data());
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let sink = sink().await;
    let config = DeliveryConfig {
        timeout: Some(Duration::from_millis(300)),
        ..retrying(2)
    };
    let service = sink_service(http_client(), url(&sink, "/slow"), &config, None);
    let Outcome::Failed(failure) = service.deliver(sample()).await else {
        panic!("a sink slower than the timeout must fail");
    };
    assert_eq!(failure.status, None);
    assert_eq!(failure.attempts, 3);
    assert!(failure.retriable);
    assert_eq!(failure.reason, "timed out after 300ms");
    assert_eq!(sink.requests_to("/slow").len(), 3);
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    // Bind and drop a listener: its port is then (almost certainly) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{addr}/")).unwrap();
    let service = sink_service(http_client(), url, &retrying(2), None);
    let Outcome::Failed(failure) = service.deliver(sample()).await else {
        panic!("a closed port must fail");
    };
    assert_eq!(failure.status, None);
    assert_eq!(failure.attempts, 3);
    assert!(failure.retriable);
    assert!(
        failure.reason.starts_with("could not reach the sink"),
        "{}",
        failure.reason
    );
}
