//! How long a failed reconcile waits before it is tried again: per object, doubling with
//! each consecutive failure, so one object that keeps failing (an API server that refuses
//! its status, a channel that is down) is not retried in a tight loop while the others
//! are not slowed down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first retry's delay.
const FIRST: Duration = Duration::from_secs(1);
/// The longest delay.
const MAX: Duration = Duration::from_secs(300);

/// Consecutive failures per object (`Kind/namespace/name`).
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `object`; answers how long to wait before trying again.
    pub(super) fn failed(&self, object: &str) -> Duration {
        let mut failures = self.lock();
        let n = failures.entry(object.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// Records a success of `object`: its next failure waits the first delay again.
    pub(super) fn succeeded(&self, object: &str) {
        self.lock().remove(object);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A poisoned map still holds counts; the worst case is a wrong delay.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The delay after `failures` consecutive failures (1 → 1 s, 2 → 2 s, … up to 5 min).
fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_object_up_to_five_minutes_and_restart_after_a_success() {
        let backoff = Backoff::default();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(backoff.failed("Trigger/a/x")), 1);
        assert_eq!(secs(backoff.failed("Trigger/a/x")), 2);
        assert_eq!(secs(backoff.failed("Trigger/a/x")), 4);
        assert_eq!(secs(backoff.failed("Trigger/a/y")), 1, "per object");
        for _ in 0..20 {
            backoff.failed("Trigger/a/x");
        }
        assert_eq!(secs(backoff.failed("Trigger/a/x")), 300);
        backoff.succeeded("Trigger/a/x");
        assert_eq!(secs(backoff.failed("Trigger/a/x")), 1);
    }
}
