//! The retry policy: the DeliverySpec as a `tower::retry::Policy`.
//!
//! After a failed attempt the policy decides whether there is another one and how long to
//! wait first: no retry for a permanent failure or once `retry` retries are spent;
//! otherwise the backoff for this retry, or, for a 429/503 with `Retry-After` and a
//! non-zero `retryAfterMax`, `max(backoff, min(Retry-After, retryAfterMax))`. The wait is a
//! timer inside the delivery's own future, so a waiting event never blocks other events.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Sleep;
use tower::retry::Policy;
use weft_config::DeliveryConfig;

use super::backoff::Backoff;
use super::error::DeliveryError;
use super::http::Outgoing;

/// The retry part of a DeliverySpec. Cheap to copy: tower clones it for every delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeliveryPolicy {
    /// Retries after the first attempt.
    retry: u32,
    /// The wait before each retry.
    backoff: Backoff,
    /// The longest `Retry-After` honoured; `None` when Retry-After is ignored.
    retry_after_max: Option<Duration>,
}

impl DeliveryPolicy {
    /// The policy a DeliverySpec asks for.
    pub(crate) fn new(config: &DeliveryConfig) -> Self {
        DeliveryPolicy {
            retry: config.retry,
            backoff: Backoff::from_config(config),
            // `retryAfterMax: PT0S` disables Retry-After, like leaving it out.
            retry_after_max: config.retry_after_max.filter(|max| !max.is_zero()),
        }
    }

    /// The wait before the next attempt, after `attempts` attempts of which the last failed
    /// with `error`; `None` when there is no next attempt.
    pub(crate) fn wait(&self, attempts: u32, error: &DeliveryError) -> Option<Duration> {
        // Attempts made so far are 1 + retries made so far; the next retry is number
        // `attempts`, allowed while it is within `retry`.
        if !error.is_retriable() || attempts > self.retry {
            return None;
        }
        let backoff = self.backoff.delay(attempts);
        Some(match (error.retry_after(), self.retry_after_max) {
            (Some(asked), Some(max)) => backoff.max(asked.min(max)),
            _ => backoff,
        })
    }
}

impl Policy<Arc<Outgoing>, StatusCode, DeliveryError> for DeliveryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        outgoing: &mut Arc<Outgoing>,
        result: &mut Result<StatusCode, DeliveryError>,
    ) -> Option<Sleep> {
        let Err(error) = result else {
            return None;
        };
        let attempt = outgoing.attempts();
        let wait = self.wait(attempt, error)?;
        tracing::debug!(attempt, ?wait, error = %error, "attempt failed; retrying");
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, outgoing: &Arc<Outgoing>) -> Option<Arc<Outgoing>> {
        Some(outgoing.clone())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use weft_config::BackoffPolicy;

    use super::*;
    use crate::delivery::error::ReplyError;

    fn config(retry: u32, retry_after_max: Option<u64>) -> DeliveryConfig {
        DeliveryConfig {
            retry,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: Duration::from_secs(1),
            retry_after_max: retry_after_max.map(Duration::from_secs),
            ..DeliveryConfig::default()
        }
    }

    fn status(code: u16, retry_after: Option<u64>) -> DeliveryError {
        DeliveryError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: Bytes::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn secs(wait: Option<Duration>) -> Option<u64> {
        wait.map(|d| d.as_secs())
    }

    #[test]
    fn waits_follow_the_backoff_until_retries_are_spent() {
        let policy = DeliveryPolicy::new(&config(3, None));
        let error = status(503, None);
        let waits: Vec<_> = (1..=4).map(|n| secs(policy.wait(n, &error))).collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4), None]);
    }

    #[test]
    fn no_retries_means_one_attempt() {
        let policy = DeliveryPolicy::new(&config(0, None));
        assert_eq!(policy.wait(1, &status(503, None)), None);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let policy = DeliveryPolicy::new(&config(5, None));
        for code in [400, 401, 403, 302] {
            assert_eq!(policy.wait(1, &status(code, None)), None, "{code}");
        }
        let rejected = DeliveryError::Reply {
            source: ReplyError::Rejected {
                reason: "bad ttl".into(),
            },
        };
        assert_eq!(policy.wait(1, &rejected), None);
        let timeout = DeliveryError::Timeout {
            after: Duration::from_secs(1),
        };
        assert_eq!(secs(policy.wait(1, &timeout)), Some(1));
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_max() {
        let policy = DeliveryPolicy::new(&config(5, Some(10)));
        // Longer than the backoff, shorter than the max: wait as asked.
        assert_eq!(secs(policy.wait(1, &status(429, Some(5)))), Some(5));
        // Longer than the max: capped at the max.
        assert_eq!(secs(policy.wait(1, &status(503, Some(60)))), Some(10));
        // Shorter than the backoff: the backoff wins.
        assert_eq!(secs(policy.wait(4, &status(503, Some(2)))), Some(8));
        // Retry-After does not bring back retries that are spent.
        assert_eq!(policy.wait(6, &status(503, Some(5))), None);
    }

    #[test]
    fn retry_after_is_ignored_without_a_max_or_with_zero() {
        for max in [None, Some(0)] {
            let policy = DeliveryPolicy::new(&config(5, max));
            assert_eq!(
                secs(policy.wait(1, &status(429, Some(30)))),
                Some(1),
                "{max:?}"
            );
        }
    }

    #[test]
    fn retry_after_may_exceed_backoff_max() {
        let mut c = config(5, Some(30));
        c.backoff_max = Some(Duration::from_secs(2));
        let policy = DeliveryPolicy::new(&c);
        assert_eq!(secs(policy.wait(5, &status(503, None))), Some(2));
        assert_eq!(secs(policy.wait(5, &status(503, Some(20)))), Some(20));
    }
}
