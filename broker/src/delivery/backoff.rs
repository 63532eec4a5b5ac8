//! Backoff: how long to wait before each retry.
//!
//! Retry n (n = 1, 2, …) waits `delay × n` (linear) or `delay × 2^(n-1)` (exponential),
//! capped by `backoffMax`. The arithmetic saturates, so a huge retry count or delay gives
//! the longest wait rather than a panic. There is no jitter: DESIGN.md keeps it off unless
//! asked for, and the DeliverySpec has no field that asks.

use std::time::Duration;

use weft_config::{BackoffPolicy, DeliveryConfig};

/// The backoff part of a DeliverySpec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Linear or exponential growth.
    pub policy: BackoffPolicy,
    /// `backoffDelay`: the base of the growth.
    pub delay: Duration,
    /// `backoffMax`: no single wait is longer.
    pub max: Option<Duration>,
}

impl Backoff {
    /// The backoff a DeliverySpec asks for.
    pub fn from_config(config: &DeliveryConfig) -> Self {
        Backoff {
            policy: config.backoff_policy,
            delay: config.backoff_delay,
            max: config.backoff_max,
        }
    }

    /// The wait before retry `n` (the first retry is n = 1; 0 is read as 1).
    pub fn delay(&self, n: u32) -> Duration {
        let n = n.max(1);
        let wait = match self.policy {
            BackoffPolicy::Linear => self.delay.saturating_mul(n),
            BackoffPolicy::Exponential => match 1u32.checked_shl(n - 1) {
                Some(factor) => self.delay.saturating_mul(factor),
                // 2^(n-1) does not fit in a u32: any non-zero delay saturates.
                None if self.delay.is_zero() => Duration::ZERO,
                None => Duration::MAX,
            },
        };
        match self.max {
            Some(max) => wait.min(max),
            None => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(policy: BackoffPolicy, delay_ms: u64, max_ms: Option<u64>) -> Backoff {
        Backoff {
            policy,
            delay: Duration::from_millis(delay_ms),
            max: max_ms.map(Duration::from_millis),
        }
    }

    fn waits(b: Backoff, ns: impl IntoIterator<Item = u32>) -> Vec<u64> {
        ns.into_iter()
            .map(|n| b.delay(n).as_millis() as u64)
            .collect()
    }

    #[test]
    fn linear_grows_by_the_delay() {
        let b = backoff(BackoffPolicy::Linear, 200, None);
        assert_eq!(waits(b, 1..=5), [200, 400, 600, 800, 1000]);
    }

    #[test]
    fn exponential_doubles_from_the_delay() {
        let b = backoff(BackoffPolicy::Exponential, 200, None);
        assert_eq!(waits(b, 1..=5), [200, 400, 800, 1600, 3200]);
    }

    #[test]
    fn retry_zero_is_read_as_the_first_retry() {
        let b = backoff(BackoffPolicy::Exponential, 200, None);
        assert_eq!(b.delay(0), b.delay(1));
    }

    #[test]
    fn backoff_max_caps_both_policies() {
        let lin = backoff(BackoffPolicy::Linear, 200, Some(500));
        assert_eq!(waits(lin, 1..=4), [200, 400, 500, 500]);
        let exp = backoff(BackoffPolicy::Exponential, 200, Some(1000));
        assert_eq!(waits(exp, 1..=5), [200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn huge_retry_counts_and_delays_saturate() {
        let exp = backoff(BackoffPolicy::Exponential, 1, None);
        assert_eq!(exp.delay(32), Duration::from_millis(1 << 31));
        assert_eq!(exp.delay(33), Duration::MAX);
        assert_eq!(exp.delay(u32::MAX), Duration::MAX);
        let lin = Backoff {
            policy: BackoffPolicy::Linear,
            delay: Duration::MAX,
            max: None,
        };
        assert_eq!(lin.delay(u32::MAX), Duration::MAX);
        let capped = backoff(BackoffPolicy::Exponential, 1000, Some(60_000));
        assert_eq!(capped.delay(u32::MAX), Duration::from_secs(60));
        let zero = backoff(BackoffPolicy::Exponential, 0, None);
        assert_eq!(zero.delay(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn from_config_takes_the_delivery_spec_fields() {
        let config = DeliveryConfig {
            backoff_policy: BackoffPolicy::Linear,
            backoff_delay: Duration::from_secs(2),
            backoff_max: Some(Duration::from_secs(5)),
            ..DeliveryConfig::default()
        };
        assert_eq!(
            Backoff::from_config(&config),
            Backoff {
                policy: BackoffPolicy::Linear,
                delay: Duration::from_secs(2),
                max: Some(Duration::from_secs(5)),
            }
        );
    }
}
