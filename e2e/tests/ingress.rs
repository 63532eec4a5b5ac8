//! Broker ingress as a producer sees it: content modes, status codes, limits, the webhook
//! handshake, health endpoints and `weft send`; and as a misbehaving client sees it: slow
//! headers and bodies, idle connections, the connection cap and the header field limit.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use weft_config::event::http::{STRUCTURED_JSON, encode_binary, encode_structured};
use weft_e2e::producer::content_type;
use weft_e2e::{Producer, Sink, Weft, broker, event, ms, secs, trigger};

/// A broker `default` with one trigger that sends everything to `sink`'s `/all`.
async fn weft_with_sink(sink: &Sink) -> Weft {
    Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("all.yaml", trigger("all").subscriber(sink.url("/all")))
        .start()
        .await
}

/// A valid binary-mode request, as headers and body, to break one piece at a time.
fn binary_request() -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let body = encode_binary(&event("com.example.bad").build(), &mut headers);
    (headers, body)
}

#[tokio::test]
async fn every_content_mode_reaches_the_sink_with_attributes_and_data_intact() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let url = weft.url("default", "default");
    let producer = Producer::new();

    let binary = event("com.example.binary")
        .source("/orders/eu")
        .subject("order-1")
        .time("2024-05-06T07:08:09.123Z")
        .ext("color", "blue")
        .json(r#"{"order": 1, "note": "h\u00e9llo"}"#)
        .build();
    let structured = event("com.example.structured")
        .ext("tenant", "acme")
        .data("application/octet-stream", &b"\x00\x01\xfe\xffraw"[..])
        .build();
    let batch = [
        event("com.example.batched").json("[1,2,3]").build(),
        event("com.example.batched")
            .data("text/plain", "plain text")
            .build(),
    ];

    producer.send_accepted(&url, &binary).await;
    let sent = producer.send_structured(&url, &structured).await.unwrap();
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    assert!(
        sent.body.is_empty(),
        "202 has an empty body: {:?}",
        sent.body
    );
    assert_eq!(
        producer.send_batch(&url, &batch).await.unwrap().status,
        StatusCode::ACCEPTED
    );

    let received = sink.wait_for(4, secs(10)).await;
    let sent_events = [&binary, &structured, &batch[0], &batch[1]];
    for sent in sent_events {
        let got = received
            .iter()
            .find(|r| r.id() == sent.id())
            .unwrap_or_else(|| panic!("event {} never reached the sink", sent.id()));
        assert_eq!(got.method, Method::POST);
        assert_eq!(got.path, "/all");
        assert!(
            got.header("prefer")
                .is_some_and(|p| p.eq_ignore_ascii_case("reply")),
            "deliveries carry `Prefer: reply`: {:?}",
            got.headers
        );
        assert!(
            got.header("ce-id").is_some(),
            "delivery is in binary mode by default"
        );
        assert_eq!(
            got.header("kn-namespace"),
            Some("default"),
            "the trigger's namespace"
        );
        let e = got.event();
        assert_eq!(e.ty(), sent.ty());
        assert_eq!(e.source(), sent.source());
        assert_eq!(e.specversion(), sent.specversion());
        assert_eq!(e.subject(), sent.subject());
        assert_eq!(e.time(), sent.time());
        assert_eq!(e.datacontenttype(), sent.datacontenttype());
        assert_eq!(e.data(), sent.data(), "data of {} is untouched", sent.id());
        for (name, value) in sent.extensions() {
            assert_eq!(
                e.extension(name),
                Some(value),
                "extension {name} of {}",
                sent.id()
            );
        }
        assert!(
            e.extension("knativearrivaltime").is_some(),
            "ingress stamps knativearrivaltime"
        );
        assert!(
            e.extension("knativebrokerttl").is_none(),
            "knativebrokerttl is stripped before delivery"
        );
    }
}

#[tokio::test]
async fn the_producers_trace_context_reaches_the_sink() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let url = weft.url("default", "default");
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let own = "00-11111111111111111111111111111111-2222222222222222-01";

    // Binary and structured requests with W3C trace headers; an event with a trace context
    // of its own keeps it; an invalid header is ignored.
    let cases = [
        ("binary", None, Some(parent), Some(parent)),
        ("structured", None, Some(parent), Some(parent)),
        ("own", Some(own), Some(parent), Some(own)),
        ("invalid", None, Some("00-not-a-trace-01"), None),
    ];
    let mut sent = Vec::new();
    for (name, ext, header, _) in cases {
        let mut builder = event(&format!("com.example.{name}"));
        if let Some(ext) = ext {
            builder = builder.ext("traceparent", ext);
        }
        let e = builder.json("{}").build();
        let mut headers = HeaderMap::new();
        let body = if name == "structured" {
            headers.insert("content-type", HeaderValue::from_static(STRUCTURED_JSON));
            encode_structured(&e)
        } else {
            encode_binary(&e, &mut headers)
        };
        if let Some(header) = header {
            headers.insert("traceparent", HeaderValue::from_str(header).unwrap());
            headers.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        }
        let status = Producer::new()
            .post(&url, headers, body)
            .await
            .unwrap()
            .status;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}");
        sent.push(e);
    }

    let received = sink.wait_for(cases.len(), secs(10)).await;
    for ((name, _, _, expected), e) in cases.iter().zip(&sent) {
        let got = received.iter().find(|r| r.id() == e.id()).unwrap();
        assert_eq!(got.header("traceparent"), *expected, "{name}: HTTP header");
        assert_eq!(
            got.ext("traceparent").as_deref(),
            *expected,
            "{name}: extension"
        );
    }
    let binary = received.iter().find(|r| r.id() == sent[0].id()).unwrap();
    assert_eq!(binary.header("tracestate"), Some("congo=t61rcWkgMzE"));
}

#[tokio::test]
async fn malformed_events_are_rejected_with_400_and_a_reason() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let url = weft.url("default", "default");
    let producer = Producer::new();

    for missing in ["ce-id", "ce-source", "ce-type", "ce-specversion"] {
        let (mut headers, body) = binary_request();
        headers.remove(missing);
        let sent = producer.post(&url, headers, body).await.unwrap();
        assert_eq!(sent.status, StatusCode::BAD_REQUEST, "without {missing}");
        let reason = sent.body.trim();
        assert!(
            !reason.is_empty() && !reason.contains('\n'),
            "a one-line reason without {missing}: {:?}",
            sent.body
        );
    }
    for (header, value) in [("ce-specversion", "19.0"), ("ce-id", "")] {
        let (mut headers, body) = binary_request();
        headers.insert(
            HeaderName::from_static(header),
            HeaderValue::from_static(value),
        );
        let sent = producer.post(&url, headers, body).await.unwrap();
        assert_eq!(sent.status, StatusCode::BAD_REQUEST, "{header}: {value:?}");
    }
    let bad_json = producer
        .post(
            &url,
            content_type(STRUCTURED_JSON),
            r#"{"id": "1", "source": "#,
        )
        .await
        .unwrap();
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST, "truncated JSON");
    assert!(!bad_json.body.trim().is_empty(), "a reason for bad JSON");
    let no_type = producer
        .post(
            &url,
            content_type(STRUCTURED_JSON),
            r#"{"specversion":"1.0","id":"1","source":"/s"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        no_type.status,
        StatusCode::BAD_REQUEST,
        "structured without type"
    );

    // Nothing malformed was stored: the next valid event is the only delivery.
    let good = event("com.example.good").build();
    producer.send_accepted(&url, &good).await;
    let received = sink.wait_for(1, secs(10)).await;
    assert_eq!(received[0].id(), good.id());
}

#[tokio::test]
async fn unknown_broker_is_404() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .start()
        .await;
    let sent = Producer::new()
        .send(&weft.url("default", "nope"), &event("t").build())
        .await
        .unwrap();
    assert_eq!(sent.status, StatusCode::NOT_FOUND);
    let other_ns = Producer::new()
        .send(&weft.url("elsewhere", "default"), &event("t").build())
        .await
        .unwrap();
    assert_eq!(other_ns.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_methods_are_405_and_options_is_the_webhook_handshake() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let sent = producer
            .request(method.clone(), &url, HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(sent.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_allows_post_and_options(sent.header("allow"), &method);
    }

    let mut headers = HeaderMap::new();
    headers.insert(
        "webhook-request-origin",
        HeaderValue::from_static("e2e.example.com"),
    );
    let options = producer
        .request(Method::OPTIONS, &url, headers, Bytes::new())
        .await
        .unwrap();
    assert_eq!(options.status, StatusCode::OK);
    assert_allows_post_and_options(options.header("allow"), &Method::OPTIONS);
    assert_eq!(options.header("webhook-allowed-origin"), Some("*"));
    assert_eq!(options.header("webhook-allowed-rate"), Some("*"));
}

fn assert_allows_post_and_options(allow: Option<&str>, method: &Method) {
    let allow = allow.unwrap_or_else(|| panic!("{method}: an Allow header"));
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        methods.contains(&"POST") && methods.contains(&"OPTIONS"),
        "{method}: Allow: {allow}"
    );
}

#[tokio::test]
async fn a_64_kib_event_passes_and_a_body_over_the_limit_is_413() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let url = weft.url("default", "default");
    let producer = Producer::new();

    let data: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let big = event("com.example.big")
        .data("text/plain", data.clone())
        .build();
    producer.send_accepted(&url, &big).await;
    let received = sink.wait_for(1, secs(10)).await;
    assert_eq!(received[0].id(), big.id());
    assert_eq!(
        received[0].event().data().map(|d| d.len()),
        Some(data.len())
    );
    assert_eq!(received[0].event().data().unwrap().as_ref(), &data[..]);

    let too_big = event("com.example.too-big")
        .data("text/plain", vec![b'x'; 1024 * 1024 + 1])
        .build();
    assert_eq!(
        producer.send(&url, &too_big).await.unwrap().status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the default limit is 1 MiB"
    );
}

#[tokio::test]
async fn max_body_size_sets_the_limit() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .arg("--max-body-size")
        .arg("100000")
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    let fits = event("t").data("text/plain", vec![b'x'; 90_000]).build();
    producer.send_accepted(&url, &fits).await;
    let over = event("t").data("text/plain", vec![b'x'; 100_001]).build();
    assert_eq!(
        producer.send(&url, &over).await.unwrap().status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn a_producer_ttl_of_zero_or_less_is_400() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    for ttl in ["0", "-1"] {
        let e = event("t").ext("knativebrokerttl", ttl).build();
        assert_eq!(
            producer.send(&url, &e).await.unwrap().status,
            StatusCode::BAD_REQUEST,
            "knativebrokerttl {ttl}"
        );
    }
    let e = event("t").ext_int("knativebrokerttl", 0).build();
    assert_eq!(
        producer.send_structured(&url, &e).await.unwrap().status,
        StatusCode::BAD_REQUEST,
        "structured knativebrokerttl 0"
    );
    let ok = event("t").ext("knativebrokerttl", "3").build();
    assert_eq!(
        producer.send(&url, &ok).await.unwrap().status,
        StatusCode::ACCEPTED,
        "a positive ttl is fine"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints_answer() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let producer = Producer::new();
    producer
        .send(&weft.url("default", "default"), &event("t").build())
        .await
        .unwrap();
    sink.wait_for(1, secs(10)).await;
    for path in ["/healthz", "/readyz"] {
        let sent = producer
            .get(&format!("{}{path}", weft.base_url()))
            .await
            .unwrap();
        assert_eq!(sent.status, StatusCode::OK, "{path}");
    }
    // The accepted event, its delivery and the attempt are counted (the dispatcher counts
    // right after the sink's answer, so give it a moment).
    let expected = [
        ("weft_ingress_events_accepted_total", "default/default", 1),
        ("weft_dispatcher_events_total", "outcome=\"delivered\"", 1),
        ("weft_delivery_attempts_total", "outcome=\"delivered\"", 1),
    ];
    let mut body = String::new();
    for _ in 0..50 {
        let metrics = producer
            .get(&format!("{}/metrics", weft.base_url()))
            .await
            .unwrap();
        assert_eq!(metrics.status, StatusCode::OK);
        body = metrics.body;
        let sample = |name: &str, label: &str| {
            body.lines()
                .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if expected
            .iter()
            .all(|(name, label, value)| sample(name, label) == Some(*value))
        {
            return;
        }
        tokio::time::sleep(ms(100)).await;
    }
    panic!("expected samples {expected:?} in /metrics:\n{body}");
}

#[tokio::test]
async fn weft_send_prints_the_status_and_exits_by_it() {
    let sink = Sink::start().await;
    let weft = weft_with_sink(&sink).await;
    let url = weft.url("default", "default");

    for mode in ["binary", "structured"] {
        let id = format!("cli-{mode}");
        let out = weft
            .cli([
                "send",
                &url,
                "--type",
                "com.example.cli",
                "--source",
                "/cli",
                "--id",
                &id,
                "--data",
                r#"{"from":"cli"}"#,
                "--mode",
                mode,
            ])
            .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: exit {:?}", out.status);
        assert_eq!(stdout.trim(), "202 Accepted", "{mode}");
        let got = sink
            .wait_until(secs(10), |all| all.iter().any(|r| r.id() == id))
            .await;
        let got = got.iter().find(|r| r.id() == id).unwrap().event();
        assert_eq!(got.ty(), "com.example.cli");
        assert_eq!(got.source(), "/cli");
        let data: serde_json::Value = serde_json::from_slice(got.data().unwrap()).unwrap();
        assert_eq!(data, serde_json::json!({"from": "cli"}), "{mode}");
    }

    let out = weft
        .cli([
            "send",
            &weft.url("default", "missing"),
            "--type",
            "t",
            "--source",
            "/cli",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "non-2xx exits 1");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .starts_with("404"),
        "prints the status line: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A raw connection to weft, for a client that misbehaves on purpose.
async fn connect(weft: &Weft) -> TcpStream {
    TcpStream::connect(weft.addr())
        .await
        .expect("connect to weft")
}

/// Reads until the server closes the connection or `within` passes. Returns what arrived
/// and whether the server closed it (a reset after the response counts as closed).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// Reads one response to a request whose answer has a `content-length` (every answer of
/// weft's small endpoints), within `within`. `None` if it did not arrive.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return Some(text);
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: weft\r\n\r\n";

#[tokio::test]
async fn a_header_sent_slowly_gets_408_and_a_silent_connection_is_closed() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .arg("--header-read-timeout")
        .arg("1s")
        .start()
        .await;

    // Slowloris: a header line every 200 ms, never the blank line that ends the header.
    let mut slow = connect(&weft).await;
    slow.write_all(b"POST /default/default HTTP/1.1\r\nhost: weft\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0..25 {
            if writer
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(ms(200)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(secs(4), reader.read_to_end(&mut received))
        .await
        .is_ok();
    trickle.abort();
    let response = String::from_utf8_lossy(&received);
    assert!(closed, "the slow client is cut off; it got {response:?}");
    assert!(
        started.elapsed() < secs(3),
        "cut off near the 1 s timeout, not after {:?}",
        started.elapsed()
    );
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "a 408 for a late header: {response:?}"
    );
    assert!(
        response.contains("within 1s"),
        "names the limit: {response:?}"
    );

    // A connection that never sends a byte is closed without a response.
    let mut silent = connect(&weft).await;
    let started = Instant::now();
    let (response, closed) = read_until_closed(&mut silent, secs(4)).await;
    assert!(
        closed && response.is_empty(),
        "closed silently: {response:?}"
    );
    assert!(started.elapsed() < secs(3), "after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .arg("--idle-timeout")
        .arg("1s")
        .start()
        .await;
    let mut conn = connect(&weft).await;
    // Requests closer together than the timeout keep the connection.
    for _ in 0..3 {
        conn.write_all(GET_HEALTHZ).await.unwrap();
        let response = read_response(&mut conn, secs(5)).await.expect("a response");
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
        tokio::time::sleep(ms(600)).await;
    }
    let idle_since = Instant::now();
    let (rest, closed) = read_until_closed(&mut conn, secs(4)).await;
    assert!(closed, "the idle connection is closed");
    assert!(rest.is_empty(), "closed without a response: {rest:?}");
    let idle = idle_since.elapsed() + ms(600);
    assert!(
        idle >= ms(900) && idle < secs(3),
        "closed after about 1 s idle, not {idle:?}"
    );
}

#[tokio::test]
async fn a_body_sent_slowly_gets_408_and_is_not_stored() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("all.yaml", trigger("all").subscriber(sink.url("/all")))
        .arg("--body-read-timeout")
        .arg("1s")
        .start()
        .await;

    // A valid event whose 100-byte body arrives 10 bytes every 300 ms.
    let slow = event("com.example.slow")
        .data("text/plain", vec![b'x'; 100])
        .build();
    let mut headers = HeaderMap::new();
    let body = encode_binary(&slow, &mut headers);
    let mut head = format!(
        "POST /default/default HTTP/1.1\r\nhost: weft\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let conn = connect(&weft).await;
    let (mut reader, mut writer) = conn.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for chunk in body.chunks(10) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(ms(300)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(secs(5), reader.read_to_end(&mut received))
        .await
        .is_ok();
    trickle.abort();
    let response = String::from_utf8_lossy(&received);
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "a 408 for a late body: {response:?}"
    );
    assert!(
        response.contains("within 1s"),
        "names the limit: {response:?}"
    );
    assert!(closed, "and the connection is closed");
    assert!(started.elapsed() < secs(3), "after {:?}", started.elapsed());

    // Nothing of it was stored: the next event is the only delivery.
    let good = event("com.example.good").build();
    let url = weft.url("default", "default");
    Producer::new().send_accepted(&url, &good).await;
    let received = sink.wait_for(1, secs(10)).await;
    assert_eq!(received[0].id(), good.id());
    tokio::time::sleep(ms(500)).await;
    assert_eq!(sink.requests().len(), 1, "the slow event was never stored");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .arg("--max-connections")
        .arg("2")
        .start()
        .await;
    // Two connections hold the two places, one of them with a request half sent.
    let mut first = connect(&weft).await;
    first.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut second = connect(&weft).await;
    second.write_all(GET_HEALTHZ).await.unwrap();
    let response = read_response(&mut second, secs(5)).await;
    assert!(response.is_some_and(|r| r.starts_with("HTTP/1.1 200")));

    // A third connects (the kernel queues it) but is not served...
    let mut third = connect(&weft).await;
    third.write_all(GET_HEALTHZ).await.unwrap();
    assert_eq!(
        read_response(&mut third, ms(700)).await,
        None,
        "not served at the cap"
    );
    // ...while the requests in progress complete.
    first.write_all(b"host: weft\r\n\r\n").await.unwrap();
    let response = read_response(&mut first, secs(5)).await;
    assert!(
        response.is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        "the request in progress completes"
    );
    assert_eq!(read_response(&mut third, ms(300)).await, None);

    // Once one closes, the waiting connection is served.
    drop(second);
    let response = read_response(&mut third, secs(5)).await;
    assert!(
        response.is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        "served once a place is free"
    );
}

/// An event with `count` extensions, each a header of its own in binary mode.
fn with_extensions(count: usize) -> weft_config::Event {
    let mut builder = event("com.example.many");
    for i in 0..count {
        builder = builder.ext(&format!("ext{i}"), "value");
    }
    builder.build()
}

#[tokio::test]
async fn a_binary_event_with_150_extensions_is_accepted_and_one_over_the_limit_is_431() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    producer.send_accepted(&url, &with_extensions(150)).await;

    let sent = producer.send(&url, &with_extensions(1050)).await.unwrap();
    assert_eq!(sent.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        sent.body.contains("limit is 1000") && !sent.body.trim().contains('\n'),
        "a one-line reason naming the limit: {:?}",
        sent.body
    );
    // The same event fits in structured mode.
    let sent = producer
        .send_structured(&url, &with_extensions(1050))
        .await
        .unwrap();
    assert_eq!(sent.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn max_headers_sets_the_header_field_limit() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .arg("--max-headers")
        .arg("50")
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    producer.send_accepted(&url, &with_extensions(30)).await;
    let sent = producer.send(&url, &with_extensions(60)).await.unwrap();
    assert_eq!(sent.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(sent.body.contains("limit is 50"), "{:?}", sent.body);
}
