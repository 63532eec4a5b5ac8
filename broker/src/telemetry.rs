//! Metrics: every name Weft's data plane records, declared once, and the Prometheus
//! recorder behind `/metrics`.
//!
//! Names follow `weft_<component>_<noun>_<unit>[_total]`; labels are bounded (broker,
//! trigger, outcome), never an event's id, type or subject.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Events accepted by the ingress (labels: `broker`).
pub const INGRESS_EVENTS_ACCEPTED: &str = "weft_ingress_events_accepted_total";
/// Requests rejected by the ingress (labels: `reason`: `malformed`, `unknown_broker`,
/// `too_large`, `method`, `ttl`, `channel`).
pub const INGRESS_REQUESTS_REJECTED: &str = "weft_ingress_requests_rejected_total";
/// Time to append one request's events durably.
pub const INGRESS_APPEND_SECONDS: &str = "weft_ingress_append_duration_seconds";
/// Final outcomes of dispatched events (labels: `trigger`, `outcome`: `delivered`,
/// `filtered`, `dead_lettered`, `parked`, `dropped`).
pub const DISPATCH_EVENTS: &str = "weft_dispatcher_events_total";
/// Replies not re-ingested because the hop limit was reached (labels: `trigger`).
pub const DISPATCH_REPLIES_EXPIRED: &str = "weft_dispatcher_replies_expired_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program or a
            // test); metrics then go there and /metrics shows this recorder's empty view.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
