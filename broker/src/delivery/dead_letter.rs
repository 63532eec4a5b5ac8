//! The dead letter: the original event, marked with why its delivery failed.
//!
//! Knative's extensions (checked by rekt's `BrokerDeadLetterSinkExtensions`):
//! `knativeerrordest` is the URL that failed, `knativeerrorcode` the last HTTP status, and
//! `knativeerrordata` the last response body in standard base64, cut to 1024 characters.
//! Attributes and data are otherwise the original's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use url::Url;
use weft_config::{AttributeValue, Event};

use super::outcome::Failure;

/// The extension naming the target whose delivery failed.
pub const ERROR_DEST: &str = "knativeerrordest";
/// The extension holding the last HTTP status, when there was one.
pub const ERROR_CODE: &str = "knativeerrorcode";
/// The extension holding the last response body, base64, when there was one.
pub const ERROR_DATA: &str = "knativeerrordata";

/// The longest `knativeerrordata`, in characters.
const ERROR_DATA_MAX_CHARS: usize = 1024;
/// The body bytes whose base64 fills exactly [`ERROR_DATA_MAX_CHARS`] (3 bytes make 4
/// characters), so encoding only these equals encoding all and cutting.
const ERROR_DATA_MAX_BYTES: usize = ERROR_DATA_MAX_CHARS / 4 * 3;

/// The event to send to the dead-letter sink after delivering `original` to `failed_target`
/// ended in `failure`. Error extensions left by an earlier failure are replaced, and those
/// this failure has no value for are removed.
pub fn dead_letter_event(original: &Event, failed_target: &Url, failure: &Failure) -> Event {
    let mut letter = original.clone();
    let mut set = |name: &str, value: String| {
        // The three names are constant, valid extension names; setting them cannot fail.
        letter
            .set_extension(name, AttributeValue::String(value))
            .expect("valid extension name");
    };
    set(ERROR_DEST, failed_target.as_str().to_owned());
    if let Some(status) = failure.status {
        set(ERROR_CODE, status.to_string());
    }
    if !failure.body.is_empty() {
        let cut = &failure.body[..failure.body.len().min(ERROR_DATA_MAX_BYTES)];
        set(ERROR_DATA, STANDARD.encode(cut));
    }
    if failure.status.is_none() {
        letter.remove_extension(ERROR_CODE);
    }
    if failure.body.is_empty() {
        letter.remove_extension(ERROR_DATA);
    }
    letter
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use weft_e2e::event;

    use super::*;

    fn original() -> Event {
        event("com.example")
            .id("1")
            .source("/src")
            .subject("s")
            .ext_int("mine", 4)
            .data("text/plain", "payload")
            .build()
    }

    fn failure(status: Option<u16>, body: Bytes) -> Failure {
        Failure {
            status,
            body,
            attempts: 3,
            retriable: true,
            reason: "test".into(),
        }
    }

    fn ext(e: &Event, name: &str) -> Option<String> {
        e.extension(name).map(|v| v.as_str().into_owned())
    }

    #[test]
    fn carries_the_three_extensions_and_keeps_the_event() {
        let url = Url::parse("http://sink.example/path").unwrap();
        let letter = dead_letter_event(
            &original(),
            &url,
            &failure(Some(503), Bytes::from_static(b"busy")),
        );
        assert_eq!(
            ext(&letter, ERROR_DEST).as_deref(),
            Some("http://sink.example/path")
        );
        assert_eq!(ext(&letter, ERROR_CODE).as_deref(), Some("503"));
        assert_eq!(ext(&letter, ERROR_DATA).as_deref(), Some("YnVzeQ=="));
        assert_eq!(letter.id(), "1");
        assert_eq!(letter.subject(), Some("s"));
        assert_eq!(letter.extension("mine"), Some(&AttributeValue::Integer(4)));
        assert_eq!(letter.data().unwrap().as_ref(), b"payload");
    }

    #[test]
    fn data_is_cut_to_1024_characters() {
        let body = Bytes::from(vec![b'x'; 5000]);
        let full = STANDARD.encode(&body);
        let letter = dead_letter_event(
            &original(),
            &Url::parse("http://s/").unwrap(),
            &failure(Some(500), body),
        );
        let data = ext(&letter, ERROR_DATA).unwrap();
        assert_eq!(data.len(), 1024);
        assert_eq!(data, full[..1024]);
    }

    #[test]
    fn short_bodies_are_encoded_whole() {
        for len in [1, 767, 768, 769] {
            let body = Bytes::from(vec![7u8; len]);
            let letter = dead_letter_event(
                &original(),
                &Url::parse("http://s/").unwrap(),
                &failure(Some(500), body.clone()),
            );
            let full = STANDARD.encode(&body);
            let want = &full[..full.len().min(1024)];
            assert_eq!(ext(&letter, ERROR_DATA).unwrap(), want, "{len}");
        }
    }

    #[test]
    fn code_and_data_are_left_out_when_absent() {
        let mut earlier = original();
        earlier
            .set_extension(ERROR_CODE, AttributeValue::String("500".into()))
            .unwrap();
        earlier
            .set_extension(ERROR_DATA, AttributeValue::String("b2xk".into()))
            .unwrap();
        let letter = dead_letter_event(
            &earlier,
            &Url::parse("http://s/").unwrap(),
            &failure(None, Bytes::new()),
        );
        assert_eq!(ext(&letter, ERROR_DEST).as_deref(), Some("http://s/"));
        assert_eq!(ext(&letter, ERROR_CODE), None);
        assert_eq!(ext(&letter, ERROR_DATA), None);
    }
}
