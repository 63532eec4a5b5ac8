//! The CloudEvents Kafka protocol binding, binary content mode: how an [`Event`] becomes a
//! Kafka record and back.
//!
//! - Every context attribute and extension is a header `ce_<name>` with its value as
//!   UTF-8 (the binding does not percent-encode), in the event's attribute order.
//! - `datacontenttype` is the `content-type` header; the data is the record's value,
//!   untouched (an event without data has a null value).
//! - The `partitionkey` extension, when present, is also the record's key, so Kafka's
//!   partitioner keeps each key's events in one partition.
//! - Header values are strings, which would turn integer and boolean extensions into
//!   strings; Weft adds `weft_types` (e.g. `priority=integer,urgent=boolean`) for those,
//!   so an event reads back exactly as it was appended. Other consumers ignore it.
//!
//! Knative's Kafka broker writes the same binary mode, so its consumers read Weft's
//! topics and the other way round.

use bytes::Bytes;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use weft_config::event::SpecVersion;
use weft_config::{AttributeValue, Event, EventError};

/// The header carrying `datacontenttype`.
const CONTENT_TYPE: &str = "content-type";
/// The prefix of attribute headers.
const PREFIX: &str = "ce_";
/// Weft's header naming the extensions whose type is not string.
const TYPES: &str = "weft_types";
/// The extension that becomes the record key.
const PARTITION_KEY: &str = "partitionkey";

/// The record key: the `partitionkey` extension, if the event has one.
pub(super) fn key(event: &Event) -> Option<String> {
    event
        .extension(PARTITION_KEY)
        .map(|v| v.as_str().into_owned())
}

/// The record headers of an event, followed by `extra` (Weft's own bookkeeping).
pub(super) fn headers(event: &Event, extra: &[(&str, &str)]) -> OwnedHeaders {
    let count = 8 + event.extensions().count() + extra.len();
    let put = |headers: OwnedHeaders, key: &str, value: &str| {
        headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        })
    };
    let mut headers = OwnedHeaders::new_with_capacity(count);
    headers = put(headers, "ce_specversion", event.specversion().as_str());
    headers = put(headers, "ce_id", event.id());
    headers = put(headers, "ce_source", event.source());
    headers = put(headers, "ce_type", event.ty());
    let optional = [
        ("ce_dataschema", event.dataschema()),
        ("ce_subject", event.subject()),
        ("ce_time", event.time()),
        (CONTENT_TYPE, event.datacontenttype()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            headers = put(headers, key, value);
        }
    }
    let mut types = String::new();
    for (name, value) in event.extensions() {
        headers = put(headers, &format!("{PREFIX}{name}"), &value.as_str());
        let ty = match value {
            AttributeValue::String(_) => continue,
            AttributeValue::Integer(_) => "integer",
            AttributeValue::Boolean(_) => "boolean",
        };
        if !types.is_empty() {
            types.push(',');
        }
        types.push_str(name);
        types.push('=');
        types.push_str(ty);
    }
    if !types.is_empty() {
        headers = put(headers, TYPES, &types);
    }
    for (key, value) in extra {
        headers = put(headers, key, value);
    }
    headers
}

/// The value of a header that is not an attribute (Weft's bookkeeping), if present.
pub(super) fn header<'a, H: Headers>(headers: Option<&'a H>, name: &str) -> Option<&'a str> {
    let headers = headers?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Reads an event from a record's headers and value.
pub(super) fn decode<H: Headers>(
    headers: Option<&H>,
    payload: Option<&[u8]>,
) -> Result<Event, EventError> {
    let text = |key: &str, value: Option<&[u8]>| -> Result<Option<String>, EventError> {
        value
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| EventError::InvalidHeader { name: key.into() })
            })
            .transpose()
    };
    let mut required: [Option<String>; 4] = Default::default();
    let mut types = String::new();
    if let Some(headers) = headers {
        for h in headers.iter() {
            let slot = match h.key {
                "ce_specversion" => 0,
                "ce_id" => 1,
                "ce_source" => 2,
                "ce_type" => 3,
                TYPES => {
                    types = text(h.key, h.value)?.unwrap_or_default();
                    continue;
                }
                _ => continue,
            };
            required[slot] = text(h.key, h.value)?;
        }
    }
    let [specversion, id, source, ty] = required;
    let missing = |name| EventError::MissingAttribute { name };
    let specversion = SpecVersion::parse(&specversion.ok_or(missing("specversion"))?)?;
    let mut event = Event::new(
        id.ok_or(missing("id"))?,
        source.ok_or(missing("source"))?,
        ty.ok_or(missing("type"))?,
    )?;
    event.set_specversion(specversion);
    let type_of = |name: &str| {
        types
            .split(',')
            .filter_map(|t| t.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    };
    for h in headers.into_iter().flat_map(|h| h.iter()) {
        let Some(value) = text(h.key, h.value)? else {
            continue;
        };
        if h.key == CONTENT_TYPE {
            event.set_datacontenttype(Some(value))?;
            continue;
        }
        let Some(name) = h.key.strip_prefix(PREFIX) else {
            continue;
        };
        if matches!(name, "specversion" | "id" | "source" | "type") {
            continue;
        }
        let invalid = |reason| EventError::InvalidAttributeValue {
            name: name.into(),
            reason,
        };
        match type_of(name) {
            Some("integer") => {
                let i = value
                    .parse()
                    .map_err(|_| invalid("weft_types says integer"))?;
                event.set_extension(name, AttributeValue::Integer(i))?;
            }
            Some("boolean") => {
                let b = value
                    .parse()
                    .map_err(|_| invalid("weft_types says boolean"))?;
                event.set_extension(name, AttributeValue::Boolean(b))?;
            }
            _ => event.set_attribute_str(name, value)?,
        }
    }
    event.set_data(payload.map(Bytes::copy_from_slice));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event::new("id-1", "/source", "com.example.type").unwrap();
        e.set_subject(Some("subj ü".into())).unwrap();
        e.set_time(Some("2024-01-01T00:00:00Z".into())).unwrap();
        e.set_dataschema(Some("https://example.com/s".into()))
            .unwrap();
        e.set_datacontenttype(Some("application/json".into()))
            .unwrap();
        e.set_extension("priority", AttributeValue::Integer(-7))
            .unwrap();
        e.set_extension("partitionkey", AttributeValue::String("k1".into()))
            .unwrap();
        e.set_extension("urgent", AttributeValue::Boolean(true))
            .unwrap();
        e.set_data(Some(Bytes::from_static(b"{\"a\":1}")));
        e
    }

    fn names(headers: &OwnedHeaders) -> Vec<&str> {
        headers.iter().map(|h| h.key).collect()
    }

    #[test]
    fn round_trips_every_attribute_in_order() {
        let e = sample();
        let h = headers(&e, &[("weft_reason", "x")]);
        assert_eq!(
            names(&h),
            [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_dataschema",
                "ce_subject",
                "ce_time",
                "content-type",
                "ce_priority",
                "ce_partitionkey",
                "ce_urgent",
                "weft_types",
                "weft_reason",
            ]
        );
        assert_eq!(
            header(Some(&h), "weft_types"),
            Some("priority=integer,urgent=boolean")
        );
        assert_eq!(header(Some(&h), "ce_subject"), Some("subj ü"));
        assert_eq!(key(&e).as_deref(), Some("k1"));
        let back = decode(Some(&h), e.data().map(|d| &d[..])).unwrap();
        assert_eq!(back, e);

        let mut bare = Event::new("1", "/s", "t").unwrap();
        bare.set_specversion(SpecVersion::V03);
        let h = headers(&bare, &[]);
        assert_eq!(header(Some(&h), "weft_types"), None);
        assert_eq!(key(&bare), None);
        assert_eq!(decode(Some(&h), None).unwrap(), bare);
        // Empty data is data, not the absence of it.
        bare.set_data(Some(Bytes::new()));
        assert_eq!(decode(Some(&h), Some(b"")).unwrap(), bare);
    }

    #[test]
    fn reads_records_of_other_producers() {
        // Knative's broker writes strings only, with no type header.
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some("x"),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("/s"),
            })
            .insert(Header {
                key: "ce_type",
                value: Some("t"),
            })
            .insert(Header {
                key: "ce_count",
                value: Some("3"),
            })
            .insert(Header {
                key: "traceparent",
                value: Some("00-ab"),
            });
        let e = decode(Some(&h), Some(b"hi")).unwrap();
        assert_eq!(
            e.extension("count"),
            Some(&AttributeValue::String("3".into()))
        );
        assert_eq!(
            e.extensions().count(),
            1,
            "non-ce_ headers are not attributes"
        );
        assert_eq!(e.data().unwrap(), &Bytes::from_static(b"hi"));
    }

    #[test]
    fn records_that_are_not_events_are_errors() {
        assert_eq!(
            decode::<OwnedHeaders>(None, Some(b"x")).unwrap_err(),
            EventError::MissingAttribute {
                name: "specversion"
            }
        );
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(&[0xff_u8][..]),
            });
        assert!(matches!(
            decode(Some(&h), None),
            Err(EventError::InvalidHeader { .. })
        ));
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some("1"),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("/s"),
            })
            .insert(Header {
                key: "ce_type",
                value: Some("t"),
            })
            .insert(Header {
                key: "ce_n",
                value: Some("seven"),
            })
            .insert(Header {
                key: "weft_types",
                value: Some("n=integer"),
            });
        assert!(matches!(
            decode(Some(&h), None),
            Err(EventError::InvalidAttributeValue { .. })
        ));
    }
}
