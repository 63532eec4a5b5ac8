//! Trigger delivery: retries and their spacing, timeouts, dead letters with their error
//! extensions, which responses are retried, and trigger delivery replacing the broker's.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use weft_e2e::{Delivery, Producer, Received, Reply, Sink, Weft, broker, event, ms, secs, trigger};

/// Slack allowed above an expected wait: tests share two cores with several debug builds.
const SLACK: Duration = Duration::from_millis(400);

/// Asserts the gaps between consecutive attempts are at least `expected` and not much more.
fn assert_gaps(attempts: &[Received], expected: &[Duration]) {
    assert_gaps_within(attempts, expected, Duration::ZERO);
}

/// Like [`assert_gaps`], allowing gaps up to `early` shorter than expected.
fn assert_gaps_within(attempts: &[Received], expected: &[Duration], early: Duration) {
    assert_eq!(attempts.len(), expected.len() + 1, "attempts");
    let gaps: Vec<Duration> = attempts.windows(2).map(|p| p[1].at - p[0].at).collect();
    for (i, (gap, want)) in gaps.iter().zip(expected).enumerate() {
        assert!(
            *gap + early >= *want && *gap < *want + SLACK,
            "wait before retry {}: {gap:?}, expected {want:?} (+ up to {SLACK:?}); all gaps {gaps:?}",
            i + 1
        );
    }
}

async fn send_one(weft: &Weft, ty: &str) -> weft_config::Event {
    let e = event(ty).json(r#"{"n":1}"#).build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &e)
        .await;
    e
}

/// Weft with broker `default` delivering with `delivery`, and trigger `t1` to `subscriber`.
async fn broker_delivery_to(delivery: Delivery, subscriber: String) -> Weft {
    Weft::builder()
        .manifest("broker.yaml", broker("default").delivery(delivery))
        .manifest("t.yaml", trigger("t1").subscriber(subscriber))
        .start()
        .await
}

#[tokio::test]
async fn linear_backoff_retries_then_succeeds() {
    let sink = Sink::builder()
        .replies("/flaky", [Reply::status(503), Reply::status(503)])
        .start()
        .await;
    let weft = broker_delivery_to(
        Delivery::new().retry(3).linear("PT0.2S"),
        sink.url("/flaky"),
    )
    .await;
    let sent = send_one(&weft, "com.example.flaky").await;

    let attempts = sink.wait_for_path("/flaky", 3, secs(10)).await;
    assert!(attempts.iter().all(|a| a.id() == sent.id()));
    assert_gaps(&attempts, &[ms(200), ms(400)]);
    let status = weft
        .wait_for_trigger("t1", secs(5), |t| t.delivered >= 1)
        .await;
    assert_eq!(status.dead_lettered, 0);
    // The third attempt succeeded: no fourth comes.
    let all = sink.wait_quiet(ms(800), secs(10)).await;
    assert_eq!(all.len(), 3, "attempts after success");
}

#[tokio::test]
async fn without_any_delivery_spec_knatives_broker_default_retries() {
    let sink = Sink::builder()
        .replies("/late", [Reply::status(503), Reply::status(503)])
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("t.yaml", trigger("t1").subscriber(sink.url("/late")))
        .start()
        .await;
    let sent = send_one(&weft, "com.example.late").await;

    // 10 retries, exponential from PT0.2S: the third attempt gets through.
    let attempts = sink.wait_for_path("/late", 3, secs(10)).await;
    assert!(attempts.iter().all(|a| a.id() == sent.id()));
    assert_gaps(&attempts, &[ms(200), ms(400)]);
    weft.wait_for_trigger("t1", secs(5), |t| t.delivered == 1)
        .await;
}

#[tokio::test]
async fn the_default_delivery_is_set_by_flags() {
    let sink = Sink::builder()
        .always("/down", Reply::status(503))
        .start()
        .await;
    let weft = Weft::builder()
        .arg("--default-retry=2")
        .arg("--default-backoff-policy=linear")
        .arg("--default-backoff-delay=PT0.1S")
        .manifest("broker.yaml", broker("default"))
        .manifest("t.yaml", trigger("t1").subscriber(sink.url("/down")))
        .start()
        .await;
    send_one(&weft, "com.example.down").await;
    let attempts = sink.wait_for_path("/down", 3, secs(10)).await;
    assert_gaps(&attempts, &[ms(100), ms(200)]);
    sink.wait_quiet(ms(800), secs(10)).await;
    assert_eq!(sink.requests_to("/down").len(), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn exponential_backoff_doubles_and_is_capped_by_backoff_max() {
    let sink = Sink::builder()
        .replies("/exp", [503, 500, 429].map(Reply::status))
        .replies("/capped", [503, 503, 503].map(Reply::status))
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "exp.yaml",
            trigger("exp")
                .subscriber(sink.url("/exp"))
                .delivery(Delivery::new().retry(4).exponential("PT0.1S")),
        )
        .manifest(
            "capped.yaml",
            trigger("capped").subscriber(sink.url("/capped")).delivery(
                Delivery::new()
                    .retry(4)
                    .exponential("PT0.1S")
                    .backoff_max("PT0.15S"),
            ),
        )
        .start()
        .await;
    send_one(&weft, "com.example.exp").await;

    let exp = sink.wait_for_path("/exp", 4, secs(10)).await;
    assert_gaps(&exp, &[ms(100), ms(200), ms(400)]);
    let capped = sink.wait_for_path("/capped", 4, secs(10)).await;
    assert_gaps(&capped, &[ms(100), ms(150), ms(150)]);
}

#[tokio::test]
async fn exhausted_retries_are_dead_lettered_with_the_error_extensions() {
    let sink = Sink::builder()
        .always(
            "/down",
            Reply::status(503)
                .header("content-type", "text/plain")
                .body("sink is down"),
        )
        .start()
        .await;
    let weft = broker_delivery_to(
        Delivery::new()
            .retry(2)
            .linear("PT0.05S")
            .dead_letter_sink(sink.url("/dls")),
        sink.url("/down"),
    )
    .await;
    let sent = send_one(&weft, "com.example.doomed").await;

    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    let attempts = sink.requests_to("/down");
    assert_eq!(
        attempts.len(),
        3,
        "1 attempt + 2 retries before dead-lettering"
    );

    let e = dead[0].event();
    assert_eq!(e.id(), sent.id());
    assert_eq!(e.ty(), sent.ty());
    assert_eq!(e.source(), sent.source());
    assert_eq!(e.data(), sent.data(), "the original data");
    assert_eq!(
        dead[0].ext("knativeerrordest").as_deref(),
        Some(sink.url("/down").as_str())
    );
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("503"));
    assert_eq!(dead[0].header("kn-namespace"), Some("default"));
    assert_eq!(
        dead[0].ext("knativeerrordata"),
        Some(BASE64.encode("sink is down"))
    );
    let status = weft
        .wait_for_trigger("t1", secs(5), |t| t.dead_lettered >= 1)
        .await;
    assert_eq!(status.dead_lettered, 1);
    assert_eq!(status.delivered, 0);
}

#[tokio::test]
async fn a_long_error_body_is_cut_to_1024_base64_characters() {
    let body: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let sink = Sink::builder()
        .always("/down", Reply::status(500).body(body.clone()))
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1")
                .subscriber(sink.url("/down"))
                .delivery(Delivery::new().dead_letter_sink(sink.url("/dls"))),
        )
        .start()
        .await;
    send_one(&weft, "com.example.long").await;
    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    let data = dead[0].ext("knativeerrordata").expect("knativeerrordata");
    let full = BASE64.encode(&body);
    assert!(
        data.len() <= 1024 && data.len() >= 1020 && full.starts_with(&data),
        "knativeerrordata is the start of the base64 body, at most 1024 chars: {} chars",
        data.len()
    );
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("500"));
}

#[tokio::test]
async fn a_400_is_dead_lettered_without_retry() {
    let sink = Sink::builder()
        .always("/reject", Reply::status(400).body("no thanks"))
        .start()
        .await;
    let weft = broker_delivery_to(
        Delivery::new()
            .retry(3)
            .linear("PT0.05S")
            .dead_letter_sink(sink.url("/dls")),
        sink.url("/reject"),
    )
    .await;
    let sent = send_one(&weft, "com.example.rejected").await;

    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    assert_eq!(dead[0].id(), sent.id());
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(
        dead[0].ext("knativeerrordata"),
        Some(BASE64.encode("no thanks"))
    );
    assert_eq!(sink.requests_to("/reject").len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn redirects_are_not_followed_nor_retried() {
    let sink = Sink::builder()
        .always(
            "/moved",
            Reply::status(302).header("location", "/elsewhere"),
        )
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1").subscriber(sink.url("/moved")).delivery(
                Delivery::new()
                    .retry(2)
                    .linear("PT0.05S")
                    .dead_letter_sink(sink.url("/dls")),
            ),
        )
        .start()
        .await;
    send_one(&weft, "com.example.moved").await;
    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("302"));
    assert_eq!(sink.requests_to("/moved").len(), 1);
    assert!(sink.requests_to("/elsewhere").is_empty(), "never followed");
}

#[tokio::test]
async fn a_slow_sink_times_out_and_is_retried() {
    let sink = Sink::builder()
        .replies("/slow", [Reply::status(200).delay(secs(3))])
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1").subscriber(sink.url("/slow")).delivery(
                Delivery::new()
                    .retry(2)
                    .linear("PT0.1S")
                    .timeout("PT0.3S")
                    .dead_letter_sink(sink.url("/dls")),
            ),
        )
        .start()
        .await;
    send_one(&weft, "com.example.slow").await;
    let attempts = sink.wait_for_path("/slow", 2, secs(10)).await;
    // The first attempt is abandoned after the 300 ms timeout, then 100 ms of backoff. The
    // timeout runs from Weft's send, a little before the sink sees the request: allow that.
    assert_gaps_within(&attempts, &[ms(400)], ms(30));
    weft.wait_for_trigger("t1", secs(5), |t| t.delivered >= 1)
        .await;
    assert!(sink.requests_to("/dls").is_empty());
}

#[tokio::test]
async fn format_json_delivers_in_structured_mode() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1")
                .subscriber(sink.url("/json"))
                .delivery(Delivery::new().format("json")),
        )
        .start()
        .await;
    let sent = send_one(&weft, "com.example.json").await;
    let got = sink.wait_for(1, secs(10)).await;
    assert!(
        got[0]
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/cloudevents+json")),
        "structured content type: {:?}",
        got[0].headers
    );
    assert_eq!(got[0].id(), sent.id());
    assert_eq!(got[0].event().data(), sent.data());
}

#[tokio::test]
async fn trigger_delivery_replaces_the_brokers_as_a_whole() {
    let sink = Sink::builder()
        .default_reply(Reply::status(503))
        .always("/broker-dls", Reply::status(202))
        .always("/own-dls", Reply::status(202))
        .start()
        .await;
    let weft = Weft::builder()
        .manifest(
            "broker.yaml",
            broker("default").delivery(
                Delivery::new()
                    .retry(1)
                    .linear("PT0.05S")
                    .dead_letter_sink(sink.url("/broker-dls")),
            ),
        )
        // Its own retries and dead-letter sink.
        .manifest(
            "own.yaml",
            trigger("own").subscriber(sink.url("/own")).delivery(
                Delivery::new()
                    .retry(3)
                    .linear("PT0.05S")
                    .dead_letter_sink(sink.url("/own-dls")),
            ),
        )
        // No delivery: the broker's applies.
        .manifest(
            "inherits.yaml",
            trigger("inherits").subscriber(sink.url("/inherits")),
        )
        // A delivery without a dead-letter sink: the broker's sink does not apply either.
        .manifest(
            "bare.yaml",
            trigger("bare")
                .subscriber(sink.url("/bare"))
                .delivery(Delivery::new().retry(0)),
        )
        .start()
        .await;
    let sent = send_one(&weft, "com.example.any").await;

    let own_dead = sink.wait_for_path("/own-dls", 1, secs(10)).await;
    assert_eq!(own_dead[0].id(), sent.id());
    assert_eq!(sink.requests_to("/own").len(), 4, "own: 1 + 3 retries");

    let broker_dead = sink.wait_for_path("/broker-dls", 1, secs(10)).await;
    assert_eq!(
        broker_dead[0].ext("knativeerrordest").as_deref(),
        Some(sink.url("/inherits").as_str())
    );
    assert_eq!(
        sink.requests_to("/inherits").len(),
        2,
        "inherits: 1 + 1 retry"
    );

    sink.wait_quiet(ms(1000), secs(10)).await;
    assert_eq!(sink.requests_to("/bare").len(), 1, "bare: no retries");
    assert_eq!(
        sink.requests_to("/broker-dls").len(),
        1,
        "only `inherits` uses the broker's dead-letter sink"
    );
    assert_eq!(sink.requests_to("/own-dls").len(), 1);
}

#[tokio::test]
async fn retryable_statuses_are_retried_and_others_are_not() {
    const RETRIED: [u16; 7] = [404, 408, 409, 429, 500, 502, 504];
    const FINAL: [u16; 4] = [401, 403, 410, 422];
    let mut sink = Sink::builder();
    for code in RETRIED.into_iter().chain(FINAL) {
        sink = sink.replies(&format!("/{code}"), [Reply::status(code)]);
    }
    let sink = sink.start().await;
    let mut weft = Weft::builder().manifest(
        "broker.yaml",
        broker("default").delivery(
            Delivery::new()
                .retry(2)
                .linear("PT0.05S")
                .dead_letter_sink(sink.url("/dls")),
        ),
    );
    for code in RETRIED.into_iter().chain(FINAL) {
        weft = weft.manifest(
            &format!("t{code}.yaml"),
            trigger(&format!("t{code}")).subscriber(sink.url(&format!("/{code}"))),
        );
    }
    let weft = weft.start().await;
    let sent = send_one(&weft, "com.example.classify").await;

    let dead = sink.wait_for_path("/dls", FINAL.len(), secs(10)).await;
    for code in RETRIED {
        let attempts = sink.wait_for_path(&format!("/{code}"), 2, secs(10)).await;
        assert!(attempts.iter().all(|a| a.id() == sent.id()));
    }
    sink.wait_quiet(ms(500), secs(10)).await;
    for code in RETRIED {
        let n = sink.requests_to(&format!("/{code}")).len();
        assert_eq!(n, 2, "{code} is retried once, then the default 202 ends it");
    }
    for code in FINAL {
        let n = sink.requests_to(&format!("/{code}")).len();
        assert_eq!(n, 1, "{code} is not retried");
    }
    let mut codes: Vec<String> = dead
        .iter()
        .map(|d| d.ext("knativeerrorcode").unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, FINAL.map(|c| c.to_string()), "dead-lettered codes");
}

#[tokio::test]
async fn a_sink_that_is_down_at_first_gets_the_event_once_it_is_up() {
    // Reserve a port, then free it: nothing listens there until the sink starts below.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t1")
                .subscriber(format!("http://{port}/later"))
                .delivery(Delivery::new().retry(10).linear("PT0.1S")),
        )
        .start()
        .await;
    let sent = send_one(&weft, "com.example.later").await;
    tokio::time::sleep(ms(700)).await;
    let sink = Sink::builder().bind(port).start().await;
    let got = sink.wait_for_path("/later", 1, secs(10)).await;
    assert_eq!(got[0].id(), sent.id(), "connection errors are retried");
    weft.wait_for_trigger("t1", secs(5), |t| t.delivered == 1)
        .await;
}

#[tokio::test]
async fn a_refused_connection_is_dead_lettered_with_its_destination_only() {
    // Reserve a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sink = Sink::start().await;
    let weft = broker_delivery_to(
        Delivery::new()
            .retry(1)
            .linear("PT0.05S")
            .dead_letter_sink(sink.url("/dls")),
        format!("http://{port}/stopped"),
    )
    .await;
    let sent = send_one(&weft, "com.example.stopped").await;
    let dead = sink.wait_for_path("/dls", 1, secs(10)).await;
    assert_eq!(dead[0].id(), sent.id());
    assert_eq!(
        dead[0].ext("knativeerrordest"),
        Some(format!("http://{port}/stopped"))
    );
    // No HTTP response: no status, no body to report.
    assert_eq!(dead[0].ext("knativeerrorcode"), None);
    assert_eq!(dead[0].ext("knativeerrordata"), None);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_retry_after_max() {
    let busy = || Reply::status(429).header("retry-after", "1");
    let sink = Sink::builder()
        .replies("/honoured", [busy()])
        .replies("/capped", [busy()])
        .start()
        .await;
    let delivery = |max: &str| {
        Delivery::new()
            .retry(1)
            .linear("PT0.05S")
            .retry_after_max(max)
    };
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "honoured.yaml",
            trigger("honoured")
                .subscriber(sink.url("/honoured"))
                .delivery(delivery("PT5S")),
        )
        .manifest(
            "capped.yaml",
            trigger("capped")
                .subscriber(sink.url("/capped"))
                .delivery(delivery("PT0.3S")),
        )
        .start()
        .await;
    send_one(&weft, "com.example.busy").await;
    let honoured = sink.wait_for_path("/honoured", 2, secs(10)).await;
    assert_gaps(&honoured, &[secs(1)]);
    let capped = sink.wait_for_path("/capped", 2, secs(10)).await;
    assert_gaps(&capped, &[ms(300)]);
}

#[tokio::test]
async fn a_failing_sink_narrows_the_in_flight_window_and_recovery_widens_it() {
    // The first 8 requests fail with 503 (no retries, so each is a failed event); then the
    // sink recovers.
    let sink = Sink::builder()
        .replies("/shaky", (0..8).map(|_| Reply::status(503)))
        .start()
        .await;
    let weft = broker_delivery_to(
        Delivery::new().retry(0).dead_letter_sink(sink.url("/dls")),
        sink.url("/shaky"),
    )
    .await;
    let full = weft
        .wait_for_trigger("t1", secs(5), |t| t.in_flight_window > 0)
        .await;
    assert_eq!(full.in_flight_window, 256, "the default maximum");

    for _ in 0..8 {
        send_one(&weft, "com.example.shaky").await;
    }
    sink.wait_for_path("/dls", 8, secs(10)).await;
    // 256 halves four times to its floor of 256 / 16, and stays there.
    let narrowed = weft
        .wait_for_trigger("t1", secs(5), |t| t.dead_lettered == 8)
        .await;
    assert_eq!(narrowed.in_flight_window, 16);

    for _ in 0..5 {
        send_one(&weft, "com.example.shaky").await;
    }
    let recovered = weft
        .wait_for_trigger("t1", secs(5), |t| t.delivered == 5)
        .await;
    assert_eq!(
        recovered.in_flight_window, 21,
        "one more per delivered event"
    );
}

#[tokio::test]
async fn a_permanent_failure_leaves_the_in_flight_window_alone() {
    let sink = Sink::builder()
        .always("/picky", Reply::status(400))
        .start()
        .await;
    let weft = broker_delivery_to(
        Delivery::new().retry(3).dead_letter_sink(sink.url("/dls")),
        sink.url("/picky"),
    )
    .await;
    for _ in 0..4 {
        send_one(&weft, "com.example.rejected").await;
    }
    let status = weft
        .wait_for_trigger("t1", secs(5), |t| t.dead_lettered == 4)
        .await;
    assert_eq!(status.in_flight_window, 256);
}

/// Binary-mode headers of an event of type `ty` whose data is UTF-8 JSON, spelt out rather
/// than encoded by the helpers, so the test sends exactly what a producer's SDK sends.
fn utf8_json_headers(ty: &str, id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-source", "/shop"),
        ("ce-type", ty),
        ("content-type", UTF8_JSON),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

const UTF8_JSON: &str = "application/json; charset=utf-8";

#[tokio::test]
async fn content_type_reaches_sinks_dead_letters_and_replies_unchanged() {
    let mut reply = Reply::status(200).body(r#"{"confirmed":true}"#);
    for (name, value) in &utf8_json_headers("com.example.confirmed", "reply-1") {
        reply = reply.header(name.as_str(), value.to_str().unwrap());
    }
    let sink = Sink::builder()
        .always("/orders", reply)
        .always("/refuses", Reply::status(400))
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "orders.yaml",
            trigger("orders")
                .subscriber(sink.url("/orders"))
                .filter_attr("type", "com.example.order"),
        )
        .manifest(
            "confirmed.yaml",
            trigger("confirmed")
                .subscriber(sink.url("/confirmed"))
                .filter_attr("type", "com.example.confirmed"),
        )
        .manifest(
            "refuses.yaml",
            trigger("refuses")
                .subscriber(sink.url("/refuses"))
                .filter_attr("type", "com.example.order")
                .delivery(Delivery::new().dead_letter_sink(sink.url("/dls"))),
        )
        .start()
        .await;
    let sent = Producer::new()
        .post(
            &weft.url("default", "default"),
            utf8_json_headers("com.example.order", "order-1"),
            r#"{"order":42}"#,
        )
        .await
        .unwrap();
    assert_eq!(sent.status, StatusCode::ACCEPTED);

    for path in ["/orders", "/refuses", "/dls", "/confirmed"] {
        let got = sink.wait_for_path(path, 1, secs(10)).await;
        assert_eq!(got[0].header("content-type"), Some(UTF8_JSON), "{path}");
        let data: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
        assert!(data.is_object(), "{path}: {data}");
    }
}
