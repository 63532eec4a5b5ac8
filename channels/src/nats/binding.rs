//! The CloudEvents NATS protocol binding (binary content mode) as Weft stores events.
//!
//! The attribute headers are the shared binding of [`weft_config::event::headers`]:
//! `ce-<name>`, percent-encoded as the binding requires (HTTP's rule: space, `"`, `%` and
//! anything outside printable ASCII); `datacontenttype` is `ce-datacontenttype`, as the
//! NATS binding has it; and Weft's extension record `weft-extensions`
//! (`n=Integer,flag=Boolean,partitionkey=String`) restores each extension's type and order,
//! which a NATS header map does not keep. Messages of earlier Weft versions carry the same
//! record and read back the same. Without a record, extensions come back as strings,
//! sorted by name.
//!
//! What is NATS's own, and so here:
//! - The data is the payload, untouched; an empty payload alone means no data, so
//!   `weft-data: empty` marks data of zero bytes.
//! - `content-type: application/cloudevents+json` means structured mode (a JSON event as
//!   the payload, as the `cloudevents-sdk` crate's NATS binding writes with no headers at
//!   all, which Weft does not detect); any other `content-type` is `datacontenttype` where
//!   `ce-datacontenttype` is absent.
//! - Header names are case-insensitive, and values may be double-quoted and padded with
//!   blanks, as other producers write them.

use async_nats::HeaderMap;
use bytes::Bytes;
use weft_config::event::headers::{self, HeaderBinding};
use weft_config::event::http as http_binding;
use weft_config::{Event, EventError};

/// NATS's binary mode.
const BINDING: HeaderBinding = HeaderBinding {
    prefix: "ce-",
    percent_encoded: true,
    content_type: None,
    extensions: Some("weft-extensions"),
    legacy_types: None,
};
/// Marks data of zero bytes.
const DATA: &str = "weft-data";
/// The header that selects structured mode.
const CONTENT_TYPE: &str = "content-type";

/// The headers and payload of an event.
pub(super) fn encode(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    BINDING.encode(event, |name, value| {
        headers.insert(name, value.into_owned());
    });
    let data = event.data().cloned().unwrap_or_default();
    if event.data().is_some_and(Bytes::is_empty) {
        headers.insert(DATA, "empty");
    }
    (headers, data)
}

/// The event a message carries.
pub(super) fn decode(headers: Option<&HeaderMap>, payload: Bytes) -> Result<Event, EventError> {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    // Header names are case-insensitive in NATS as in HTTP; a header map keeps no order, so
    // extensions without a record are read sorted by name.
    let mut named: Vec<(String, &str)> = (headers.iter())
        .filter_map(|(name, values)| {
            let name = AsRef::<str>::as_ref(name).to_ascii_lowercase();
            Some((name, values.first()?.as_str()))
        })
        .collect();
    named.sort_unstable();
    let header = |wanted: &str| named.iter().find(|(n, _)| n == wanted).map(|(_, v)| *v);
    let content_type = header(CONTENT_TYPE);
    if let Some(ct) = content_type
        && ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    {
        let mut http = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(ct).map_err(|_| EventError::InvalidHeader {
            name: CONTENT_TYPE.into(),
        })?;
        http.insert(http::header::CONTENT_TYPE, value);
        return http_binding::decode_one(&http, payload);
    }
    let empty_data = header(DATA) == Some("empty");
    let mut decoder = BINDING.decoder();
    for (name, value) in &named {
        decoder.header(name, unquote(name, value)?.as_bytes())?;
    }
    let mut event = decoder.finish()?;
    if event.datacontenttype().is_none()
        && let Some(ct) = content_type
    {
        event.set_datacontenttype(Some(ct.to_owned()))?;
    }
    if !payload.is_empty() || empty_data {
        event.set_data(Some(payload));
    }
    Ok(event)
}

/// Percent-encodes a value of Weft's own headers as the binding encodes attributes.
pub(super) fn percent_encode(value: &str) -> String {
    headers::percent_encode(value).into_owned()
}

/// Reads a value of Weft's own headers: unquoted, then percent-decoded.
pub(super) fn percent_decode(name: &str, raw: &str) -> Result<String, EventError> {
    headers::percent_decode(name, unquote(name, raw)?.as_bytes())
}

/// Trims blanks and, if the value is double-quoted, removes the quotes and unescapes it.
fn unquote<'v>(name: &str, raw: &'v str) -> Result<std::borrow::Cow<'v, str>, EventError> {
    let raw = raw.trim_matches([' ', '\t']);
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Ok(raw.into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars
                .next()
                .ok_or_else(|| EventError::InvalidHeader { name: name.into() })?
        } else {
            c
        });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use weft_config::AttributeValue;

    use super::*;

    fn sample() -> Event {
        let mut e = Event::new("id 1", "/sourcé", "com.example.t").unwrap();
        e.set_subject(Some("a \"quoted\" 100% subject\r\n".into()))
            .unwrap();
        e.set_time(Some("2024-01-01T00:00:00Z".into())).unwrap();
        e.set_dataschema(Some("https://example.com/s".into()))
            .unwrap();
        e.set_datacontenttype(Some("application/json".into()))
            .unwrap();
        e.set_extension("priority", AttributeValue::Integer(-7))
            .unwrap();
        e.set_extension("flag", AttributeValue::Boolean(true))
            .unwrap();
        e.set_extension("partitionkey", AttributeValue::String("k".into()))
            .unwrap();
        e.set_extension("looks", AttributeValue::String("12".into()))
            .unwrap();
        e.set_data(Some(Bytes::from_static(b"{\"a\":1}")));
        e
    }

    fn round_trip(event: &Event) -> Event {
        let (headers, payload) = encode(event);
        decode(Some(&headers), payload).unwrap()
    }

    #[test]
    fn round_trips_every_attribute_and_type() {
        let e = sample();
        let back = round_trip(&e);
        assert_eq!(
            back.extension("priority"),
            Some(&AttributeValue::Integer(-7))
        );
        assert_eq!(
            back.extension("looks"),
            Some(&AttributeValue::String("12".into()))
        );
        assert_eq!(back, e, "every attribute, type and the extensions' order");
        let bare = Event::new("1", "/s", "t").unwrap();
        assert_eq!(round_trip(&bare), bare);
        let mut empty = bare.clone();
        empty.set_data(Some(Bytes::new()));
        assert_eq!(round_trip(&empty), empty);
    }

    #[test]
    fn reads_messages_of_the_previous_version() {
        // `sample()` as Weft wrote it before the shared binding, header by header.
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "id%201"),
            ("ce-source", "/sourc%C3%A9"),
            ("ce-type", "com.example.t"),
            ("ce-datacontenttype", "application/json"),
            ("ce-dataschema", "https://example.com/s"),
            ("ce-subject", "a%20%22quoted%22%20100%25%20subject%0D%0A"),
            ("ce-time", "2024-01-01T00:00:00Z"),
            ("ce-priority", "-7"),
            ("ce-flag", "true"),
            ("ce-partitionkey", "k"),
            ("ce-looks", "12"),
            (
                "weft-extensions",
                "priority=Integer,flag=Boolean,partitionkey=String,looks=String",
            ),
        ] {
            headers.insert(name, value);
        }
        let e = decode(Some(&headers), Bytes::from_static(b"{\"a\":1}")).unwrap();
        assert_eq!(e, sample(), "same attributes, types and order");
        assert_eq!(e.extension("flag"), Some(&AttributeValue::Boolean(true)));
        // What this version writes is what the previous one wrote.
        let (written, _) = encode(&sample());
        let mut names: Vec<_> = written.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        for name in names {
            assert_eq!(
                written.get(name.as_str()).map(|v| v.as_str()),
                headers.get(name.as_str()).map(|v| v.as_str()),
                "{name}"
            );
        }
        assert_eq!(written.len(), headers.len());
    }

    #[test]
    fn headers_follow_the_binding() {
        let (headers, payload) = encode(&sample());
        let get = |n: &str| headers.get(n).map(|v| v.as_str().to_owned());
        assert_eq!(get("ce-id").as_deref(), Some("id%201"));
        assert_eq!(get("ce-source").as_deref(), Some("/sourc%C3%A9"));
        assert_eq!(
            get("ce-subject").as_deref(),
            Some("a%20%22quoted%22%20100%25%20subject%0D%0A")
        );
        assert_eq!(
            get("ce-datacontenttype").as_deref(),
            Some("application/json")
        );
        assert_eq!(get("ce-priority").as_deref(), Some("-7"));
        assert_eq!(&payload[..], b"{\"a\":1}");
    }

    #[test]
    fn reads_what_other_producers_write() {
        let mut headers = HeaderMap::new();
        headers.insert("CE-SpecVersion", "1.0");
        headers.insert("ce-id", "\"a \\\"b\\\"\"");
        headers.insert("ce-source", "/s%c3%a9");
        headers.insert("ce-type", "t");
        headers.insert("ce-n", "3");
        headers.insert("content-type", "text/plain");
        let e = decode(Some(&headers), Bytes::from_static(b"hi")).unwrap();
        assert_eq!(e.id(), "a \"b\"");
        assert_eq!(e.source(), "/sé");
        assert_eq!(e.datacontenttype(), Some("text/plain"));
        assert_eq!(e.extension("n"), Some(&AttributeValue::String("3".into())));

        let mut structured = HeaderMap::new();
        structured.insert("content-type", "application/cloudevents+json");
        let body = br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"k":1}}"#;
        let e = decode(Some(&structured), Bytes::from_static(body)).unwrap();
        assert_eq!(e.id(), "x");
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert!(matches!(
            decode(None, Bytes::from_static(b"garbage")),
            Err(EventError::MissingAttribute { .. })
        ));
        let (mut headers, payload) = encode(&sample());
        headers.insert("ce-source", "%C0%A0");
        assert!(
            decode(Some(&headers), payload.clone()).is_err(),
            "overlong UTF-8"
        );
        let (mut headers, _) = encode(&sample());
        headers.insert("weft-extensions", "priority=Boolean");
        assert!(decode(Some(&headers), payload).is_err());
    }
}
