//! Response classification: what a sink's HTTP status means for the delivery.
//!
//! Knative's data-plane table, with Weft's choices where it leaves room (DESIGN.md
//! "Decisions"): 2xx is success; 404, 408, 409, 429, every 5xx and any code the table does
//! not list are retried; other 4xx, 1xx and 3xx fail at once (redirects are never followed).
//! A 429 or 503 may ask for a wait with `Retry-After` ([`parse_retry_after`]).

use std::time::{Duration, SystemTime};

use http::{HeaderValue, StatusCode};

/// What a response status means for the event being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseClass {
    /// Delivered (any 2xx). A 200 may carry a reply event; no other status does.
    Success,
    /// Not delivered, worth another attempt if the DeliverySpec allows one.
    Retry,
    /// Not delivered, and trying again would not help: the event goes to the dead-letter
    /// sink at once.
    Fail,
}

impl ResponseClass {
    /// Classifies a status code.
    pub fn classify(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => ResponseClass::Success,
            404 | 408 | 409 | 429 => ResponseClass::Retry,
            100..=199 | 300..=399 | 400..=499 => ResponseClass::Fail,
            500..=599 => ResponseClass::Retry,
            // Codes the table does not list (600 and up): retry, as the spec suggests.
            _ => ResponseClass::Retry,
        }
    }

    /// Whether a `Retry-After` header on this status is honoured (429 and 503 only).
    pub fn honours_retry_after(status: StatusCode) -> bool {
        matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP-date, relative to `now`. A date
/// in the past means no wait; anything else unreadable is ignored.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: the parse can fail only by overflowing, which means "very long".
        return Some(text.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: u16) -> ResponseClass {
        ResponseClass::classify(StatusCode::from_u16(code).unwrap())
    }

    #[test]
    fn every_class_of_status() {
        use ResponseClass::*;
        let table = [
            (100, Fail),
            (101, Fail),
            (199, Fail),
            (200, Success),
            (201, Success),
            (202, Success),
            (204, Success),
            (299, Success),
            (300, Fail),
            (301, Fail),
            (302, Fail),
            (307, Fail),
            (308, Fail),
            (400, Fail),
            (401, Fail),
            (403, Fail),
            (404, Retry),
            (405, Fail),
            (408, Retry),
            (409, Retry),
            (410, Fail),
            (413, Fail),
            (415, Fail),
            (422, Fail),
            (429, Retry),
            (499, Fail),
            (500, Retry),
            (502, Retry),
            (503, Retry),
            (504, Retry),
            (599, Retry),
            (600, Retry),
            (999, Retry),
        ];
        for (code, want) in table {
            assert_eq!(class(code), want, "status {code}");
        }
    }

    #[test]
    fn retry_after_only_on_429_and_503() {
        for code in [429, 503] {
            assert!(ResponseClass::honours_retry_after(
                StatusCode::from_u16(code).unwrap()
            ));
        }
        for code in [200, 404, 500, 502, 504] {
            assert!(!ResponseClass::honours_retry_after(
                StatusCode::from_u16(code).unwrap()
            ));
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = at(1_000_000);
        assert_eq!(
            parse_retry_after(&header("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(&header(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(&header("99999999999999999999999"), now),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn retry_after_as_an_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after the epoch.
        let date = header("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_retry_after(&date, at(784_111_777 - 30)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(&date, at(784_111_777 + 30)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        let now = at(1_000_000);
        for bad in ["", "soon", "-5", "1.5", "12s", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(&header(bad), now), None, "{bad:?}");
        }
        let not_text = HeaderValue::from_bytes(b"\xff12").unwrap();
        assert_eq!(parse_retry_after(&not_text, now), None);
    }
}
