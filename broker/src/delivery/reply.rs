//! Judging a sink's response, and the reply events a 200 may carry.
//!
//! A 200 whose body is a CloudEvent is a reply: it is handed to the [`ReplySink`], which
//! re-ingests it into the broker. A 202, any other 2xx, or a 200 with neither a body nor
//! `ce-` headers carries no reply (a binary-mode reply without data has an empty body).
//! A non-empty 200 body that is not a CloudEvent fails the attempt like a 502 (Knative's
//! behaviour), and so does a reply that cannot be stored: the delivery is only finished
//! once its reply is durable.

use async_trait::async_trait;
use http::StatusCode;
use http::header::RETRY_AFTER;
use weft_config::Event;
use weft_config::event::http::decode_one;

use super::classify::{ResponseClass, parse_retry_after};
use super::error::{DeliveryError, ReplyError};
use super::http::{MAX_RESPONSE_BODY, SinkResponse};

/// The header that marks a binary-mode event, even one without data.
const CE_SPECVERSION: &str = "ce-specversion";

/// Stores reply events. The dispatcher implements it: it applies the hop limit and appends
/// the reply durably to the broker.
#[async_trait]
pub trait ReplySink: Send + Sync {
    /// Stores `reply`, which a sink returned for `original`. An error fails the attempt
    /// that delivered `original`; it is retried when [`ReplyError::is_retriable`].
    async fn store(&self, original: &Event, reply: Event) -> Result<(), ReplyError>;
}

/// Turns one attempt's response into its result: the success status, or why it failed.
/// Stores the reply of a 200 when there is a reply sink; without one (a dead-letter sink)
/// the body is not read as an event at all.
pub(crate) async fn judge(
    response: SinkResponse,
    original: &Event,
    replies: Option<&dyn ReplySink>,
) -> Result<StatusCode, DeliveryError> {
    let SinkResponse {
        status,
        headers,
        body,
        truncated,
    } = response;
    match ResponseClass::classify(status) {
        ResponseClass::Success => {
            let Some(replies) = replies else {
                return Ok(status);
            };
            if status != StatusCode::OK
                || (body.is_empty() && !headers.contains_key(CE_SPECVERSION))
            {
                return Ok(status);
            }
            if truncated {
                return Err(DeliveryError::ReplyTooLarge {
                    limit: MAX_RESPONSE_BODY,
                });
            }
            let reply = decode_one(&headers, body.clone())
                .map_err(|source| DeliveryError::MalformedReply { body, source })?;
            replies
                .store(original, reply)
                .await
                .map_err(|source| DeliveryError::Reply { source })?;
            Ok(status)
        }
        ResponseClass::Retry | ResponseClass::Fail => {
            let retry_after = if ResponseClass::honours_retry_after(status) {
                headers
                    .get(RETRY_AFTER)
                    .and_then(|value| parse_retry_after(value, std::time::SystemTime::now()))
            } else {
                None
            };
            Err(DeliveryError::Status {
                status,
                body,
                retry_after,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use weft_config::event::http::encode_binary;
    use weft_e2e::event;

    use super::*;

    /// Records replies; fails with `fail` when set.
    #[derive(Default)]
    struct Recorder {
        stored: Mutex<Vec<(String, Event)>>,
        fail: Option<ReplyError>,
    }

    #[async_trait]
    impl ReplySink for Recorder {
        async fn store(&self, original: &Event, reply: Event) -> Result<(), ReplyError> {
            if let Some(e) = &self.fail {
                return Err(e.clone());
            }
            self.stored
                .lock()
                .unwrap()
                .push((original.id().to_owned(), reply));
            Ok(())
        }
    }

    fn _object_safe(_: &dyn ReplySink) {}

    fn response(code: u16, headers: HeaderMap, body: &'static [u8]) -> SinkResponse {
        SinkResponse {
            status: StatusCode::from_u16(code).unwrap(),
            headers,
            body: Bytes::from_static(body),
            truncated: false,
        }
    }

    fn reply_response(code: u16, data: Option<&'static str>) -> SinkResponse {
        let reply = event("com.example.reply").id("r1").source("/sink");
        let reply = match data {
            Some(json) => reply.json(json),
            None => reply.without_data(),
        }
        .build();
        let mut headers = HeaderMap::new();
        let body = encode_binary(&reply, &mut headers);
        SinkResponse {
            status: StatusCode::from_u16(code).unwrap(),
            headers,
            body,
            truncated: false,
        }
    }

    fn original() -> Event {
        event("com.example").id("o1").source("/src").build()
    }

    #[tokio::test]
    async fn a_200_reply_is_stored_with_its_original() {
        let sink = Recorder::default();
        let status = judge(reply_response(200, Some("{}")), &original(), Some(&sink))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let stored = sink.stored.lock().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, "o1");
        assert_eq!(stored[0].1.id(), "r1");
    }

    #[tokio::test]
    async fn a_binary_reply_without_data_is_still_a_reply() {
        let sink = Recorder::default();
        judge(reply_response(200, None), &original(), Some(&sink))
            .await
            .unwrap();
        let stored = sink.stored.lock().unwrap();
        assert_eq!(stored[0].1.id(), "r1");
        assert_eq!(stored[0].1.data(), None);
    }

    #[tokio::test]
    async fn a_202_or_empty_200_is_no_reply() {
        let sink = Recorder::default();
        assert_eq!(
            judge(reply_response(202, Some("{}")), &original(), Some(&sink))
                .await
                .unwrap(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            judge(
                response(200, HeaderMap::new(), b""),
                &original(),
                Some(&sink)
            )
            .await
            .unwrap(),
            StatusCode::OK
        );
        assert_eq!(
            judge(
                response(204, HeaderMap::new(), b"x"),
                &original(),
                Some(&sink)
            )
            .await
            .unwrap(),
            StatusCode::NO_CONTENT
        );
        assert!(sink.stored.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_reply_fails_like_a_502() {
        let sink = Recorder::default();
        let err = judge(
            response(200, HeaderMap::new(), b"ok"),
            &original(),
            Some(&sink),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DeliveryError::MalformedReply { .. }));
        assert!(err.is_retriable());
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
        assert_eq!(err.body().as_ref(), b"ok");
    }

    #[tokio::test]
    async fn without_a_reply_sink_the_body_is_ignored() {
        let status = judge(response(200, HeaderMap::new(), b"ok"), &original(), None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_oversized_reply_fails() {
        let mut r = reply_response(200, Some("{}"));
        r.truncated = true;
        let err = judge(r, &original(), Some(&Recorder::default()))
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::ReplyTooLarge { .. }));
        assert!(err.is_retriable());
    }

    #[tokio::test]
    async fn a_reply_that_cannot_be_stored_fails_the_attempt() {
        let sink = Recorder {
            fail: Some(ReplyError::Store {
                reason: "disk full".into(),
            }),
            ..Recorder::default()
        };
        let err = judge(reply_response(200, Some("{}")), &original(), Some(&sink))
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Reply { .. }));
        assert!(err.is_retriable());
        assert_eq!(err.status(), None);
    }

    #[tokio::test]
    async fn retry_after_is_read_on_429_and_503_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        for (code, want) in [
            (429, Some(Duration::from_secs(7))),
            (503, Some(Duration::from_secs(7))),
            (500, None),
            (404, None),
        ] {
            let err = judge(response(code, headers.clone(), b"busy"), &original(), None)
                .await
                .unwrap_err();
            assert_eq!(err.retry_after(), want, "status {code}");
            assert_eq!(err.body().as_ref(), b"busy");
        }
    }
}
