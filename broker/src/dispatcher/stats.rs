//! Per-trigger outcome counters, kept in memory for `weft get triggers` and mirrored to
//! Prometheus.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use weft_config::ObjectKey;

use crate::telemetry;

/// Outcome counts for one trigger since the process started.
#[derive(Debug)]
pub struct TriggerStats {
    delivered: AtomicU64,
    filtered: AtomicU64,
    dead_lettered: AtomicU64,
    parked: AtomicU64,
    dropped: AtomicU64,
    window: AtomicU64,
    trigger: ObjectKey,
    /// The Prometheus counters, registered at the trigger's first outcome: a thousand idle
    /// triggers then hold no registry entries (about 1.5 KiB each).
    counters: OnceLock<[metrics::Counter; 5]>,
}

/// A copy of a trigger's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TriggerStatsSnapshot {
    /// Events the subscriber accepted.
    pub delivered: u64,
    /// Events the filter did not pass.
    pub filtered: u64,
    /// Events sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Events kept in the channel because the dead-letter sink failed too.
    pub parked: u64,
    /// Events that failed with no dead-letter sink configured.
    pub dropped: u64,
    /// Deliveries allowed in flight now: the trigger's maximum, less while its sink keeps
    /// failing (0 before the dispatcher starts).
    pub in_flight_window: u64,
}

impl TriggerStats {
    /// Fresh counters for a trigger.
    pub fn new(trigger: &ObjectKey) -> Self {
        TriggerStats {
            delivered: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            window: AtomicU64::new(0),
            trigger: trigger.clone(),
            counters: OnceLock::new(),
        }
    }

    pub(crate) fn delivered(&self) {
        self.bump(&self.delivered, 0);
    }
    pub(crate) fn filtered(&self) {
        self.bump(&self.filtered, 1);
    }
    pub(crate) fn dead_lettered(&self) {
        self.bump(&self.dead_lettered, 2);
    }
    pub(crate) fn parked(&self) {
        self.bump(&self.parked, 3);
    }
    pub(crate) fn dropped(&self) {
        self.bump(&self.dropped, 4);
    }

    /// Records the in-flight window's size; returns the one recorded before.
    pub(crate) fn set_window(&self, window: usize) -> usize {
        self.window.swap(window as u64, Ordering::Relaxed) as usize
    }

    fn bump(&self, value: &AtomicU64, counter: usize) {
        value.fetch_add(1, Ordering::Relaxed);
        let counters = self.counters.get_or_init(|| {
            let trigger = self.trigger.to_string();
            ["delivered", "filtered", "dead_lettered", "parked", "dropped"].map(|outcome| {
                metrics::counter!(telemetry::DISPATCH_EVENTS, "trigger" => trigger.clone(), "outcome" => outcome)
            })
        });
        counters[counter].increment(1);
    }

    /// The current counts.
    pub fn snapshot(&self) -> TriggerStatsSnapshot {
        TriggerStatsSnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            in_flight_window: self.window.load(Ordering::Relaxed),
        }
    }
}
