//! The broker ingress: `POST /<namespace>/<broker>`.
//!
//! A request is read (up to the body limit), decoded in whichever content mode it uses,
//! stamped ([`admit`]: arrival time, hop limit, the request's trace context), and
//! appended to the broker's channel. The answer is 202 only after
//! the channel says the append is durable; concurrent requests share one durable commit
//! because the channel groups them. Status codes follow Knative's broker: 400 for a
//! malformed event, 404 for an unknown broker, 405 for other methods, 413 above the body
//! limit, 503 when the channel cannot store.

pub mod admit;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use weft_channels::{Channel, ChannelError};
use weft_config::ObjectKey;
use weft_config::event::http as binding;

use crate::telemetry;

const ALLOW: HeaderValue = HeaderValue::from_static("POST, OPTIONS");

/// The ingress's shared state: which brokers exist and where their events go.
pub struct Ingress {
    channel: Arc<dyn Channel>,
    /// Brokers by key; read on every request, written only when manifests change.
    brokers: RwLock<HashMap<ObjectKey, Arc<BrokerRoute>>>,
    max_body_size: usize,
    /// Set once desired state has been applied, for `/readyz`.
    ready: AtomicBool,
    /// Time to append one request's events, registered once.
    append_seconds: metrics::Histogram,
}

/// One broker as the ingress sees it.
struct BrokerRoute {
    key: ObjectKey,
    accepted: metrics::Counter,
}

impl Ingress {
    /// Creates the ingress over a channel with the given body limit in bytes. Installs the
    /// metrics recorder first, so that the handles registered from here on record.
    pub fn new(channel: Arc<dyn Channel>, max_body_size: usize) -> Self {
        telemetry::prometheus();
        Ingress {
            channel,
            brokers: RwLock::new(HashMap::new()),
            max_body_size,
            ready: AtomicBool::new(false),
            append_seconds: metrics::histogram!(telemetry::INGRESS_APPEND_SECONDS),
        }
    }

    /// Starts accepting events for a broker (its log must exist).
    pub fn add_broker(&self, key: &ObjectKey) {
        let route = Arc::new(BrokerRoute {
            key: key.clone(),
            accepted: metrics::counter!(telemetry::INGRESS_EVENTS_ACCEPTED, "broker" => key.to_string()),
        });
        self.write().insert(key.clone(), route);
    }

    /// Stops accepting events for a broker: further requests get 404.
    pub fn remove_broker(&self, key: &ObjectKey) {
        self.write().remove(key);
    }

    /// Whether a broker is served.
    pub fn has_broker(&self, key: &ObjectKey) -> bool {
        self.brokers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }

    /// Marks the ingress ready (desired state applied) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjectKey, Arc<BrokerRoute>>> {
        // A panic while holding this lock cannot leave the map half-updated (single
        // insert/remove), so a poisoned lock is still usable.
        self.brokers.write().unwrap_or_else(|e| e.into_inner())
    }

    fn route(&self, namespace: &str, name: &str) -> Option<Arc<BrokerRoute>> {
        let key = ObjectKey::new(namespace, name);
        self.brokers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }
}

/// `/healthz`, `/readyz` and `/metrics` alone: what a process that accepts no events (a
/// dispatcher replica) serves.
pub fn health_router(ingress: Arc<Ingress>) -> Router {
    let metrics = telemetry::prometheus();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(move || async move { metrics.render() }))
        .with_state(ingress)
}

/// The ingress routes plus `/healthz`, `/readyz` and `/metrics`.
pub fn router(ingress: Arc<Ingress>) -> Router {
    let routes = Router::new()
        .route(
            "/",
            any(|| async {
                reply(
                    StatusCode::NOT_FOUND,
                    "no broker at /; post to /<namespace>/<broker>",
                )
            }),
        )
        .route("/{namespace}/{broker}", any(publish))
        .fallback(|| async {
            reply(
                StatusCode::BAD_REQUEST,
                "path must be /<namespace>/<broker>",
            )
        })
        .with_state(ingress.clone());
    health_router(ingress).merge(routes)
}

async fn readyz(State(ingress): State<Arc<Ingress>>) -> Response {
    if ingress.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        reply(StatusCode::SERVICE_UNAVAILABLE, "manifests not applied yet")
    }
}

async fn publish(
    State(ingress): State<Arc<Ingress>>,
    Path((namespace, broker)): Path<(String, String)>,
    request: Request,
) -> Response {
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => {
            return (
                StatusCode::OK,
                [
                    (header::ALLOW, ALLOW),
                    (
                        header::HeaderName::from_static("webhook-allowed-origin"),
                        HeaderValue::from_static("*"),
                    ),
                    (
                        header::HeaderName::from_static("webhook-allowed-rate"),
                        HeaderValue::from_static("*"),
                    ),
                ],
            )
                .into_response();
        }
        _ => {
            reject("method");
            let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "use POST to send events");
            response.headers_mut().insert(header::ALLOW, ALLOW);
            return response;
        }
    }
    let Some(route) = ingress.route(&namespace, &broker) else {
        // Before the manifests are applied (e.g. just after a restart) no broker is known
        // yet: ask the producer to retry rather than claim the broker does not exist.
        if !ingress.ready.load(Ordering::Acquire) {
            reject("not_ready");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "manifests not applied yet; retry shortly",
            );
        }
        reject("unknown_broker");
        return reply(
            StatusCode::NOT_FOUND,
            &format!("broker {namespace}/{broker} not found"),
        );
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers, ingress.max_body_size).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut events = match binding::decode(&parts.headers, body) {
        Ok(events) => events,
        Err(e) => {
            reject("malformed");
            return reply(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    if events.is_empty() {
        reject("malformed");
        return reply(StatusCode::BAD_REQUEST, "the batch holds no events");
    }
    let arrival = admit::now_rfc3339();
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (traceparent, tracestate) = (header(admit::TRACEPARENT), header(admit::TRACESTATE));
    for event in &mut events {
        admit::adopt_trace_context(event, traceparent, tracestate);
        if let Err(e) = admit::admit(event, &arrival) {
            reject("ttl");
            return reply(StatusCode::BAD_REQUEST, &e.to_string());
        }
    }
    let count = events.len() as u64;
    let started = Instant::now();
    match ingress.channel.append(&route.key, events).await {
        Ok(()) => {
            ingress.append_seconds.record(started.elapsed());
            route.accepted.increment(count);
            StatusCode::ACCEPTED.into_response()
        }
        Err(ChannelError::UnknownLog { .. }) => {
            reject("unknown_broker");
            reply(
                StatusCode::NOT_FOUND,
                &format!("broker {namespace}/{broker} not found"),
            )
        }
        Err(e) => {
            reject("channel");
            tracing::warn!(broker = %route.key, error = %e, "append failed; answering 503");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the broker cannot store events right now; retry later",
            )
        }
    }
}

async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, Response> {
    let too_large = || {
        reject("too_large");
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => {
            reject("malformed");
            Err(reply(
                StatusCode::BAD_REQUEST,
                "could not read the request body",
            ))
        }
    }
}

fn reject(reason: &'static str) {
    metrics::counter!(telemetry::INGRESS_REQUESTS_REJECTED, "reason" => reason).increment(1);
}

fn reply(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}
