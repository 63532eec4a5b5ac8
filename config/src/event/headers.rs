//! The CloudEvents binary content mode, once for every transport: how an event's attributes
//! become headers and back. HTTP ([`super::http`]), Kafka and NATS (in `weft-channels`)
//! each describe their headers with a [`HeaderBinding`] and call [`HeaderBinding::encode`]
//! and [`HeaderBinding::decoder`]; they keep only what is truly theirs (the header container,
//! the body, Kafka's record key, NATS's empty-data marker and structured mode).
//!
//! What every transport shares:
//! - Each context attribute and extension is the header `<prefix><name>` (`ce-` for HTTP and
//!   NATS, `ce_` for Kafka), with the attribute's canonical string as its value.
//! - Values are percent-encoded where the binding says so (HTTP, and NATS, which follows
//!   HTTP's rule): space, `"`, `%` and every byte outside printable ASCII become `%XX`.
//!   Decoding accepts lower-case hex and needlessly encoded bytes, and rejects what is not
//!   UTF-8. Kafka headers are bytes and carry raw UTF-8.
//! - `datacontenttype` is the transport's content-type header where it has one (HTTP and
//!   Kafka: `content-type`, left as it is unless it cannot be a header value), and
//!   `<prefix>datacontenttype` otherwise (NATS, where `content-type` means structured mode).
//! - Header values are strings, which would turn integer and boolean extensions into strings.
//!   Where a transport stores events (Kafka, NATS) Weft adds one header of its own, the
//!   *extension record*, listing every extension in order with its CloudEvents type:
//!   `priority=Integer,urgent=Boolean,partitionkey=String`. Read back, it restores each type
//!   and the order (a NATS header map keeps none). Type names are read case-insensitively;
//!   an unknown type reads as a string. Other consumers ignore the header. HTTP writes no
//!   record: sinks see plain CloudEvents.
//! - Older records are still read: Kafka records written before this module have
//!   `weft_types` (only the non-string extensions, lower-case: `priority=integer`), which
//!   gives types but not order ([`HeaderBinding::legacy_types`]); NATS messages already used
//!   today's record under the same name.
//! - A repeated attribute header counts once: its first value.
//!
//! Compatibility with the Rust `cloudevents-sdk` (checked against its source, version 0.9):
//! its Kafka binding (`binding::rdkafka`) writes and reads exactly this binary mode: headers
//! `ce_<name>` with raw UTF-8 values and `content-type` for `datacontenttype`; it ignores
//! headers without the `ce_` prefix, so it reads Weft's records (extensions as strings) and
//! Weft reads its binary records. Its structured-mode records
//! (`content-type: application/cloudevents+json`) are not read by Weft's Kafka channel.
//! Its NATS binding (`binding::nats`) is structured mode only, a JSON payload with no
//! headers at all; Weft's NATS channel reads structured mode only when `content-type` says
//! so. The crate is not a dependency of Weft, so no test runs against it.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::{AttributeValue, Event, EventError, SpecVersion};

/// How one transport carries attributes in headers. Each transport declares one as a
/// constant; all the rules live here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderBinding {
    /// The prefix of attribute headers: `ce-` (HTTP, NATS) or `ce_` (Kafka).
    pub prefix: &'static str,
    /// Whether values are percent-encoded (HTTP, NATS) rather than raw UTF-8 (Kafka).
    pub percent_encoded: bool,
    /// The header that carries `datacontenttype`, if the transport has a content-type
    /// header of its own; `None` puts it in `<prefix>datacontenttype` like any attribute.
    pub content_type: Option<&'static str>,
    /// The header of the extension record, if the transport stores events; `None` (HTTP)
    /// neither writes nor reads one.
    pub extensions: Option<&'static str>,
    /// An older, types-only record still read (Kafka's `weft_types`): `name=type` pairs for
    /// the non-string extensions, in no particular order.
    pub legacy_types: Option<&'static str>,
}

/// The four attributes every event has, in the order they are written and checked.
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

impl HeaderBinding {
    /// Calls `put` with each header of the event's attributes, in order: the required
    /// attributes, `dataschema`, `subject`, `time`, `datacontenttype`, the extensions in
    /// their order, then the extension record. Names are lower-case; values are encoded as
    /// this binding says, so each is a valid header value of the transport.
    pub fn encode(&self, event: &Event, mut put: impl FnMut(&str, Cow<'_, str>)) {
        let mut name = String::with_capacity(32);
        let mut attribute = |attr: &str, value: &str, put: &mut dyn FnMut(&str, Cow<'_, str>)| {
            name.clear();
            name.push_str(self.prefix);
            name.push_str(attr);
            put(&name, self.encode_value(value));
        };
        let required = [
            event.specversion().as_str(),
            event.id(),
            event.source(),
            event.ty(),
        ];
        for (attr, value) in REQUIRED.into_iter().zip(required) {
            attribute(attr, value, &mut put);
        }
        let optional = [
            ("dataschema", event.dataschema()),
            ("subject", event.subject()),
            ("time", event.time()),
        ];
        for (attr, value) in optional {
            if let Some(value) = value {
                attribute(attr, value, &mut put);
            }
        }
        if let Some(ct) = event.datacontenttype() {
            match self.content_type {
                Some(header) => put(header, self.encode_content_type(ct)),
                None => attribute("datacontenttype", ct, &mut put),
            }
        }
        let mut record = String::new();
        for (ext, value) in event.extensions() {
            attribute(ext, &value.as_str(), &mut put);
            if self.extensions.is_some() {
                if !record.is_empty() {
                    record.push(',');
                }
                // Writing to a String cannot fail.
                let _ = write!(record, "{ext}={}", type_name(value));
            }
        }
        if let Some(header) = self.extensions
            && !record.is_empty()
        {
            put(header, Cow::Owned(record));
        }
    }

    /// Starts reading an event from headers: offer each with [`Decoder::header`], then
    /// call [`Decoder::finish`].
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            binding: self,
            required: Default::default(),
            attributes: Vec::new(),
            content_type: None,
            record: None,
            legacy: None,
        }
    }

    fn encode_value<'v>(&self, value: &'v str) -> Cow<'v, str> {
        if self.percent_encoded {
            percent_encode(value)
        } else {
            Cow::Borrowed(value)
        }
    }

    /// The content-type header is the transport's own, not an attribute header: it goes out
    /// as the producer sent it (`application/json; charset=utf-8`). Only a value no header
    /// can hold (possible in a structured event) is percent-encoded.
    fn encode_content_type<'v>(&self, value: &'v str) -> Cow<'v, str> {
        let fits = value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
        if self.percent_encoded && !fits {
            percent_encode(value)
        } else {
            Cow::Borrowed(value)
        }
    }

    fn decode_value(&self, name: &str, raw: &[u8]) -> Result<String, EventError> {
        if self.percent_encoded {
            percent_decode(name, raw)
        } else {
            utf8(name, raw)
        }
    }
}

/// The CloudEvents type name the extension record uses for a value.
fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::String(_) => "String",
        AttributeValue::Integer(_) => "Integer",
        AttributeValue::Boolean(_) => "Boolean",
    }
}

/// Reads one event's attributes from the headers a transport offers it.
#[derive(Debug)]
pub struct Decoder<'b> {
    binding: &'b HeaderBinding,
    /// `specversion`, `id`, `source` and `type`, in [`REQUIRED`]'s order.
    required: [Option<String>; 4],
    /// The other attribute headers, decoded, in the order offered.
    attributes: Vec<(String, String)>,
    /// The content-type header's value.
    content_type: Option<String>,
    /// The extension record: order and types.
    record: Option<String>,
    /// The types-only record of older Kafka records.
    legacy: Option<String>,
}

impl Decoder<'_> {
    /// Offers one header by its name (lower-case where the transport's names are
    /// case-insensitive) and raw value. Returns whether the header belongs to the binding;
    /// an attribute header whose value cannot be decoded is an error.
    pub fn header(&mut self, name: &str, raw: &[u8]) -> Result<bool, EventError> {
        let binding = self.binding;
        if let Some(attr) = name.strip_prefix(binding.prefix) {
            let value = binding.decode_value(name, raw)?;
            match REQUIRED.iter().position(|r| *r == attr) {
                Some(slot) => {
                    self.required[slot].get_or_insert(value);
                }
                None if self.attributes.iter().any(|(n, _)| n == attr) => {}
                None => self.attributes.push((attr.to_owned(), value)),
            }
        } else if Some(name) == binding.content_type {
            if self.content_type.is_none() {
                self.content_type = Some(utf8(name, raw)?);
            }
        } else if Some(name) == binding.extensions {
            self.record.get_or_insert(utf8(name, raw)?);
        } else if Some(name) == binding.legacy_types {
            self.legacy.get_or_insert(utf8(name, raw)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The event the offered headers describe, without data.
    pub fn finish(self) -> Result<Event, EventError> {
        let [specversion, id, source, ty] = self.required;
        let missing = |name| EventError::MissingAttribute { name };
        let specversion = specversion.ok_or(missing("specversion"))?;
        let (id, source, ty) = (
            id.ok_or(missing("id"))?,
            source.ok_or(missing("source"))?,
            ty.ok_or(missing("type"))?,
        );
        let specversion = SpecVersion::parse(&specversion)?;
        let mut event = Event::new(id, source, ty)?;
        event.set_specversion(specversion);

        let pairs = |record: &Option<String>| {
            let pairs: Vec<(String, String)> = (record.iter())
                .flat_map(|r| r.split(','))
                .filter_map(|p| p.split_once('='))
                .map(|(n, t)| (n.trim().to_owned(), t.trim().to_owned()))
                .collect();
            pairs
        };
        let (record, legacy) = (pairs(&self.record), pairs(&self.legacy));
        let mut attributes = self.attributes;
        // The extensions the record lists come first, in its order; then the rest in the
        // order offered.
        for (name, ty) in &record {
            let Some(at) = attributes.iter().position(|(n, _)| n == name) else {
                continue;
            };
            let (name, value) = attributes.remove(at);
            set_typed(&mut event, &name, value, Some(ty))?;
        }
        for (name, value) in attributes {
            let ty = legacy.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
            set_typed(&mut event, &name, value, ty)?;
        }
        if let Some(ct) = self.content_type {
            event.set_datacontenttype(Some(ct))?;
        }
        Ok(event)
    }
}

/// Sets an attribute from its string form and the type a record gives it.
fn set_typed(
    event: &mut Event,
    name: &str,
    text: String,
    ty: Option<&String>,
) -> Result<(), EventError> {
    let invalid = |reason| EventError::InvalidAttributeValue {
        name: name.to_owned(),
        reason,
    };
    let value = match ty {
        Some(t) if t.eq_ignore_ascii_case("integer") => AttributeValue::Integer(
            text.parse()
                .map_err(|_| invalid("expected a 32-bit integer"))?,
        ),
        Some(t) if t.eq_ignore_ascii_case("boolean") => AttributeValue::Boolean(match &*text {
            "true" => true,
            "false" => false,
            _ => return Err(invalid("expected true or false")),
        }),
        _ => return event.set_attribute_str(name, text),
    };
    event.set_extension(name, value)
}

fn utf8(name: &str, raw: &[u8]) -> Result<String, EventError> {
    String::from_utf8(raw.to_vec()).map_err(|_| EventError::InvalidHeader { name: name.into() })
}

/// Percent-encodes a header value as the CloudEvents HTTP binding requires: space, `"`, `%`
/// and every byte outside printable ASCII. Borrows when nothing needs encoding.
pub fn percent_encode(value: &str) -> Cow<'_, str> {
    let needs = |b: u8| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'%';
    if !value.bytes().any(needs) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if needs(b) {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

/// Percent-decodes the value of the header `name`; the result must be UTF-8.
pub fn percent_decode(name: &str, raw: &[u8]) -> Result<String, EventError> {
    let invalid = || EventError::InvalidHeader { name: name.into() };
    if !raw.contains(&b'%') {
        return utf8(name, raw);
    }
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
    use bytes::Bytes;

    use super::*;

    /// A binding like Kafka's: raw values, `content-type`, a record and a legacy record.
    const RAW: HeaderBinding = HeaderBinding {
        prefix: "x_",
        percent_encoded: false,
        content_type: Some("content-type"),
        extensions: Some("rec"),
        legacy_types: Some("old"),
    };
    /// A binding like NATS's: percent-encoded, `datacontenttype` as an attribute header.
    const ENCODED: HeaderBinding = HeaderBinding {
        prefix: "x-",
        percent_encoded: true,
        content_type: None,
        extensions: Some("rec"),
        legacy_types: None,
    };

    fn sample() -> Event {
        let mut e = Event::new("id 1", "/sourcé", "com.example.t").unwrap();
        e.set_subject(Some("a \"quoted\" 100% subject\r\n".into()))
            .unwrap();
        e.set_time(Some("2024-01-01T00:00:00Z".into())).unwrap();
        e.set_dataschema(Some("https://example.com/s".into()))
            .unwrap();
        e.set_datacontenttype(Some("application/json; charset=utf-8".into()))
            .unwrap();
        e.set_extension("priority", AttributeValue::Integer(-7))
            .unwrap();
        e.set_extension("looks", AttributeValue::String("12".into()))
            .unwrap();
        e.set_extension("flag", AttributeValue::Boolean(true))
            .unwrap();
        e
    }

    fn encode(binding: &HeaderBinding, event: &Event) -> Vec<(String, String)> {
        let mut out = Vec::new();
        binding.encode(event, |n, v| out.push((n.to_owned(), v.into_owned())));
        out
    }

    fn decode<'a>(
        binding: &HeaderBinding,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Event, EventError> {
        let mut decoder = binding.decoder();
        for (name, value) in headers {
            decoder.header(name, value.as_bytes())?;
        }
        decoder.finish()
    }

    fn round_trip(binding: &HeaderBinding, event: &Event) -> Event {
        let headers = encode(binding, event);
        decode(binding, headers.iter().map(|(n, v)| (&**n, &**v))).unwrap()
    }

    #[test]
    fn writes_the_binary_mode_headers_in_order() {
        let headers = encode(&RAW, &sample());
        let names: Vec<_> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x_specversion",
                "x_id",
                "x_source",
                "x_type",
                "x_dataschema",
                "x_subject",
                "x_time",
                "content-type",
                "x_priority",
                "x_looks",
                "x_flag",
                "rec",
            ]
        );
        assert_eq!(headers[5].1, "a \"quoted\" 100% subject\r\n", "raw");
        assert_eq!(headers[11].1, "priority=Integer,looks=String,flag=Boolean");

        let headers = encode(&ENCODED, &sample());
        let get = |name: &str| {
            let found = headers.iter().find(|(n, _)| n == name);
            found.map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-id"), Some("id%201"));
        assert_eq!(get("x-source"), Some("/sourc%C3%A9"));
        assert_eq!(
            get("x-subject"),
            Some("a%20%22quoted%22%20100%25%20subject%0D%0A")
        );
        assert_eq!(
            get("x-datacontenttype"),
            Some("application/json;%20charset=utf-8")
        );
        assert_eq!(get("content-type"), None);
        assert_eq!(get("x-priority"), Some("-7"));

        let bare = Event::new("1", "/s", "t").unwrap();
        assert_eq!(encode(&RAW, &bare).len(), 4, "no record without extensions");
    }

    #[test]
    fn round_trips_every_attribute_type_and_order() {
        for binding in [RAW, ENCODED] {
            let e = sample();
            assert_eq!(round_trip(&binding, &e), e, "{binding:?}");
            let mut bare = Event::new("1", "/s", "t").unwrap();
            bare.set_specversion(SpecVersion::V03);
            assert_eq!(round_trip(&binding, &bare), bare, "{binding:?}");
        }
    }

    #[test]
    fn the_record_restores_order_and_the_legacy_record_types() {
        let base = [
            ("x_specversion", "1.0"),
            ("x_id", "1"),
            ("x_source", "/s"),
            ("x_type", "t"),
        ];
        // Headers in another order than the record's: the record wins.
        let e = decode(
            &RAW,
            base.into_iter().chain([
                ("x_b", "true"),
                ("x_a", "5"),
                ("x_c", "plain"),
                ("rec", "a=integer,b=BOOLEAN"),
            ]),
        )
        .unwrap();
        let got: Vec<_> = e.extensions().map(|(n, v)| (n, v.clone())).collect();
        assert_eq!(
            got,
            [
                ("a", AttributeValue::Integer(5)),
                ("b", AttributeValue::Boolean(true)),
                ("c", AttributeValue::String("plain".into())),
            ]
        );
        // The legacy record types values but keeps the headers' order.
        let e = decode(
            &RAW,
            base.into_iter()
                .chain([("x_b", "true"), ("x_a", "5"), ("old", "a=integer")]),
        )
        .unwrap();
        let got: Vec<_> = e.extensions().map(|(n, v)| (n, v.clone())).collect();
        assert_eq!(
            got,
            [
                ("b", AttributeValue::String("true".into())),
                ("a", AttributeValue::Integer(5)),
            ]
        );
        // A value the record's type does not fit is an error.
        let err = decode(
            &RAW,
            base.into_iter().chain([("x_a", "x"), ("rec", "a=Integer")]),
        );
        assert!(matches!(err, Err(EventError::InvalidAttributeValue { .. })));
    }

    #[test]
    fn reads_what_other_producers_write() {
        let e = decode(
            &ENCODED,
            [
                ("x-specversion", "0.3"),
                ("x-id", "%41%c3%a9"),
                ("x-source", "/s"),
                ("x-type", "t"),
                ("x-id", "ignored: the first value counts"),
                ("x-n", "3"),
                ("other", "not an attribute"),
            ],
        )
        .unwrap();
        assert_eq!(e.specversion(), SpecVersion::V03);
        assert_eq!(e.id(), "Aé");
        assert_eq!(e.extension("n"), Some(&AttributeValue::String("3".into())));
        assert_eq!(e.extensions().count(), 1);
        assert_eq!(e.data(), None::<&Bytes>);
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        let full = [
            ("x-specversion", "1.0"),
            ("x-id", "1"),
            ("x-source", "/s"),
            ("x-type", "t"),
        ];
        for (skip, name) in REQUIRED.into_iter().enumerate() {
            let headers = full.iter().enumerate().filter(|(i, _)| *i != skip);
            let err = decode(&ENCODED, headers.map(|(_, h)| *h)).unwrap_err();
            assert_eq!(err, EventError::MissingAttribute { name });
        }
        for bad in ["%FF", "%C0%A0", "%4", "%zz"] {
            let err = decode(&ENCODED, full.into_iter().chain([("x-n", bad)])).unwrap_err();
            assert!(matches!(err, EventError::InvalidHeader { .. }), "{bad}");
        }
        let mut decoder = RAW.decoder();
        assert!(matches!(
            decoder.header("x_id", &[0xff]),
            Err(EventError::InvalidHeader { .. })
        ));
        assert!(!decoder.header("traceparent", b"00-ab").unwrap());
    }
}
