//! What the ingress adds to every event it accepts, producers' and replies alike: the
//! arrival time and the hop limit that stops reply loops; and, for producers' events, the
//! request's W3C trace context.

use weft_config::event::extensions::{ARRIVAL_EXTENSION, TRACEPARENT, TRACESTATE, TTL_EXTENSION};
use weft_config::event::{AttributeValue, Event};

/// The hop limit given to events that arrive without one.
pub const DEFAULT_TTL: i32 = 255;

/// Why an event may not enter a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The event carries a hop count of zero or less: it has looped too often.
    #[error("event exceeded its hop limit (knativebrokerttl {ttl})")]
    TtlExpired {
        /// The TTL the event carried.
        ttl: i64,
    },
    /// `knativebrokerttl` is not an integer.
    #[error("invalid knativebrokerttl `{value}`: expected an integer")]
    InvalidTtl {
        /// The value the event carried.
        value: String,
    },
}

/// The hop count an event carries, if any.
pub fn ttl(event: &Event) -> Result<Option<i64>, AdmitError> {
    match event.extension(TTL_EXTENSION) {
        None => Ok(None),
        Some(AttributeValue::Integer(i)) => Ok(Some(i64::from(*i))),
        Some(other) => {
            let text = other.as_str();
            text.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| AdmitError::InvalidTtl {
                    value: text.into_owned(),
                })
        }
    }
}

/// Stamps an event for storage: sets `knativearrivaltime`, gives it the default hop limit
/// when it has none, and refuses it when its hop limit is spent.
pub fn admit(event: &mut Event, arrival_time: &str) -> Result<(), AdmitError> {
    match ttl(event)? {
        Some(ttl) if ttl <= 0 => return Err(AdmitError::TtlExpired { ttl }),
        Some(ttl) => set_ttl(event, ttl.min(i64::from(i32::MAX)) as i32),
        None => set_ttl(event, DEFAULT_TTL),
    }
    set_string(event, ARRIVAL_EXTENSION, arrival_time);
    Ok(())
}

/// Keeps the request's W3C trace context (`traceparent`, `tracestate` headers) with an event
/// that carries none, as the CloudEvents Distributed Tracing extension, so that the trace
/// continues across the log to the sinks (delivery sends it as headers again). An event's
/// own `traceparent` wins; a header that is not a valid `traceparent` is ignored.
pub fn adopt_trace_context(event: &mut Event, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|t| is_traceparent(t)) else {
        return;
    };
    if event.extension(TRACEPARENT).is_some() {
        return;
    }
    set_string(event, TRACEPARENT, traceparent);
    if let Some(tracestate) = tracestate.filter(|t| !t.is_empty()) {
        set_string(event, TRACESTATE, tracestate);
    }
}

/// Whether `value` has the form of a W3C `traceparent`: `version-traceid-parentid-flags`
/// in lower-case hex of 2, 32, 16 and 2 digits, neither id all zeros.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags, ..]
        if hex(version, 2) && *version != "ff"
            && hex(trace, 32) && nonzero(trace)
            && hex(parent, 16) && nonzero(parent)
            && hex(flags, 2)
            && (parts.len() == 4 || *version != "00"))
}

/// Sets the hop count as a string, as it travels in a `ce-` header.
pub fn set_ttl(event: &mut Event, ttl: i32) {
    set_string(event, TTL_EXTENSION, &ttl.to_string());
}

fn set_string(event: &mut Event, name: &str, value: &str) {
    // Both names are valid, lower-case extension names; setting them cannot fail.
    event
        .set_extension(name, AttributeValue::String(value.to_owned()))
        .expect("valid extension name");
}

/// The current time in RFC 3339 with microseconds, as `knativearrivaltime` carries it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use weft_e2e::event;

    use super::*;

    fn event_with_ttl(ttl: Option<&str>) -> Event {
        let e = event("t").id("1").source("/s");
        match ttl {
            Some(t) => e.ext(TTL_EXTENSION, t),
            None => e,
        }
        .build()
    }

    #[test]
    fn default_ttl_is_set_and_arrival_time_stamped() {
        let mut e = event_with_ttl(None);
        admit(&mut e, "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(ttl(&e).unwrap(), Some(255));
        assert_eq!(
            e.extension(ARRIVAL_EXTENSION),
            Some(&AttributeValue::String("2024-01-01T00:00:00Z".into()))
        );
    }

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_requests_trace_context_is_kept_unless_the_event_has_its_own() {
        let text = |e: &Event, name| e.extension(name).map(|v| v.as_str().into_owned());
        let mut e = event_with_ttl(None);
        adopt_trace_context(&mut e, Some(PARENT), Some("congo=t61rcWkgMzE"));
        assert_eq!(text(&e, TRACEPARENT).as_deref(), Some(PARENT));
        assert_eq!(text(&e, TRACESTATE).as_deref(), Some("congo=t61rcWkgMzE"));

        let own = "00-11111111111111111111111111111111-2222222222222222-00";
        let mut e = event("t").ext(TRACEPARENT, own).build();
        adopt_trace_context(&mut e, Some(PARENT), Some("congo=x"));
        assert_eq!(text(&e, TRACEPARENT).as_deref(), Some(own));
        assert_eq!(text(&e, TRACESTATE), None);
    }

    #[test]
    fn an_invalid_traceparent_header_is_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            let mut e = event_with_ttl(None);
            adopt_trace_context(&mut e, Some(bad), None);
            assert_eq!(e.extension(TRACEPARENT), None, "{bad}");
        }
        // A later version may append fields.
        let mut e = event_with_ttl(None);
        let v1 = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-cafe";
        adopt_trace_context(&mut e, Some(v1), None);
        assert!(e.extension(TRACEPARENT).is_some());
    }

    #[test]
    fn spent_or_invalid_ttl_is_refused() {
        assert_eq!(
            admit(&mut event_with_ttl(Some("0")), "t"),
            Err(AdmitError::TtlExpired { ttl: 0 })
        );
        assert!(admit(&mut event_with_ttl(Some("-3")), "t").is_err());
        assert!(matches!(
            admit(&mut event_with_ttl(Some("many")), "t"),
            Err(AdmitError::InvalidTtl { .. })
        ));
        let mut e = event_with_ttl(Some("5"));
        admit(&mut e, "t").unwrap();
        assert_eq!(ttl(&e).unwrap(), Some(5));
    }
}
