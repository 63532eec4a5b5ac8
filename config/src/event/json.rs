//! The CloudEvents JSON event format (structured and batched modes), without touching `data`.
//!
//! Reading borrows every member as raw JSON text; `data` becomes a slice of the request
//! body (no copy, no re-encoding). Writing emits attributes with serde's escaping and
//! embeds JSON data verbatim.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

use super::{AttributeValue, Event, EventError, SpecVersion};

/// Parses one event in the JSON format. `body` is the whole buffer holding `raw`'s text, so
/// JSON data can be kept as a slice of it.
pub(crate) fn parse_event(body: &Bytes) -> Result<Event, EventError> {
    let members: BTreeMap<String, &RawValue> = serde_json::from_slice(body).map_err(malformed)?;
    from_members(body, members)
}

/// Parses a JSON array of events (the batched content mode).
pub(crate) fn parse_batch(body: &Bytes) -> Result<Vec<Event>, EventError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(malformed)?;
    items
        .into_iter()
        .map(|raw| {
            let members: BTreeMap<String, &RawValue> =
                serde_json::from_str(raw.get()).map_err(malformed)?;
            from_members(body, members)
        })
        .collect()
}

fn malformed(e: serde_json::Error) -> EventError {
    EventError::MalformedJson {
        reason: e.to_string(),
    }
}

fn from_members(body: &Bytes, mut m: BTreeMap<String, &RawValue>) -> Result<Event, EventError> {
    let specversion = required_string(&mut m, "specversion")?;
    let version = SpecVersion::parse(&specversion)?;
    let id = required_string(&mut m, "id")?;
    let source = required_string(&mut m, "source")?;
    let ty = required_string(&mut m, "type")?;
    let mut event = Event::new(id, source, ty)?;
    event.set_specversion(version);
    event.set_datacontenttype(optional_string(&mut m, "datacontenttype")?)?;
    event.set_dataschema(optional_string(&mut m, "dataschema")?)?;
    event.set_subject(optional_string(&mut m, "subject")?)?;
    event.set_time(optional_string(&mut m, "time")?)?;

    let data = m.remove("data").filter(|raw| raw.get() != "null");
    let data_base64 = optional_string(&mut m, "data_base64")?;
    match (data, data_base64) {
        (Some(_), Some(_)) => return Err(EventError::DataConflict),
        (None, Some(b64)) => {
            let bytes =
                BASE64
                    .decode(b64.as_bytes())
                    .map_err(|_| EventError::InvalidAttributeValue {
                        name: "data_base64".into(),
                        reason: "expected standard base64",
                    })?;
            event.set_data(Some(Bytes::from(bytes)));
        }
        (Some(raw), None) => {
            let json_type = event.datacontenttype().is_none_or(is_json_content_type);
            if event.datacontenttype().is_none() {
                // The JSON format implies application/json; say so, so that binary-mode
                // delivery labels the body correctly.
                event.set_datacontenttype(Some("application/json".into()))?;
            }
            let text = raw.get();
            let data = if !json_type && text.starts_with('"') {
                let s: String = serde_json::from_str(text).map_err(malformed)?;
                Bytes::from(s)
            } else {
                body.slice_ref(text.as_bytes())
            };
            event.set_data(Some(data));
        }
        (None, None) => {}
    }

    for (name, raw) in m {
        let value = match serde_json::from_str::<serde_json::Value>(raw.get()).map_err(malformed)? {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => AttributeValue::String(s),
            serde_json::Value::Bool(b) => AttributeValue::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => AttributeValue::Integer(i),
                None => {
                    return Err(EventError::InvalidAttributeValue {
                        name,
                        reason: "numbers must be 32-bit integers",
                    });
                }
            },
            _ => {
                return Err(EventError::InvalidAttributeValue {
                    name,
                    reason: "expected a string, integer or boolean",
                });
            }
        };
        event.set_extension(name, value)?;
    }
    Ok(event)
}

fn optional_string(
    m: &mut BTreeMap<String, &RawValue>,
    name: &'static str,
) -> Result<Option<String>, EventError> {
    let Some(raw) = m.remove(name) else {
        return Ok(None);
    };
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(v) => Ok(v),
        Err(_) => Err(EventError::InvalidAttributeValue {
            name: name.into(),
            reason: "expected a string",
        }),
    }
}

fn required_string(
    m: &mut BTreeMap<String, &RawValue>,
    name: &'static str,
) -> Result<String, EventError> {
    match optional_string(m, name)? {
        Some(s) if s.is_empty() => Err(EventError::EmptyAttribute { name: name.into() }),
        Some(s) => Ok(s),
        None => Err(EventError::MissingAttribute { name }),
    }
}

/// Whether a media type is JSON: `application/json`, `text/json` or any `…+json`.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Writes an event in the JSON format. JSON data is embedded as is; other text data
/// becomes a JSON string; anything else goes to `data_base64`.
pub(crate) fn write_event(event: &Event, out: &mut BytesMut) {
    out.put_u8(b'{');
    write_member(out, "specversion", event.specversion().as_str(), true);
    write_member(out, "id", event.id(), false);
    write_member(out, "source", event.source(), false);
    write_member(out, "type", event.ty(), false);
    let optional = [
        ("datacontenttype", event.datacontenttype()),
        ("dataschema", event.dataschema()),
        ("subject", event.subject()),
        ("time", event.time()),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            write_member(out, name, v, false);
        }
    }
    for (name, value) in event.extensions() {
        out.put_slice(b",\"");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\":");
        match value {
            AttributeValue::String(s) => write_json_string(out, s),
            AttributeValue::Integer(i) => out.put_slice(i.to_string().as_bytes()),
            AttributeValue::Boolean(b) => out.put_slice(if *b { b"true" } else { b"false" }),
        }
    }
    if let Some(data) = event.data() {
        let json_type = event.datacontenttype().is_none_or(is_json_content_type);
        if json_type && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
            out.put_slice(b",\"data\":");
            out.put_slice(data);
        } else if let (false, Ok(text)) =
            (event.datacontenttype().is_none(), std::str::from_utf8(data))
        {
            out.put_slice(b",\"data\":");
            write_json_string(out, text);
        } else {
            write_member(out, "data_base64", &BASE64.encode(data), false);
        }
    }
    out.put_u8(b'}');
}

fn write_member(out: &mut BytesMut, name: &str, value: &str, first: bool) {
    if !first {
        out.put_u8(b',');
    }
    out.put_u8(b'"');
    out.put_slice(name.as_bytes());
    out.put_slice(b"\":");
    write_json_string(out, value);
}

fn write_json_string(out: &mut BytesMut, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let encoded = serde_json::to_vec(s).expect("strings always serialise");
    out.put_slice(&encoded);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Event, EventError> {
        parse_event(&Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn json_data_is_kept_byte_for_byte() {
        let body = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"b": 1, "a":[2.50]}}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.data().unwrap().as_ref(), br#"{"b": 1, "a":[2.50]}"#);
        assert_eq!(e.datacontenttype(), Some("application/json"));
    }

    #[test]
    fn text_data_is_unescaped_and_base64_decoded() {
        let e = parse(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"a\"b"}"#).unwrap();
        assert_eq!(e.data().unwrap().as_ref(), b"a\"b");
        let e = parse(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(e.data().unwrap().as_ref(), &[0u8, 1, 2]);
    }

    #[test]
    fn malformed_events_are_rejected_with_a_reason() {
        let cases = [
            (
                r#"{"specversion":"1.0","source":"/s","type":"t"}"#,
                "missing required attribute `id`",
            ),
            (
                r#"{"specversion":"1.0","id":"1","type":"t"}"#,
                "missing required attribute `source`",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s"}"#,
                "missing required attribute `type`",
            ),
            (
                r#"{"id":"1","source":"/s","type":"t"}"#,
                "missing required attribute `specversion`",
            ),
            (
                r#"{"specversion":"19.0","id":"1","source":"/s","type":"t"}"#,
                "unsupported specversion `19.0`: expected 1.0 or 0.3",
            ),
            (
                r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#,
                "attribute `id` must not be empty",
            ),
            (
                r#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#,
                "invalid value for attribute `id`: expected a string",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
                "`data` and `data_base64` are mutually exclusive",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}"#,
                "invalid attribute name `Bad`: names use only a-z and 0-9",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","x":1.5}"#,
                "invalid value for attribute `x`: numbers must be 32-bit integers",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body).unwrap_err().to_string(), want, "{body}");
        }
        assert!(matches!(
            parse("{not json"),
            Err(EventError::MalformedJson { .. })
        ));
    }

    #[test]
    fn write_then_parse_round_trips() {
        let mut e = Event::new("1", "/s", "t").unwrap();
        e.set_extension("n", AttributeValue::Integer(-4)).unwrap();
        e.set_extension("b", AttributeValue::Boolean(true)).unwrap();
        e.set_extension("s", AttributeValue::String("x\"y".into()))
            .unwrap();
        for (ct, data) in [
            (Some("application/json"), &br#"{"k":[1,2]}"#[..]),
            (Some("text/plain"), b"hello"),
            (Some("application/octet-stream"), &[0xff, 0, 1][..]),
            (None, b"not json"),
        ] {
            e.set_datacontenttype(ct.map(String::from)).unwrap();
            e.set_data(Some(Bytes::copy_from_slice(data)));
            let mut out = BytesMut::new();
            write_event(&e, &mut out);
            let back = parse_event(&out.freeze()).unwrap();
            assert_eq!(back.data(), e.data());
            assert_eq!(back.extension("n"), Some(&AttributeValue::Integer(-4)));
            assert_eq!(back.extension("s"), e.extension("s"));
        }
    }

    #[test]
    fn batches_parse_every_event() {
        let body = Bytes::from_static(br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t","data":[1]}]"#);
        let events = parse_batch(&body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data().unwrap().as_ref(), b"[1]");
    }
}
