//! The CloudEvents Kafka protocol binding, binary content mode: how an [`Event`] becomes a
//! Kafka record and back.
//!
//! The attribute headers are the shared binding of
//! [`weft_config::event::headers`]: `ce_<name>` with raw UTF-8 values (the Kafka binding
//! does not percent-encode), `content-type` for `datacontenttype`, and Weft's extension
//! record `weft_extensions` (`priority=Integer,partitionkey=String`) so that integer and
//! boolean extensions read back as they were appended. Records of earlier Weft versions
//! carry `weft_types` (`priority=integer`) instead; they are still read.
//!
//! What is Kafka's own, and so here:
//! - The data is the record's value, untouched; an event without data has a null value, so
//!   empty data and no data stay apart.
//! - The `partitionkey` extension, when present, is also the record's key, so Kafka's
//!   partitioner keeps each key's events in one partition.
//! - Weft's bookkeeping headers (`weft_broker`, `weft_reason`, ...) follow the attributes.
//!
//! Knative's Kafka broker and the `cloudevents-sdk` crate's `rdkafka` binding write the
//! same binary mode, so their consumers read Weft's topics and the other way round.

use bytes::Bytes;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use weft_config::event::headers::HeaderBinding;
use weft_config::{Event, EventError};

/// Kafka's binary mode.
const BINDING: HeaderBinding = HeaderBinding {
    prefix: "ce_",
    percent_encoded: false,
    content_type: Some("content-type"),
    extensions: Some("weft_extensions"),
    legacy_types: Some("weft_types"),
};
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
    let count = 9 + event.extensions().count() + extra.len();
    // `insert` takes the headers by value; the option is `Some` between calls.
    let mut headers = Some(OwnedHeaders::new_with_capacity(count));
    let mut put = |key: &str, value: &str| {
        headers = headers.take().map(|h| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
    };
    BINDING.encode(event, |key, value| put(key, &value));
    for (key, value) in extra {
        put(key, value);
    }
    headers.unwrap_or_default()
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
    let mut decoder = BINDING.decoder();
    for h in headers.into_iter().flat_map(|h| h.iter()) {
        if let Some(value) = h.value {
            decoder.header(h.key, value)?;
        }
    }
    let mut event = decoder.finish()?;
    event.set_data(payload.map(Bytes::copy_from_slice));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use weft_config::AttributeValue;
    use weft_config::event::SpecVersion;

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

    /// A record's headers, written literally.
    fn record(pairs: &[(&str, &[u8])]) -> OwnedHeaders {
        pairs.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(*value),
            })
        })
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
                "weft_extensions",
                "weft_reason",
            ]
        );
        assert_eq!(
            header(Some(&h), "weft_extensions"),
            Some("priority=Integer,partitionkey=String,urgent=Boolean")
        );
        assert_eq!(header(Some(&h), "ce_subject"), Some("subj ü"), "raw UTF-8");
        assert_eq!(key(&e).as_deref(), Some("k1"));
        let back = decode(Some(&h), e.data().map(|d| &d[..])).unwrap();
        assert_eq!(back, e);

        let mut bare = Event::new("1", "/s", "t").unwrap();
        bare.set_specversion(SpecVersion::V03);
        let h = headers(&bare, &[]);
        assert_eq!(names(&h).len(), 4, "no record without extensions");
        assert_eq!(key(&bare), None);
        assert_eq!(decode(Some(&h), None).unwrap(), bare);
        // Empty data is data, not the absence of it.
        bare.set_data(Some(Bytes::new()));
        assert_eq!(decode(Some(&h), Some(b"")).unwrap(), bare);
    }

    #[test]
    fn reads_records_of_the_previous_version() {
        // `sample()` as Weft wrote it before the shared binding: `weft_types` with only
        // the non-string extensions, spelled in lower case.
        let h = record(&[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"id-1"),
            ("ce_source", b"/source"),
            ("ce_type", b"com.example.type"),
            ("ce_dataschema", b"https://example.com/s"),
            ("ce_subject", "subj ü".as_bytes()),
            ("ce_time", b"2024-01-01T00:00:00Z"),
            ("content-type", b"application/json"),
            ("ce_priority", b"-7"),
            ("ce_partitionkey", b"k1"),
            ("ce_urgent", b"true"),
            ("weft_types", b"priority=integer,urgent=boolean"),
            ("weft_broker", b"default/b"),
        ]);
        let e = decode(Some(&h), Some(b"{\"a\":1}")).unwrap();
        assert_eq!(e, sample(), "same attributes, types and order");
        assert_eq!(e.extension("priority"), Some(&AttributeValue::Integer(-7)));
        assert_eq!(e.extension("urgent"), Some(&AttributeValue::Boolean(true)));
    }

    #[test]
    fn reads_records_of_other_producers() {
        // Knative's broker and the cloudevents-sdk write strings only, with no type header.
        let h = record(&[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"x"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("ce_count", b"3"),
            ("ce_note", b"50% off"),
            ("content-type", b"text/plain; charset=utf-8"),
            ("traceparent", b"00-ab"),
        ]);
        let e = decode(Some(&h), Some(b"hi")).unwrap();
        assert_eq!(
            e.extension("count"),
            Some(&AttributeValue::String("3".into()))
        );
        assert_eq!(
            e.extension("note"),
            Some(&AttributeValue::String("50% off".into())),
            "Kafka values are not percent-encoded"
        );
        assert_eq!(e.datacontenttype(), Some("text/plain; charset=utf-8"));
        assert_eq!(
            e.extensions().count(),
            2,
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
        let h = record(&[("ce_specversion", b"1.0"), ("ce_id", &[0xff_u8])]);
        assert!(matches!(
            decode(Some(&h), None),
            Err(EventError::InvalidHeader { .. })
        ));
        let base: [(&str, &[u8]); 5] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("ce_n", b"seven"),
        ];
        for types in [
            ("weft_types", "n=integer"),
            ("weft_extensions", "n=Integer"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((types.0, types.1.as_bytes()));
            assert!(
                matches!(
                    decode(Some(&record(&pairs)), None),
                    Err(EventError::InvalidAttributeValue { .. })
                ),
                "{types:?}"
            );
        }
    }
}
