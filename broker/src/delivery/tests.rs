//! The whole stack over a scripted sink, in paused time: retry spacing, per-attempt
//! timeouts, Retry-After, replies and outcomes, without HTTP.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, StatusCode};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;
use tower::service_fn;
use url::Url;
use weft_config::event::http::encode_binary;
use weft_config::{BackoffPolicy, DeliveryConfig, Event};
use weft_e2e::event;

use super::*;

/// What the scripted sink does on one call.
#[derive(Clone, Debug)]
enum Step {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer with this status and body.
    StatusBody(u16, &'static str),
    /// Answer with this status and `Retry-After` value.
    RetryAfter(u16, &'static str),
    /// Answer 200 with a binary-mode reply event.
    Reply,
    /// Never answer.
    Hang,
}

/// A sink that follows a script and records when each call came and what it carried.
#[derive(Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<(Instant, HeaderMap)>>,
}

impl Script {
    fn new(steps: impl IntoIterator<Item = Step>) -> Arc<Self> {
        Arc::new(Script {
            steps: Mutex::new(steps.into_iter().collect()),
            calls: Mutex::default(),
        })
    }

    /// The time between consecutive calls.
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

fn respond(code: u16, headers: HeaderMap, body: Bytes) -> SinkResponse {
    SinkResponse {
        status: StatusCode::from_u16(code).unwrap(),
        headers,
        body,
        truncated: false,
    }
}

/// The stack of `config` over the script's sink.
fn service(
    script: &Arc<Script>,
    config: &DeliveryConfig,
    replies: Option<Arc<dyn ReplySink>>,
) -> SinkService {
    let script = script.clone();
    let sink = service_fn(move |outgoing: Arc<Outgoing>| {
        let script = script.clone();
        async move {
            script
                .calls
                .lock()
                .unwrap()
                .push((Instant::now(), outgoing.headers.clone()));
            let step = script.steps.lock().unwrap().pop_front();
            match step.expect("the script has a step for every call") {
                Step::Status(code) => Ok(respond(code, HeaderMap::new(), Bytes::new())),
                Step::StatusBody(code, body) => Ok(respond(
                    code,
                    HeaderMap::new(),
                    Bytes::from_static(body.as_bytes()),
                )),
                Step::RetryAfter(code, value) => {
                    let mut headers = HeaderMap::new();
                    headers.insert(::http::header::RETRY_AFTER, HeaderValue::from_static(value));
                    Ok(respond(code, headers, Bytes::new()))
                }
                Step::Reply => {
                    let reply = event("com.example.reply")
                        .id("reply-1")
                        .source("/sink")
                        .data("text/plain", "hi")
                        .build();
                    let mut headers = HeaderMap::new();
                    let body = encode_binary(&reply, &mut headers);
                    Ok(respond(200, headers, body))
                }
                Step::Hang => std::future::pending().await,
            }
        }
    });
    let url = Arc::new(Url::parse("http://sink.test/").unwrap());
    stack(sink, url, config, replies)
}

fn config(retry: u32, policy: BackoffPolicy, delay_ms: u64) -> DeliveryConfig {
    DeliveryConfig {
        retry,
        backoff_policy: policy,
        backoff_delay: Duration::from_millis(delay_ms),
        ..DeliveryConfig::default()
    }
}

/// The event the tests deliver, with a hop count.
fn sample() -> Event {
    event("com.example")
        .id("e-1")
        .source("/src")
        .ext("knativebrokerttl", "200")
        .build()
}

fn failure(outcome: Outcome) -> Failure {
    match outcome {
        Outcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

const fn secs(s: f64) -> Duration {
    Duration::from_millis((s * 1000.0) as u64)
}

#[tokio::test(start_paused = true)]
async fn exponential_retries_are_spaced_by_the_backoff() {
    let script = Script::new([Step::Status(503), Step::Status(503), Step::Status(200)]);
    let sink = service(&script, &config(3, BackoffPolicy::Exponential, 1000), None);
    let outcome = sink.deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 200,
            attempts: 3
        }
    );
    assert_eq!(script.gaps(), [secs(1.0), secs(2.0)]);
}

#[tokio::test(start_paused = true)]
async fn linear_retries_until_spent_then_fail_as_retriable() {
    let script = Script::new([
        Step::Status(500),
        Step::Status(500),
        Step::Status(500),
        Step::StatusBody(500, "still broken"),
    ]);
    let sink = service(&script, &config(3, BackoffPolicy::Linear, 500), None);
    let f = failure(sink.deliver(sample()).await);
    assert_eq!(f.status, Some(500));
    assert_eq!(f.attempts, 4);
    assert!(f.retriable);
    assert_eq!(f.body.as_ref(), b"still broken");
    assert_eq!(f.reason, "500 Internal Server Error");
    assert_eq!(script.gaps(), [secs(0.5), secs(1.0), secs(1.5)]);
}

#[tokio::test(start_paused = true)]
async fn backoff_max_caps_the_waits() {
    let script = Script::new([
        Step::Status(502),
        Step::Status(502),
        Step::Status(502),
        Step::Status(202),
    ]);
    let mut c = config(5, BackoffPolicy::Exponential, 1000);
    c.backoff_max = Some(secs(1.5));
    let outcome = service(&script, &c, None).deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 202,
            attempts: 4
        }
    );
    assert_eq!(script.gaps(), [secs(1.0), secs(1.5), secs(1.5)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_stretches_the_wait_up_to_its_max() {
    let script = Script::new([
        Step::RetryAfter(429, "5"),
        Step::RetryAfter(503, "3600"),
        Step::Status(200),
    ]);
    let mut c = config(3, BackoffPolicy::Exponential, 1000);
    c.retry_after_max = Some(secs(10.0));
    let outcome = service(&script, &c, None).deliver(sample()).await;
    assert!(matches!(outcome, Outcome::Delivered { attempts: 3, .. }));
    assert_eq!(script.gaps(), [secs(5.0), secs(10.0)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_ignored_without_retry_after_max() {
    let script = Script::new([Step::RetryAfter(429, "5"), Step::Status(200)]);
    let c = config(3, BackoffPolicy::Exponential, 1000);
    service(&script, &c, None).deliver(sample()).await;
    assert_eq!(script.gaps(), [secs(1.0)]);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_not_retried() {
    for code in [400, 401, 403, 410, 413, 302] {
        let script = Script::new([Step::StatusBody(code, "no")]);
        let f = failure(
            service(&script, &config(5, BackoffPolicy::Linear, 100), None)
                .deliver(sample())
                .await,
        );
        assert_eq!(f.status, Some(code), "{code}");
        assert_eq!(f.attempts, 1);
        assert!(!f.retriable);
        assert_eq!(f.body.as_ref(), b"no");
        assert_eq!(script.count(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn no_delivery_spec_means_a_single_attempt() {
    let script = Script::new([Step::Status(503)]);
    let f = failure(
        service(&script, &DeliveryConfig::default(), None)
            .deliver(sample())
            .await,
    );
    assert_eq!((f.attempts, f.retriable), (1, true));
}

#[tokio::test(start_paused = true)]
async fn the_timeout_applies_to_each_attempt() {
    let script = Script::new([Step::Hang, Step::Hang, Step::Status(200)]);
    let mut c = config(2, BackoffPolicy::Exponential, 1000);
    c.timeout = Some(secs(1.0));
    let started = Instant::now();
    let outcome = service(&script, &c, None).deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 200,
            attempts: 3
        }
    );
    // timeout 1s + backoff 1s, then timeout 1s + backoff 2s.
    assert_eq!(script.gaps(), [secs(2.0), secs(3.0)]);
    assert_eq!(started.elapsed(), secs(5.0));
}

#[tokio::test(start_paused = true)]
async fn timeouts_fail_without_a_status() {
    let script = Script::new([Step::Hang, Step::Hang]);
    let mut c = config(1, BackoffPolicy::Exponential, 100);
    c.timeout = Some(secs(1.0));
    let f = failure(service(&script, &c, None).deliver(sample()).await);
    assert_eq!(f.status, None);
    assert!(f.body.is_empty());
    assert_eq!(f.attempts, 2);
    assert!(f.retriable);
    assert_eq!(f.reason, "timed out after 1s");
}

/// A reply sink that fails with the queued errors first, then stores.
#[derive(Default)]
struct Replies {
    failures: Mutex<VecDeque<ReplyError>>,
    stored: Mutex<Vec<(String, Event)>>,
}

#[async_trait]
impl ReplySink for Replies {
    async fn store(&self, original: &Event, reply: Event) -> Result<(), ReplyError> {
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let ttl = original
            .extension("knativebrokerttl")
            .map(|v| v.as_str().into_owned())
            .unwrap_or_default();
        self.stored.lock().unwrap().push((ttl, reply));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_reply_that_cannot_be_stored_is_retried() {
    let replies = Arc::new(Replies::default());
    replies
        .failures
        .lock()
        .unwrap()
        .push_back(ReplyError::Store {
            reason: "disk full".into(),
        });
    let script = Script::new([Step::Reply, Step::Reply]);
    let sink = service(
        &script,
        &config(3, BackoffPolicy::Exponential, 1000),
        Some(replies.clone()),
    );
    let outcome = sink.deliver(sample()).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 200,
            attempts: 2
        }
    );
    let stored = replies.stored.lock().unwrap();
    assert_eq!(stored.len(), 1);
    // The reply sink sees the original with its hop count; the sink never does.
    assert_eq!(stored[0].0, "200");
    assert_eq!(stored[0].1.id(), "reply-1");
    for (_, headers) in script.calls.lock().unwrap().iter() {
        assert!(headers.get("ce-knativebrokerttl").is_none());
        assert_eq!(headers["prefer"], "reply");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejected_reply_fails_at_once() {
    let replies = Arc::new(Replies::default());
    replies
        .failures
        .lock()
        .unwrap()
        .push_back(ReplyError::Rejected {
            reason: "hop limit".into(),
        });
    let script = Script::new([Step::Reply]);
    let sink = service(
        &script,
        &config(3, BackoffPolicy::Exponential, 1000),
        Some(replies),
    );
    let f = failure(sink.deliver(sample()).await);
    assert_eq!((f.status, f.attempts, f.retriable), (None, 1, false));
}

#[tokio::test(start_paused = true)]
async fn a_malformed_reply_is_retried_like_a_502() {
    let replies = Arc::new(Replies::default());
    let script = Script::new([
        Step::StatusBody(200, "not an event"),
        Step::StatusBody(200, "still not"),
    ]);
    let sink = service(
        &script,
        &config(1, BackoffPolicy::Exponential, 1000),
        Some(replies.clone()),
    );
    let f = failure(sink.deliver(sample()).await);
    assert_eq!(f.status, Some(502));
    assert_eq!(f.body.as_ref(), b"still not");
    assert_eq!((f.attempts, f.retriable), (2, true));
    assert!(replies.stored.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deliveries_share_nothing_but_the_config() {
    // Two deliveries through clones of one service each get their own retry count.
    let script = Script::new([
        Step::Status(503),
        Step::Status(200),
        Step::Status(503),
        Step::Status(200),
    ]);
    let sink = service(&script, &config(1, BackoffPolicy::Exponential, 1000), None);
    let first = sink.clone().deliver(sample()).await;
    let second = sink.deliver(sample()).await;
    assert_eq!(first, second);
    assert!(matches!(first, Outcome::Delivered { attempts: 2, .. }));
}

#[test]
fn sink_service_is_send_sync_and_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<SinkService>();
    fn _reply_sink_is_object_safe(_: Arc<dyn ReplySink>) {}
}

#[test]
fn the_sink_url_is_shown_without_credentials() {
    let sink =
        service_fn(|_: Arc<Outgoing>| async { Ok(respond(200, HeaderMap::new(), Bytes::new())) });
    let url = Arc::new(Url::parse("http://user:hunter22@sink.test/?token=abc123&x=1").unwrap());
    let service = stack(sink, url, &DeliveryConfig::default(), None);
    let shown = format!("{service:?}");
    assert!(
        shown.contains("http://user:***@sink.test/?token=***&x=1"),
        "{shown}"
    );
    assert!(
        !shown.contains("hunter22") && !shown.contains("abc123"),
        "{shown}"
    );
}
