//! The CloudEvents NATS protocol binding (binary content mode) as Weft stores events.
//!
//! Every attribute travels as a `ce-<name>` header, percent-encoded as the binding
//! requires (space, `"`, `%` and anything outside printable ASCII), and the data is the
//! payload, untouched. `datacontenttype` is `ce-datacontenttype`, as the binding has it.
//!
//! The binding carries every attribute as its canonical string, and a header map keeps no
//! order, so two headers of Weft's own make the round trip exact; other readers ignore
//! them:
//! - `weft-extensions`: every extension in order with its type, as
//!   `n=Integer,flag=Boolean,partitionkey=String`. Without it, extensions come back as
//!   strings, sorted by name.
//! - `weft-data: empty`: the event has data of zero bytes (an empty payload alone means
//!   no data).
//!
//! Reading also accepts what other producers of the binding write: structured mode
//! (`content-type: application/cloudevents+json`), double-quoted header values, lower-case
//! hex, and `content-type` for `datacontenttype` where `ce-datacontenttype` is absent.

use async_nats::HeaderMap;
use bytes::Bytes;
use weft_config::event::http as http_binding;
use weft_config::{AttributeValue, Event, EventError};

const EXTENSIONS: &str = "weft-extensions";
const DATA: &str = "weft-data";

/// The headers and payload of an event.
pub(super) fn encode(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| headers.insert(name, percent_encode(value));
    put("ce-specversion", event.specversion().as_str());
    put("ce-id", event.id());
    put("ce-source", event.source());
    put("ce-type", event.ty());
    let optional = [
        ("ce-datacontenttype", event.datacontenttype()),
        ("ce-dataschema", event.dataschema()),
        ("ce-subject", event.subject()),
        ("ce-time", event.time()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            put(name, value);
        }
    }
    let mut order = String::new();
    for (name, value) in event.extensions() {
        put(&format!("ce-{name}"), &value.as_str());
        if !order.is_empty() {
            order.push(',');
        }
        order.push_str(name);
        order.push_str(match value {
            AttributeValue::String(_) => "=String",
            AttributeValue::Integer(_) => "=Integer",
            AttributeValue::Boolean(_) => "=Boolean",
        });
    }
    if !order.is_empty() {
        headers.insert(EXTENSIONS, order);
    }
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
    // Header names are case-insensitive in NATS as in HTTP.
    let mut attributes: Vec<(String, String)> = Vec::new();
    let (mut content_type, mut order, mut empty_data) = (None, None, false);
    for (name, values) in headers.iter() {
        let name = AsRef::<str>::as_ref(name).to_ascii_lowercase();
        let Some(value) = values.first() else {
            continue;
        };
        if let Some(attribute) = name.strip_prefix("ce-") {
            attributes.push((attribute.to_owned(), percent_decode(&name, value.as_str())?));
        } else if name == "content-type" {
            content_type = Some(value.as_str().to_owned());
        } else if name == EXTENSIONS {
            order = Some(value.as_str().to_owned());
        } else if name == DATA {
            empty_data = value.as_str() == "empty";
        }
    }
    if let Some(ct) = &content_type
        && ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    {
        let mut http = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(ct).map_err(|_| EventError::InvalidHeader {
            name: "content-type".into(),
        })?;
        http.insert(http::header::CONTENT_TYPE, value);
        return http_binding::decode_one(&http, payload);
    }
    let take = |attributes: &mut Vec<(String, String)>, name: &'static str| {
        take_named(attributes, name).map_err(|()| EventError::MissingAttribute { name })
    };
    let specversion = take(&mut attributes, "specversion")?;
    let mut event = Event::new(
        take(&mut attributes, "id")?,
        take(&mut attributes, "source")?,
        take(&mut attributes, "type")?,
    )?;
    event.set_attribute_str("specversion", specversion)?;
    // Extensions Weft wrote, in their order and with their types.
    for (name, ty) in order
        .iter()
        .flat_map(|o| o.split(','))
        .filter_map(|p| p.split_once('='))
    {
        let Ok(text) = take_named(&mut attributes, name) else {
            continue;
        };
        let invalid = |reason| EventError::InvalidAttributeValue {
            name: name.to_owned(),
            reason,
        };
        let value = match ty {
            "Integer" => AttributeValue::Integer(
                text.parse()
                    .map_err(|_| invalid("expected a 32-bit integer"))?,
            ),
            "Boolean" => AttributeValue::Boolean(match text.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid("expected true or false")),
            }),
            _ => AttributeValue::String(text),
        };
        event.set_extension(name, value)?;
    }
    // Everything else: context attributes, and extensions of other producers by name.
    attributes.sort();
    for (name, value) in attributes {
        event.set_attribute_str(&name, value)?;
    }
    if event.datacontenttype().is_none()
        && let Some(ct) = content_type
    {
        event.set_datacontenttype(Some(ct))?;
    }
    if !payload.is_empty() || empty_data {
        event.set_data(Some(payload));
    }
    Ok(event)
}

/// Removes the attribute `name` and returns its value.
fn take_named(attributes: &mut Vec<(String, String)>, name: &str) -> Result<String, ()> {
    let at = attributes.iter().position(|(n, _)| n == name).ok_or(())?;
    Ok(attributes.swap_remove(at).1)
}

/// Percent-encodes a header value as the binding requires.
pub(super) fn percent_encode(value: &str) -> String {
    let needs = |b: u8| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'%';
    if !value.bytes().any(needs) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if needs(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Unquotes a double-quoted value, then percent-decodes it; the result must be UTF-8.
pub(super) fn percent_decode(name: &str, raw: &str) -> Result<String, EventError> {
    let invalid = || EventError::InvalidHeader { name: name.into() };
    let raw = raw.trim_matches([' ', '\t']);
    let unquoted;
    let raw = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().ok_or_else(invalid)?
                } else {
                    c
                });
            }
            unquoted = out;
            unquoted.as_str()
        }
        None => raw,
    };
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let raw = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(invalid)?;
            let hex = std::str::from_utf8(hex).map_err(|_| invalid())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
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
        headers.insert(EXTENSIONS, "priority=Boolean");
        assert!(decode(Some(&headers), payload).is_err());
    }
}
