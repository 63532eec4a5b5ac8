//! The attempt layer: what happens around each single attempt, inside the retry loop and
//! outside the timeout.
//!
//! It numbers the attempt, opens its span, judges the sink's response (classification and
//! the reply of a 200, see [`super::reply`]) and records the attempt's metrics. Storing a
//! reply happens here, outside the per-attempt timeout: the sink's time limit does not cut
//! short Weft's own durable append.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::StatusCode;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};
use tracing::Instrument;

use super::error::DeliveryError;
use super::http::{Outgoing, SinkResponse};
use super::reply::{ReplySink, judge};

/// Attempts made to deliver events (labels: `outcome`: `delivered`, `status_retriable`,
/// `status_permanent`, `timeout`, `transport`, `malformed_reply`, `reply_not_stored`).
pub const ATTEMPTS: &str = "weft_delivery_attempts_total";
/// How long each attempt took, reply storage included (labels: `outcome`, as
/// [`ATTEMPTS`]).
pub const ATTEMPT_DURATION: &str = "weft_delivery_attempt_duration_seconds";

/// Wraps a sink service in [`AttemptService`].
#[derive(Clone)]
pub(crate) struct AttemptLayer {
    /// Where replies go; `None` for a dead-letter sink, whose replies are ignored.
    replies: Option<Arc<dyn ReplySink>>,
}

impl AttemptLayer {
    /// A layer that stores replies in `replies`, if given.
    pub(crate) fn new(replies: Option<Arc<dyn ReplySink>>) -> Self {
        AttemptLayer { replies }
    }
}

impl<S> Layer<S> for AttemptLayer {
    type Service = AttemptService<S>;

    fn layer(&self, inner: S) -> AttemptService<S> {
        AttemptService {
            inner,
            replies: self.replies.clone(),
        }
    }
}

/// One attempt: sends through `inner`, then judges the response.
#[derive(Clone)]
pub(crate) struct AttemptService<S> {
    inner: S,
    replies: Option<Arc<dyn ReplySink>>,
}

impl<S> Service<Arc<Outgoing>> for AttemptService<S>
where
    S: Service<Arc<Outgoing>, Response = SinkResponse, Error = DeliveryError>,
    S::Future: Send + 'static,
{
    type Response = StatusCode;
    type Error = DeliveryError;
    type Future = Pin<Box<dyn Future<Output = Result<StatusCode, DeliveryError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DeliveryError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, outgoing: Arc<Outgoing>) -> Self::Future {
        let attempt = outgoing.start_attempt();
        let span = tracing::debug_span!("attempt", attempt);
        let started = Instant::now();
        let response = self.inner.call(outgoing.clone());
        let replies = self.replies.clone();
        Box::pin(
            async move {
                let result = match response.await {
                    Ok(response) => judge(response, &outgoing.event, replies.as_deref()).await,
                    Err(error) => Err(error),
                };
                let outcome = match &result {
                    Ok(_) => "delivered",
                    Err(error) => error.metric_label(),
                };
                record(outcome, started.elapsed().as_secs_f64());
                match &result {
                    Ok(status) => tracing::debug!(%status, "attempt succeeded"),
                    Err(error) => tracing::debug!(error = %error, "attempt failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Every `outcome` label an attempt can have: `delivered` and the values of
/// [`DeliveryError::metric_label`].
const OUTCOMES: [&str; 7] = [
    "delivered",
    "status_retriable",
    "status_permanent",
    "timeout",
    "transport",
    "malformed_reply",
    "reply_not_stored",
];

/// Counts an attempt and records its duration. The handles of the known outcomes are
/// registered once per process (the data plane installs the recorder before any delivery
/// runs) rather than looked up by name on every attempt.
fn record(outcome: &'static str, seconds: f64) {
    static METRICS: OnceLock<Vec<(&'static str, Counter, Histogram)>> = OnceLock::new();
    let known = METRICS.get_or_init(|| {
        OUTCOMES
            .iter()
            .map(|&o| {
                let count = metrics::counter!(ATTEMPTS, "outcome" => o);
                let duration = metrics::histogram!(ATTEMPT_DURATION, "outcome" => o);
                (o, count, duration)
            })
            .collect()
    });
    match known.iter().find(|(o, _, _)| *o == outcome) {
        Some((_, count, duration)) => {
            count.increment(1);
            duration.record(seconds);
        }
        None => {
            metrics::counter!(ATTEMPTS, "outcome" => outcome).increment(1);
            metrics::histogram!(ATTEMPT_DURATION, "outcome" => outcome).record(seconds);
        }
    }
}
