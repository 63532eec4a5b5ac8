//! What the ingress adds to every event it accepts, producers' and replies alike: the
//! arrival time and the hop limit that stops reply loops.

use weft_config::event::{AttributeValue, Event};

/// The extension carrying the remaining hops before an event is dropped.
pub const TTL_EXTENSION: &str = "knativebrokerttl";
/// The extension carrying the time the ingress accepted an event.
pub const ARRIVAL_EXTENSION: &str = "knativearrivaltime";
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
    use super::*;

    fn event_with_ttl(ttl: Option<&str>) -> Event {
        let mut e = Event::new("1", "/s", "t").unwrap();
        if let Some(t) = ttl {
            e.set_extension(TTL_EXTENSION, AttributeValue::String(t.into()))
                .unwrap();
        }
        e
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
