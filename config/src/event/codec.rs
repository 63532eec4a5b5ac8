//! The compact binary form in which channels store events.
//!
//! Layout (version 1), all integers little-endian:
//! `u8 version, u8 specversion, str id, str source, str type, u8 optional-flags,
//! [str datacontenttype] [str dataschema] [str subject] [str time],
//! u16 extension-count, (str name, u8 tag, value)*, [u32 len, data]` where `str` is a
//! `u32` length and UTF-8 bytes. Decoding returns `data` as a slice of the stored buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{AttributeValue, Event, EventError, SpecVersion};

const VERSION: u8 = 1;
const HAS_CONTENT_TYPE: u8 = 1;
const HAS_SCHEMA: u8 = 1 << 1;
const HAS_SUBJECT: u8 = 1 << 2;
const HAS_TIME: u8 = 1 << 3;
const HAS_DATA: u8 = 1 << 4;

/// Encodes an event for storage.
pub fn encode(event: &Event) -> Bytes {
    let mut out = BytesMut::with_capacity(
        64 + event.id().len()
            + event.source().len()
            + event.ty().len()
            + event.data().map_or(0, |d| d.len()),
    );
    out.put_u8(VERSION);
    out.put_u8(match event.specversion() {
        SpecVersion::V03 => 0,
        SpecVersion::V10 => 1,
    });
    put_str(&mut out, event.id());
    put_str(&mut out, event.source());
    put_str(&mut out, event.ty());
    let optional = [
        (HAS_CONTENT_TYPE, event.datacontenttype()),
        (HAS_SCHEMA, event.dataschema()),
        (HAS_SUBJECT, event.subject()),
        (HAS_TIME, event.time()),
    ];
    let mut flags = optional
        .iter()
        .filter(|(_, v)| v.is_some())
        .fold(0, |acc, (f, _)| acc | f);
    if event.data().is_some() {
        flags |= HAS_DATA;
    }
    out.put_u8(flags);
    for (_, value) in optional {
        if let Some(v) = value {
            put_str(&mut out, v);
        }
    }
    let count = event.extensions().count();
    // Extensions are bounded by the body limit; 65 535 of them would exceed it.
    out.put_u16_le(u16::try_from(count).unwrap_or(u16::MAX));
    for (name, value) in event.extensions().take(usize::from(u16::MAX)) {
        put_str(&mut out, name);
        match value {
            AttributeValue::String(s) => {
                out.put_u8(0);
                put_str(&mut out, s);
            }
            AttributeValue::Integer(i) => {
                out.put_u8(1);
                out.put_i32_le(*i);
            }
            AttributeValue::Boolean(b) => {
                out.put_u8(2);
                out.put_u8(u8::from(*b));
            }
        }
    }
    if let Some(data) = event.data() {
        out.put_u32_le(data.len() as u32);
        out.put_slice(data);
    }
    out.freeze()
}

/// Decodes a stored event. `data` shares `stored`'s buffer.
pub fn decode(mut stored: Bytes) -> Result<Event, EventError> {
    let buf = &mut stored;
    if get_u8(buf)? != VERSION {
        return Err(corrupt("unknown format version"));
    }
    let specversion = match get_u8(buf)? {
        0 => SpecVersion::V03,
        1 => SpecVersion::V10,
        _ => return Err(corrupt("unknown specversion")),
    };
    let (id, source, ty) = (get_str(buf)?, get_str(buf)?, get_str(buf)?);
    let mut event = Event::new(id, source, ty)?;
    event.set_specversion(specversion);
    let flags = get_u8(buf)?;
    if flags & HAS_CONTENT_TYPE != 0 {
        event.set_datacontenttype(Some(get_str(buf)?))?;
    }
    if flags & HAS_SCHEMA != 0 {
        event.set_dataschema(Some(get_str(buf)?))?;
    }
    if flags & HAS_SUBJECT != 0 {
        event.set_subject(Some(get_str(buf)?))?;
    }
    if flags & HAS_TIME != 0 {
        event.set_time(Some(get_str(buf)?))?;
    }
    let count = get_u16(buf)?;
    for _ in 0..count {
        let name = get_str(buf)?;
        let value = match get_u8(buf)? {
            0 => AttributeValue::String(get_str(buf)?),
            1 => {
                need(buf, 4)?;
                AttributeValue::Integer(buf.get_i32_le())
            }
            2 => AttributeValue::Boolean(get_u8(buf)? != 0),
            _ => return Err(corrupt("unknown extension type")),
        };
        event.set_extension(name, value)?;
    }
    if flags & HAS_DATA != 0 {
        let len = get_u32(buf)? as usize;
        need(buf, len)?;
        event.set_data(Some(buf.split_to(len)));
    }
    if buf.has_remaining() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(event)
}

fn corrupt(reason: &'static str) -> EventError {
    EventError::Corrupt { reason }
}

fn need(buf: &Bytes, n: usize) -> Result<(), EventError> {
    if buf.remaining() < n {
        Err(corrupt("truncated"))
    } else {
        Ok(())
    }
}

fn get_u8(buf: &mut Bytes) -> Result<u8, EventError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_u16(buf: &mut Bytes) -> Result<u16, EventError> {
    need(buf, 2)?;
    Ok(buf.get_u16_le())
}

fn get_u32(buf: &mut Bytes) -> Result<u32, EventError> {
    need(buf, 4)?;
    Ok(buf.get_u32_le())
}

fn get_str(buf: &mut Bytes) -> Result<String, EventError> {
    let len = get_u32(buf)? as usize;
    need(buf, len)?;
    let bytes = buf.split_to(len);
    String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("invalid utf-8"))
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32_le(s.len() as u32);
    out.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event::new("id-1", "/source", "com.example.type").unwrap();
        e.set_subject(Some("subj".into())).unwrap();
        e.set_time(Some("2024-01-01T00:00:00Z".into())).unwrap();
        e.set_datacontenttype(Some("application/json".into()))
            .unwrap();
        e.set_extension("priority", AttributeValue::Integer(-7))
            .unwrap();
        e.set_extension("flag", AttributeValue::Boolean(true))
            .unwrap();
        e.set_extension("partitionkey", AttributeValue::String("k".into()))
            .unwrap();
        e.set_data(Some(Bytes::from_static(b"{\"a\":1}")));
        e
    }

    #[test]
    fn round_trips_every_attribute() {
        let e = sample();
        assert_eq!(decode(encode(&e)).unwrap(), e);
        let bare = Event::new("1", "/s", "t").unwrap();
        assert_eq!(decode(encode(&bare)).unwrap(), bare);
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let full = encode(&sample());
        for cut in 0..full.len() {
            assert!(decode(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(decode(Bytes::from_static(&[9, 9, 9])).is_err());
    }
}
