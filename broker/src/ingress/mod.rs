//! The broker ingress: `POST /<namespace>/<broker>`.
//!
//! A request is read (up to the body limit), decoded in whichever content mode it uses,
//! stamped ([`admit`]: arrival time, hop limit, the request's trace context), and
//! appended to the broker's channel. The answer is 202 only after
//! the channel says the append is durable; concurrent requests share one durable commit
//! because the channel groups them. Status codes follow Knative's broker: 400 for a
//! malformed event, 404 for an unknown broker, 405 for other methods, 413 above the body
//! limit, 503 when the channel cannot store; and, for a client that holds too much, 408
//! when the body does not arrive within the body-read timeout and 431 above the header
//! field limit, each with a one-line reason that names the limit ([`listen`] bounds the
//! rest: connections, header and idle time).
//!
//! `/readyz` answers 503 until the desired state is applied, and again while the channel
//! cannot store: from an append that failed with a retriable error until one succeeds or
//! the channel's probe (every [`STORAGE_PROBE_INTERVAL`]) says it can store again.

pub mod admit;
pub mod listen;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use weft_channels::{Channel, ChannelError};
use weft_config::ObjectKey;
use weft_config::event::extensions::{TRACEPARENT, TRACESTATE};
use weft_config::event::http as binding;

use self::listen::ClientLimits;
use crate::telemetry;

/// How often the ingress tries the channel again while an append has failed and no other
/// has succeeded since.
pub const STORAGE_PROBE_INTERVAL: Duration = Duration::from_secs(5);

const ALLOW: HeaderValue = HeaderValue::from_static("POST, OPTIONS");

/// The ingress's shared state: which brokers exist and where their events go.
pub struct Ingress {
    channel: Arc<dyn Channel>,
    /// Brokers by key; read on every request, written only when manifests change.
    brokers: RwLock<HashMap<ObjectKey, Arc<BrokerRoute>>>,
    max_body_size: usize,
    /// The body-read timeout and the header field limit.
    limits: ClientLimits,
    /// Set once desired state has been applied, for `/readyz`.
    ready: AtomicBool,
    /// Whether the channel cannot store now (for `/readyz`); see [`StorageHealth`].
    storage: StorageHealth,
    /// Time to append one request's events, registered once.
    append_seconds: metrics::Histogram,
}

/// One broker as the ingress sees it.
struct BrokerRoute {
    key: ObjectKey,
    accepted: metrics::Counter,
}

impl Ingress {
    /// Creates the ingress over a channel with the given body limit in bytes and client
    /// limits. Installs the metrics recorder first, so that the handles registered from
    /// here on record.
    pub fn new(channel: Arc<dyn Channel>, max_body_size: usize, limits: ClientLimits) -> Self {
        telemetry::prometheus();
        Ingress {
            channel,
            brokers: RwLock::new(HashMap::new()),
            max_body_size,
            limits,
            ready: AtomicBool::new(false),
            storage: StorageHealth::default(),
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

    /// Notes an append that failed because the channel cannot store now, and starts a
    /// probe that tries the broker's log until it works again (or an append succeeds).
    fn storage_failed(self: &Arc<Self>, broker: &ObjectKey, error: &ChannelError) {
        self.storage.failed(error.describe());
        self.probe_storage(broker);
    }

    /// Runs one probe task at a time while the channel cannot store.
    fn probe_storage(self: &Arc<Self>, broker: &ObjectKey) {
        if self.storage.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let ingress = self.clone();
        let broker = broker.clone();
        tokio::spawn(async move {
            while ingress.storage.is_failing() {
                tokio::time::sleep(STORAGE_PROBE_INTERVAL).await;
                if !ingress.storage.is_failing() {
                    break;
                }
                match ingress.channel.probe().await {
                    Ok(()) => {
                        tracing::info!(broker = %broker, "the channel can store again");
                        ingress.storage.recovered();
                    }
                    // Only an append can tell (the embedded SQLite): `probing` stays set, so
                    // that no probe starts again.
                    Err(ChannelError::Unsupported { .. }) => return,
                    Err(e) => {
                        tracing::debug!(broker = %broker, error = %e.describe(), "the channel still cannot store");
                    }
                }
            }
            ingress.storage.probing.store(false, Ordering::Release);
            // An append may have failed after the last check and before `probing` was
            // cleared: it found this probe running and started none.
            if ingress.storage.is_failing() {
                ingress.probe_storage(&broker);
            }
        });
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

/// Whether the channel can store, as the last append or probe found it.
#[derive(Default)]
struct StorageHealth {
    /// Set while the channel cannot store; read on every append, so kept apart from the
    /// reason.
    failing: AtomicBool,
    /// What the last failure said, for `/readyz`.
    reason: RwLock<String>,
    /// Whether a probe task runs (or the channel cannot be probed).
    probing: AtomicBool,
}

impl StorageHealth {
    fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    fn failed(&self, reason: String) {
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %reason, "the channel cannot store; /readyz answers 503");
        }
        // A poisoned lock still holds a whole String.
        *self.reason.write().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    fn recovered(&self) {
        self.failing.store(false, Ordering::Release);
    }

    fn reason(&self) -> String {
        self.reason
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
    if !ingress.ready.load(Ordering::Acquire) {
        reply(StatusCode::SERVICE_UNAVAILABLE, "manifests not applied yet")
    } else if ingress.storage.is_failing() {
        let reason = ingress.storage.reason();
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the channel cannot store events: {reason}"),
        )
    } else {
        (StatusCode::OK, "ready").into_response()
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
    let fields = request.headers().len();
    if fields > ingress.limits.max_headers {
        reject("too_many_headers");
        return reply(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "the request has {fields} header fields; the limit is {} (each extension of a \
                 binary-mode event is one; send many extensions in structured mode)",
                ingress.limits.max_headers
            ),
        );
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(
        body,
        &parts.headers,
        ingress.max_body_size,
        ingress.limits.body_read_timeout,
    )
    .await
    {
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
    let (traceparent, tracestate) = (header(TRACEPARENT), header(TRACESTATE));
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
            if ingress.storage.is_failing() {
                tracing::info!(broker = %route.key, "the channel can store again");
                ingress.storage.recovered();
            }
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
            if e.is_retriable() {
                ingress.storage_failed(&route.key, &e);
            }
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
    timeout: Duration,
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
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await else {
        reject("body_timeout");
        let mut response = reply(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {}",
                listen::seconds(timeout)
            ),
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(response);
    };
    match read {
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
