//! The CloudEvent as Weft carries it: validated context attributes and the data as raw bytes.
//!
//! Weft keeps its own small event type rather than `cloudevents-sdk`'s `Event` because the
//! broker must never change `data` (Knative: "MUST NOT modify data"), and the SDK parses JSON
//! data into a `serde_json::Value` and writes it back re-ordered. Here `data` stays the exact
//! bytes the producer sent, held in [`Bytes`] so that storing, filtering and delivering an
//! event never copies it.
//!
//! # Layout
//! - [`Event`]: the attributes and data, valid by construction ([`Event::new`] and setters).
//! - [`headers`]: the binary content mode (attributes as headers) that HTTP, Kafka and NATS
//!   share.
//! - [`http`]: the CloudEvents HTTP binding (binary, structured and batched modes).
//! - [`codec`]: the compact binary form stored in channels.
//! - [`extensions`]: the names of the extensions Weft stamps (hop count, arrival time,
//!   trace context).

pub mod codec;
pub mod extensions;
pub mod headers;
pub mod http;
mod json;

use std::fmt;

use bytes::Bytes;

/// The CloudEvents specification versions Weft accepts. Events keep the version they came
/// with; the broker never upgrades them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecVersion {
    /// CloudEvents 0.3.
    V03,
    /// CloudEvents 1.0.
    V10,
}

impl SpecVersion {
    /// The version as it appears in the `specversion` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V03 => "0.3",
            SpecVersion::V10 => "1.0",
        }
    }

    /// Parses a `specversion` value.
    pub fn parse(value: &str) -> Result<Self, EventError> {
        match value {
            "1.0" => Ok(SpecVersion::V10),
            "0.3" => Ok(SpecVersion::V03),
            other => Err(EventError::UnsupportedSpecVersion {
                version: other.to_owned(),
            }),
        }
    }
}

/// The value of an extension attribute: CloudEvents' String, Integer and Boolean types.
/// Other CloudEvents types (URI, Timestamp, Binary) travel as their string form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// A string (also URIs, timestamps and binary values in their canonical string form).
    String(String),
    /// A 32-bit signed integer.
    Integer(i32),
    /// A boolean.
    Boolean(bool),
}

impl AttributeValue {
    /// The string form of the value, borrowed when it is a string.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            AttributeValue::String(s) => std::borrow::Cow::Borrowed(s),
            other => std::borrow::Cow::Owned(other.to_string()),
        }
    }
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::String(s) => f.write_str(s),
            AttributeValue::Integer(i) => write!(f, "{i}"),
            AttributeValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// A borrowed view of any attribute, as filters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeRef<'a> {
    /// A string-typed attribute (all context attributes are strings on the wire).
    String(&'a str),
    /// An integer extension.
    Integer(i32),
    /// A boolean extension.
    Boolean(bool),
}

impl<'a> From<&'a AttributeValue> for AttributeRef<'a> {
    fn from(value: &'a AttributeValue) -> Self {
        match value {
            AttributeValue::String(s) => AttributeRef::String(s),
            AttributeValue::Integer(i) => AttributeRef::Integer(*i),
            AttributeValue::Boolean(b) => AttributeRef::Boolean(*b),
        }
    }
}

/// Why an event is malformed. Each message is one line, fit for a 400 response body.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EventError {
    /// A required attribute (`id`, `source`, `type`, `specversion`) is absent.
    #[error("missing required attribute `{name}`")]
    MissingAttribute {
        /// The attribute's name.
        name: &'static str,
    },
    /// An attribute is present but empty where the spec requires a non-empty value.
    #[error("attribute `{name}` must not be empty")]
    EmptyAttribute {
        /// The attribute's name.
        name: String,
    },
    /// An attribute's name is not made of lower-case letters and digits.
    #[error("invalid attribute name `{name}`: names use only a-z and 0-9")]
    InvalidAttributeName {
        /// The offending name.
        name: String,
    },
    /// An attribute's value has the wrong type or form.
    #[error("invalid value for attribute `{name}`: {reason}")]
    InvalidAttributeValue {
        /// The attribute's name.
        name: String,
        /// What is wrong, as a short phrase.
        reason: &'static str,
    },
    /// The `specversion` is not one Weft accepts.
    #[error("unsupported specversion `{version}`: expected 1.0 or 0.3")]
    UnsupportedSpecVersion {
        /// The version the event carried.
        version: String,
    },
    /// A structured or batched body is not valid JSON of the right shape.
    #[error("malformed JSON event: {reason}")]
    MalformedJson {
        /// The parser's description of the problem.
        reason: String,
    },
    /// Both `data` and `data_base64` are present.
    #[error("`data` and `data_base64` are mutually exclusive")]
    DataConflict,
    /// A `ce-` header value is not valid percent-encoded UTF-8.
    #[error("header `{name}` is not valid percent-encoded UTF-8")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// A structured-mode content type Weft cannot read (only JSON is supported).
    #[error("unsupported event format `{content_type}`: expected application/cloudevents+json")]
    UnsupportedFormat {
        /// The `Content-Type` of the request.
        content_type: String,
    },
    /// A stored event could not be decoded (the channel holds bytes Weft did not write).
    #[error("corrupt stored event: {reason}")]
    Corrupt {
        /// What the decoder found wrong.
        reason: &'static str,
    },
}

/// A valid CloudEvent. Required attributes are non-empty, extension names are valid, and
/// `data` is the producer's bytes, untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    specversion: SpecVersion,
    id: String,
    source: String,
    ty: String,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    /// Extensions in arrival order; names are unique. Events carry a handful, so a vector
    /// beats a map for both lookup and memory.
    extensions: Vec<(String, AttributeValue)>,
    data: Option<Bytes>,
}

impl Event {
    /// Creates a 1.0 event with the required attributes, checking that each is non-empty.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        ty: impl Into<String>,
    ) -> Result<Self, EventError> {
        let (id, source, ty) = (id.into(), source.into(), ty.into());
        for (name, value) in [("id", &id), ("source", &source), ("type", &ty)] {
            if value.is_empty() {
                return Err(EventError::EmptyAttribute { name: name.into() });
            }
        }
        Ok(Event {
            specversion: SpecVersion::V10,
            id,
            source,
            ty,
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: Vec::new(),
            data: None,
        })
    }

    /// The `specversion` attribute.
    pub fn specversion(&self) -> SpecVersion {
        self.specversion
    }
    /// The `id` attribute.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The `source` attribute.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The `type` attribute.
    pub fn ty(&self) -> &str {
        &self.ty
    }
    /// The `datacontenttype` attribute.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }
    /// The `dataschema` attribute.
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }
    /// The `subject` attribute.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    /// The `time` attribute, as its RFC 3339 text.
    pub fn time(&self) -> Option<&str> {
        self.time.as_deref()
    }
    /// The data, exactly as the producer sent it.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }
    /// The extension attributes in arrival order.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.extensions.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// One extension attribute by name.
    pub fn extension(&self, name: &str) -> Option<&AttributeValue> {
        self.extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Any attribute by name, context attribute or extension: what filters match on.
    pub fn attribute(&self, name: &str) -> Option<AttributeRef<'_>> {
        let s = match name {
            "specversion" => Some(self.specversion.as_str()),
            "id" => Some(self.id.as_str()),
            "source" => Some(self.source.as_str()),
            "type" => Some(self.ty.as_str()),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "dataschema" => self.dataschema.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            _ => return self.extension(name).map(AttributeRef::from),
        };
        s.map(AttributeRef::String)
    }

    /// Sets the spec version the event declares.
    pub fn set_specversion(&mut self, version: SpecVersion) {
        self.specversion = version;
    }

    /// Sets `datacontenttype`; `None` removes it.
    pub fn set_datacontenttype(&mut self, value: Option<String>) -> Result<(), EventError> {
        self.datacontenttype = non_empty("datacontenttype", value)?;
        Ok(())
    }
    /// Sets `dataschema`; `None` removes it.
    pub fn set_dataschema(&mut self, value: Option<String>) -> Result<(), EventError> {
        self.dataschema = non_empty("dataschema", value)?;
        Ok(())
    }
    /// Sets `subject`; `None` removes it.
    pub fn set_subject(&mut self, value: Option<String>) -> Result<(), EventError> {
        self.subject = non_empty("subject", value)?;
        Ok(())
    }
    /// Sets `time`, which must be an RFC 3339 timestamp; `None` removes it.
    pub fn set_time(&mut self, value: Option<String>) -> Result<(), EventError> {
        if let Some(t) = &value
            && chrono::DateTime::parse_from_rfc3339(t).is_err()
        {
            return Err(EventError::InvalidAttributeValue {
                name: "time".into(),
                reason: "expected an RFC 3339 timestamp",
            });
        }
        self.time = value;
        Ok(())
    }
    /// Replaces the data.
    pub fn set_data(&mut self, data: Option<Bytes>) {
        self.data = data;
    }

    /// Sets (or replaces) an extension attribute. The name must be `[a-z0-9]+` and must not
    /// be a context attribute's name.
    pub fn set_extension(
        &mut self,
        name: impl Into<String>,
        value: AttributeValue,
    ) -> Result<(), EventError> {
        let name = name.into();
        validate_extension_name(&name)?;
        match self.extensions.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.extensions.push((name, value)),
        }
        Ok(())
    }

    /// Removes an extension attribute, returning its value.
    pub fn remove_extension(&mut self, name: &str) -> Option<AttributeValue> {
        let at = self.extensions.iter().position(|(k, _)| k == name)?;
        Some(self.extensions.remove(at).1)
    }

    /// Sets any attribute from its string form, as binary-mode headers carry them:
    /// context attributes go to their fields, everything else becomes a string extension.
    pub fn set_attribute_str(&mut self, name: &str, value: String) -> Result<(), EventError> {
        match name {
            "specversion" => self.specversion = SpecVersion::parse(&value)?,
            "id" | "source" | "type" => {
                if value.is_empty() {
                    return Err(EventError::EmptyAttribute { name: name.into() });
                }
                match name {
                    "id" => self.id = value,
                    "source" => self.source = value,
                    _ => self.ty = value,
                }
            }
            "datacontenttype" => self.set_datacontenttype(Some(value))?,
            "dataschema" => self.set_dataschema(Some(value))?,
            "subject" => self.set_subject(Some(value))?,
            "time" => self.set_time(Some(value))?,
            _ => self.set_extension(name, AttributeValue::String(value))?,
        }
        Ok(())
    }
}

fn non_empty(name: &str, value: Option<String>) -> Result<Option<String>, EventError> {
    match value {
        Some(v) if v.is_empty() => Err(EventError::EmptyAttribute { name: name.into() }),
        other => Ok(other),
    }
}

/// The context attributes, which an extension may not shadow.
const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// Checks an attribute name: CloudEvents allows only lower-case ASCII letters and digits.
pub fn validate_attribute_name(name: &str) -> Result<(), EventError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(EventError::InvalidAttributeName { name: name.into() });
    }
    Ok(())
}

fn validate_extension_name(name: &str) -> Result<(), EventError> {
    validate_attribute_name(name)?;
    if CONTEXT_ATTRIBUTES.contains(&name) || name == "data" || name == "data_base64" {
        return Err(EventError::InvalidAttributeName { name: name.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_empty_required_attributes() {
        assert_eq!(
            Event::new("", "s", "t").unwrap_err(),
            EventError::EmptyAttribute { name: "id".into() }
        );
        assert!(Event::new("1", "", "t").is_err());
        assert!(Event::new("1", "s", "").is_err());
    }

    #[test]
    fn attribute_finds_context_attributes_and_extensions() {
        let mut e = Event::new("1", "/s", "t").unwrap();
        e.set_extension("priority", AttributeValue::Integer(3))
            .unwrap();
        e.set_subject(Some("sub".into())).unwrap();
        assert_eq!(e.attribute("type"), Some(AttributeRef::String("t")));
        assert_eq!(e.attribute("subject"), Some(AttributeRef::String("sub")));
        assert_eq!(e.attribute("priority"), Some(AttributeRef::Integer(3)));
        assert_eq!(e.attribute("missing"), None);
        assert_eq!(e.attribute("time"), None);
    }

    #[test]
    fn extension_names_are_checked() {
        let mut e = Event::new("1", "/s", "t").unwrap();
        for bad in ["Upper", "with-dash", "", "type", "data"] {
            assert!(
                e.set_extension(bad, AttributeValue::Boolean(true)).is_err(),
                "{bad}"
            );
        }
        e.set_extension("a1", AttributeValue::Boolean(true))
            .unwrap();
        e.set_extension("a1", AttributeValue::Boolean(false))
            .unwrap();
        assert_eq!(e.extensions().count(), 1);
    }

    #[test]
    fn time_must_be_rfc3339() {
        let mut e = Event::new("1", "/s", "t").unwrap();
        assert!(e.set_time(Some("yesterday".into())).is_err());
        e.set_time(Some("2024-01-02T03:04:05.678Z".into())).unwrap();
    }
}
