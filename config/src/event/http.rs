//! The CloudEvents HTTP protocol binding: reading and writing events in binary, structured
//! and batched content modes.
//!
//! Mode detection follows the binding: a `Content-Type` starting with
//! `application/cloudevents-batch` is batched, `application/cloudevents` is structured, and
//! anything else is binary: attributes in `ce-` headers, percent-encoded UTF-8, written and
//! read by the shared [`headers`](super::headers) binding; the `Content-Type` header is
//! `datacontenttype` as it is. What is HTTP's own here: the mode detection, structured and
//! batched JSON, and that no extension record is written or read (sinks see plain
//! CloudEvents, so integer and boolean extensions arrive as strings).

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::headers::HeaderBinding;
use super::json::{self, is_json_content_type};
use super::{Event, EventError};

/// HTTP's binary mode: `ce-` headers, percent-encoded, `Content-Type` for
/// `datacontenttype`, no extension record.
pub const BINDING: HeaderBinding = HeaderBinding {
    prefix: "ce-",
    percent_encoded: true,
    content_type: Some("content-type"),
    extensions: None,
    legacy_types: None,
};

/// The media type of a structured-mode JSON event.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// The media type of a batch of JSON events.
pub const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// The content mode a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Attributes in `ce-` headers, data as the body.
    Binary,
    /// One event as a JSON document.
    Structured,
    /// A JSON array of events.
    Batched,
}

/// Which mode a `Content-Type` selects.
pub fn mode(headers: &HeaderMap) -> Mode {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let lower = ct.trim_start().to_ascii_lowercase();
    if lower.starts_with("application/cloudevents-batch") {
        Mode::Batched
    } else if lower.starts_with("application/cloudevents") {
        Mode::Structured
    } else {
        Mode::Binary
    }
}

/// Reads the events of one HTTP message: one for binary and structured mode, any number
/// for batched mode.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Vec<Event>, EventError> {
    match mode(headers) {
        Mode::Binary => Ok(vec![decode_binary(headers, body)?]),
        Mode::Structured => {
            require_json(headers)?;
            Ok(vec![json::parse_event(&body)?])
        }
        Mode::Batched => {
            require_json(headers)?;
            json::parse_batch(&body)
        }
    }
}

/// Reads a reply: like [`decode`], but a batch is not a valid reply.
pub fn decode_one(headers: &HeaderMap, body: Bytes) -> Result<Event, EventError> {
    match mode(headers) {
        Mode::Batched => Err(EventError::UnsupportedFormat {
            content_type: BATCH_JSON.into(),
        }),
        _ => decode(headers, body).map(|mut v| v.remove(0)),
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), EventError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if is_json_content_type(ct) {
        Ok(())
    } else {
        Err(EventError::UnsupportedFormat {
            content_type: ct.into(),
        })
    }
}

fn decode_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, EventError> {
    let mut decoder = BINDING.decoder();
    for (name, value) in headers {
        decoder.header(name.as_str(), value.as_bytes())?;
    }
    let mut event = decoder.finish()?;
    if !body.is_empty() {
        event.set_data(Some(body));
    }
    Ok(event)
}

/// Writes an event in binary mode: attributes into `headers`, and returns the body.
pub fn encode_binary(event: &Event, headers: &mut HeaderMap) -> Bytes {
    BINDING.encode(event, |name, value| {
        // Names are `ce-` and an attribute name ([a-z0-9]+, checked on the way in) or
        // `content-type`; values are encoded into printable ASCII: both always valid.
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(&value).expect("valid header value");
        headers.insert(name, value);
    });
    event.data().cloned().unwrap_or_default()
}

/// Writes an event in structured mode; the `Content-Type` is [`STRUCTURED_JSON`].
pub fn encode_structured(event: &Event) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + event.data().map_or(0, |d| d.len()));
    json::write_event(event, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttributeValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn binary_mode_reads_headers_and_body() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "/src"),
            ("ce-type", "com.example"),
            ("ce-subject", "caf%C3%A9%20au%20lait"),
            ("ce-priority", "3"),
            ("content-type", "text/plain"),
        ]);
        let events = decode(&h, Bytes::from_static(b"hi")).unwrap();
        let e = &events[0];
        assert_eq!((e.id(), e.source(), e.ty()), ("42", "/src", "com.example"));
        assert_eq!(e.subject(), Some("café au lait"));
        assert_eq!(
            e.extension("priority"),
            Some(&AttributeValue::String("3".into()))
        );
        assert_eq!(e.datacontenttype(), Some("text/plain"));
        assert_eq!(e.data().unwrap().as_ref(), b"hi");
    }

    #[test]
    fn binary_mode_requires_each_attribute() {
        let full = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ];
        for skip in 0..full.len() {
            let pairs: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            let err = decode(&headers(&pairs), Bytes::new()).unwrap_err();
            assert!(matches!(err, EventError::MissingAttribute { .. }), "{err}");
        }
        let bad = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-x", "%FF"),
        ]);
        assert!(matches!(
            decode(&bad, Bytes::new()),
            Err(EventError::InvalidHeader { .. })
        ));
    }

    #[test]
    fn binary_round_trip_keeps_attributes_and_data() {
        let mut e = Event::new("id 1", "/sourcé", "t").unwrap();
        e.set_specversion(crate::event::SpecVersion::V03);
        e.set_subject(Some("a \"quoted\" 100% ünïcode".into()))
            .unwrap();
        e.set_time(Some("2024-01-01T00:00:00Z".into())).unwrap();
        e.set_dataschema(Some("https://example.com/s".into()))
            .unwrap();
        e.set_extension("n", AttributeValue::Integer(7)).unwrap();
        e.set_extension("label", AttributeValue::String("x y".into()))
            .unwrap();
        e.set_datacontenttype(Some("application/json".into()))
            .unwrap();
        e.set_data(Some(Bytes::from_static(b"{}")));
        let mut h = HeaderMap::new();
        let body = encode_binary(&e, &mut h);
        assert_eq!(h["ce-id"], "id%201");
        assert!(
            !h.keys().any(|k| k.as_str().starts_with("weft")),
            "sinks see plain CloudEvents: {h:?}"
        );
        let back = decode(&h, body).unwrap().remove(0);
        // HTTP carries no extension record: the integer comes back as its string.
        e.set_extension("n", AttributeValue::String("7".into()))
            .unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn content_type_goes_out_as_it_came_in() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-subject", "a b"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        let e = decode(&h, Bytes::from_static(b"{}")).unwrap().remove(0);
        assert_eq!(e.datacontenttype(), Some("application/json; charset=utf-8"));
        let mut out = HeaderMap::new();
        encode_binary(&e, &mut out);
        assert_eq!(out[CONTENT_TYPE], "application/json; charset=utf-8");
        assert_eq!(
            out["ce-subject"], "a%20b",
            "ce- attributes are still encoded"
        );

        // A structured event's datacontenttype that no header can hold is encoded.
        let mut e = Event::new("1", "/s", "t").unwrap();
        e.set_datacontenttype(Some("text/plain; name=\"café\"".into()))
            .unwrap();
        let mut out = HeaderMap::new();
        encode_binary(&e, &mut out);
        assert_eq!(out[CONTENT_TYPE], "text/plain;%20name=%22caf%C3%A9%22");
    }

    #[test]
    fn modes_are_detected_from_content_type() {
        assert_eq!(
            mode(&headers(&[("content-type", "application/json")])),
            Mode::Binary
        );
        assert_eq!(
            mode(&headers(&[(
                "content-type",
                "application/cloudevents+json; charset=utf-8"
            )])),
            Mode::Structured
        );
        assert_eq!(
            mode(&headers(&[("content-type", BATCH_JSON)])),
            Mode::Batched
        );
        assert!(matches!(
            decode(
                &headers(&[("content-type", "application/cloudevents+xml")]),
                Bytes::new()
            ),
            Err(EventError::UnsupportedFormat { .. })
        ));
    }
}
