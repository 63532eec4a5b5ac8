//! The controller's metrics on `/metrics` (its health address), recorded by the process's
//! Prometheus recorder ([`weft_broker::telemetry::prometheus`]).
//!
//! Labels are bounded: the kind (`Broker`, `Trigger`) and the outcome (`ok`, `error`).

use std::time::Instant;

/// Reconciles finished (labels: `kind`, `outcome`).
pub const RECONCILES: &str = "weft_controller_reconciles_total";
/// How long one reconcile took, API and channel calls included (labels: `kind`).
pub const RECONCILE_SECONDS: &str = "weft_controller_reconcile_duration_seconds";
/// Kubernetes Events recorded for a changed `Ready` (labels: `kind`, `type`: `Normal`,
/// `Warning`).
pub const READY_CHANGES: &str = "weft_controller_ready_changes_total";

/// Counts and times one reconcile of a `kind`.
pub(super) struct Timer {
    kind: &'static str,
    started: Instant,
}

impl Timer {
    /// Starts timing.
    pub(super) fn start(kind: &'static str) -> Self {
        Timer {
            kind,
            started: Instant::now(),
        }
    }

    /// Records the reconcile's outcome and duration.
    pub(super) fn finish(self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        metrics::counter!(RECONCILES, "kind" => self.kind, "outcome" => outcome).increment(1);
        metrics::histogram!(RECONCILE_SECONDS, "kind" => self.kind)
            .record(self.started.elapsed().as_secs_f64());
    }
}
