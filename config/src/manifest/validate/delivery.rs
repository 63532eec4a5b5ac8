//! Checks for `DeliverySpec`, `Destination` and ISO-8601 durations, as Knative's webhook does
//! them, producing [`DeliveryConfig`] and resolved URLs.
//!
//! A `ref` is resolved by [`super::refs`] (standalone), or reported when the caller should
//! have resolved it beforehand (a Kubernetes controller).

use std::time::Duration;

use url::Url;

use super::refs::Refs;
use crate::manifest::problem::FieldError;
use crate::manifest::types::{DeliverySpec, Destination};
use crate::model::{BackoffPolicy, DeliveryConfig, EventFormat, MAX_DELIVERY_DURATION, MAX_RETRY};

/// Checks `spec` found at `field` (e.g. `spec.delivery`); problems go to `errors`.
pub(crate) fn delivery(
    spec: &DeliverySpec,
    field: &str,
    refs: &Refs<'_>,
    errors: &mut Vec<FieldError>,
) -> DeliveryConfig {
    let mut config = DeliveryConfig::default();
    if let Some(retry) = spec.retry {
        match u32::try_from(retry) {
            Ok(retry) if retry <= MAX_RETRY => config.retry = retry,
            Ok(_) => errors.push(FieldError::new(
                format!("{field}.retry"),
                format!("{retry} is too many; give 0 to {MAX_RETRY} retries"),
            )),
            Err(_) => errors.push(FieldError::new(
                format!("{field}.retry"),
                format!("{retry} is negative; give 0 to {MAX_RETRY} retries"),
            )),
        }
    }
    if let Some(policy) = &spec.backoff_policy {
        match policy.as_str() {
            "exponential" => config.backoff_policy = BackoffPolicy::Exponential,
            "linear" => config.backoff_policy = BackoffPolicy::Linear,
            other => errors.push(FieldError::new(
                format!("{field}.backoffPolicy"),
                format!("{other:?} is not a backoff policy; use linear or exponential"),
            )),
        }
    }
    let mut duration_at = |name: &str, value: &Option<String>| {
        let value = value.as_deref()?;
        parse_delivery_duration(value)
            .map_err(|message| errors.push(FieldError::new(format!("{field}.{name}"), message)))
            .ok()
    };
    if let Some(delay) = duration_at("backoffDelay", &spec.backoff_delay) {
        config.backoff_delay = delay;
    }
    config.backoff_max = duration_at("backoffMax", &spec.backoff_max);
    config.retry_after_max = duration_at("retryAfterMax", &spec.retry_after_max);
    config.timeout = duration_at("timeout", &spec.timeout);
    if config.timeout == Some(Duration::ZERO) {
        errors.push(FieldError::new(
            format!("{field}.timeout"),
            "must be longer than zero (e.g. PT10S)",
        ));
    }
    if let Some(format) = &spec.format {
        match format.as_str() {
            "binary" => config.format = EventFormat::Binary,
            "json" => config.format = EventFormat::Json,
            other => errors.push(FieldError::new(
                format!("{field}.format"),
                format!("{other:?} is not an event format; use json or binary"),
            )),
        }
    }
    if let Some(sink) = &spec.dead_letter_sink {
        config.dead_letter_sink =
            destination(sink, &format!("{field}.deadLetterSink"), refs, errors);
    }
    config
}

/// Resolves a destination at `field` (e.g. `spec.subscriber`) to an absolute http(s) URL.
pub(crate) fn destination(
    destination: &Destination,
    field: &str,
    refs: &Refs<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Url> {
    // A ref's URL, with the uri beside it resolved against it, is checked as a uri would be.
    let resolved;
    let uri = match &destination.reference {
        Some(reference) => {
            let uri = destination.uri.as_deref();
            resolved = refs.resolve(reference, uri, field, errors)?.to_string();
            Some(resolved.as_str())
        }
        None => destination.uri.as_deref(),
    };
    let Some(uri) = uri else {
        errors.push(FieldError::new(
            field,
            "needs a uri (an absolute http or https URL)",
        ));
        return None;
    };
    let field = format!("{field}.uri");
    match Url::parse(uri) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            errors.push(FieldError::new(
                field,
                format!(
                    "{uri:?} has scheme {}; use an http or https URL",
                    url.scheme()
                ),
            ));
            None
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            errors.push(FieldError::new(
                field,
                format!("{uri:?} has no host; use an absolute http or https URL"),
            ));
            None
        }
        Ok(url) => Some(url),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            errors.push(FieldError::new(
                field,
                format!(
                    "{uri:?} is relative, which needs a ref; use an absolute http or https URL"
                ),
            ));
            None
        }
        Err(error) => {
            errors.push(FieldError::new(
                field,
                format!("{uri:?} is not a valid URL ({error}); use an absolute http or https URL"),
            ));
            None
        }
    }
}

/// Parses a DeliverySpec duration (`backoffDelay`, `timeout`, …): an ISO-8601 duration of
/// at most [`MAX_DELIVERY_DURATION`], one day.
pub fn parse_delivery_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration <= MAX_DELIVERY_DURATION {
        Ok(duration)
    } else {
        Err(format!(
            "{text:?} is longer than a day; give a duration from PT0S to P1D (e.g. PT0.2S)"
        ))
    }
}

/// Parses an ISO-8601 duration such as `PT0.2S`, `PT1M30S`, `P1D` or `P2W`. Years and months
/// are refused: they have no fixed length. Precision is one millisecond.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("{text:?} is not an ISO-8601 duration (e.g. PT0.5S)");
    // The parser accepts a bare "PT" as zero and ignores trailing text: refuse both.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return Err(not_a_duration());
    }
    let parsed = match iso8601::parsers::parse_duration(text.as_bytes()) {
        Ok(([], parsed)) => parsed,
        _ => return Err(not_a_duration()),
    };
    if let iso8601::Duration::YMDHMS { year, month, .. } = parsed
        && (year > 0 || month > 0)
    {
        return Err(format!(
            "{text:?} counts years or months, which have no fixed length; \
             use weeks, days, hours, minutes or seconds (e.g. P30D)"
        ));
    }
    Ok(Duration::from(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &DeliverySpec) -> (DeliveryConfig, Vec<FieldError>) {
        let mut errors = Vec::new();
        let config = delivery(spec, "spec.delivery", &Refs::NONE, &mut errors);
        (config, errors)
    }

    fn only_error(spec: &DeliverySpec) -> FieldError {
        let (_, errors) = check(spec);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    fn uri(uri: &str) -> Destination {
        Destination {
            uri: Some(uri.to_owned()),
            ..Destination::default()
        }
    }

    #[test]
    fn durations_parse_seconds_fractions_days_and_weeks() {
        let cases = [
            ("PT0.2S", Duration::from_millis(200)),
            ("PT1.5S", Duration::from_millis(1500)),
            ("PT90S", Duration::from_secs(90)),
            ("PT1M30S", Duration::from_secs(90)),
            ("PT2H", Duration::from_secs(7200)),
            ("P1D", Duration::from_secs(86_400)),
            ("P1DT1S", Duration::from_secs(86_401)),
            ("P2W", Duration::from_secs(14 * 86_400)),
            ("PT0S", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn durations_refuse_other_text_and_calendar_units() {
        for text in [
            "2 seconds",
            "",
            "PT",
            "P",
            "PT1S ",
            "PT1Sx",
            "pt1s",
            "-PT1S",
            "1s",
        ] {
            let message = parse_duration(text).unwrap_err();
            assert!(
                message.contains("is not an ISO-8601 duration (e.g. PT0.5S)"),
                "{text}: {message}"
            );
        }
        for text in ["P1M", "P1Y", "P1Y2M3DT4H"] {
            let message = parse_duration(text).unwrap_err();
            assert!(message.contains("use weeks, days"), "{text}: {message}");
        }
    }

    #[test]
    fn empty_spec_gives_knative_defaults() {
        let (config, errors) = check(&DeliverySpec::default());
        assert!(errors.is_empty());
        assert_eq!(config, DeliveryConfig::default());
        assert_eq!(config.backoff_delay, Duration::from_millis(200));
        assert_eq!(config.backoff_policy, BackoffPolicy::Exponential);
    }

    #[test]
    fn full_spec_is_converted() {
        let spec = DeliverySpec {
            dead_letter_sink: Some(uri("http://127.0.0.1:9091/dead-letters")),
            retry: Some(3),
            timeout: Some("PT5S".into()),
            backoff_policy: Some("linear".into()),
            backoff_delay: Some("PT0.5S".into()),
            backoff_max: Some("PT1M".into()),
            retry_after_max: Some("PT0S".into()),
            format: Some("json".into()),
        };
        let (config, errors) = check(&spec);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            config,
            DeliveryConfig {
                retry: 3,
                backoff_policy: BackoffPolicy::Linear,
                backoff_delay: Duration::from_millis(500),
                backoff_max: Some(Duration::from_secs(60)),
                timeout: Some(Duration::from_secs(5)),
                retry_after_max: Some(Duration::ZERO),
                dead_letter_sink: Some(Url::parse("http://127.0.0.1:9091/dead-letters").unwrap()),
                format: EventFormat::Json,
            }
        );
    }

    #[test]
    fn negative_retry_is_refused() {
        let error = only_error(&DeliverySpec {
            retry: Some(-1),
            ..DeliverySpec::default()
        });
        assert_eq!(error.field, "spec.delivery.retry");
        assert!(error.message.contains("give 0 to 10000 retries"), "{error}");
    }

    #[test]
    fn unknown_backoff_policy_and_format_are_refused() {
        let error = only_error(&DeliverySpec {
            backoff_policy: Some("fibonacci".into()),
            ..DeliverySpec::default()
        });
        assert_eq!(error.field, "spec.delivery.backoffPolicy");
        assert!(
            error.message.contains("use linear or exponential"),
            "{error}"
        );

        let error = only_error(&DeliverySpec {
            format: Some("xml".into()),
            ..DeliverySpec::default()
        });
        assert_eq!(error.field, "spec.delivery.format");
        assert!(error.message.contains("use json or binary"), "{error}");
    }

    #[test]
    fn each_duration_field_is_checked() {
        let bad = || Some("2 seconds".to_owned());
        let (_, errors) = check(&DeliverySpec {
            timeout: bad(),
            backoff_delay: bad(),
            backoff_max: bad(),
            retry_after_max: bad(),
            ..DeliverySpec::default()
        });
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.delivery.backoffDelay",
                "spec.delivery.backoffMax",
                "spec.delivery.retryAfterMax",
                "spec.delivery.timeout"
            ]
        );
        assert_eq!(
            errors[0].message,
            "\"2 seconds\" is not an ISO-8601 duration (e.g. PT0.5S)"
        );
    }

    #[test]
    fn zero_timeout_is_refused() {
        let error = only_error(&DeliverySpec {
            timeout: Some("PT0S".into()),
            ..DeliverySpec::default()
        });
        assert_eq!(error.field, "spec.delivery.timeout");
        assert!(error.message.contains("longer than zero"), "{error}");
    }

    #[test]
    fn dead_letter_sink_must_be_an_absolute_http_url() {
        let error = only_error(&DeliverySpec {
            dead_letter_sink: Some(uri("/dead-letters")),
            ..DeliverySpec::default()
        });
        assert_eq!(error.field, "spec.delivery.deadLetterSink.uri");
        assert!(
            error.message.contains("absolute http or https URL"),
            "{error}"
        );
    }

    #[test]
    fn destinations_need_an_absolute_http_uri() {
        let cases = [
            (uri("orders"), "spec.subscriber.uri", "is relative"),
            (uri("ftp://host/x"), "spec.subscriber.uri", "has scheme ftp"),
            (uri("http://"), "spec.subscriber.uri", "not a valid URL"),
            (
                uri("mailto:a@b.c"),
                "spec.subscriber.uri",
                "has scheme mailto",
            ),
            (Destination::default(), "spec.subscriber", "needs a uri"),
        ];
        for (dest, field, phrase) in cases {
            let mut errors = Vec::new();
            assert_eq!(
                destination(&dest, "spec.subscriber", &Refs::NONE, &mut errors),
                None
            );
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, field);
            assert!(errors[0].message.contains(phrase), "{}", errors[0]);
            assert!(errors[0].message.contains("http or https"), "{}", errors[0]);
        }
        let mut errors = Vec::new();
        let url = destination(
            &uri("https://sink.example:8443/a"),
            "x",
            &Refs::NONE,
            &mut errors,
        );
        assert_eq!(url.unwrap().as_str(), "https://sink.example:8443/a");
        assert!(errors.is_empty());
    }

    #[test]
    fn a_ref_is_reported_as_needing_kubernetes() {
        let dest = Destination {
            reference: Some(crate::manifest::types::KReference {
                kind: "Service".into(),
                name: "display".into(),
                api_version: "v1".into(),
                ..Default::default()
            }),
            ..Destination::default()
        };
        let mut errors = Vec::new();
        assert_eq!(
            destination(&dest, "spec.subscriber", &Refs::NONE, &mut errors),
            None
        );
        assert_eq!(
            errors[0].to_string(),
            "spec.subscriber.ref: needs Kubernetes to resolve; \
             use spec.subscriber.uri with an absolute http or https URL"
        );
    }
}
