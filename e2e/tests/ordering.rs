//! Delivery order and concurrency: an ordered trigger keeps each `partitionkey` in order
//! (one in flight per key, even across a retry); an unordered one has many in flight, up to
//! `weft.dev/max-in-flight`.

use std::sync::atomic::{AtomicBool, Ordering};

use weft_e2e::{Delivery, Producer, Reply, Sink, Weft, broker, event, ms, secs, trigger};

const PER_KEY: i32 = 12;

#[tokio::test]
async fn an_ordered_trigger_keeps_each_partition_in_order_under_a_slow_sink() {
    // The first delivery of A/3 fails once: B may go on, but A/4 must wait for A/3.
    let failed_once = AtomicBool::new(false);
    let sink = Sink::builder()
        .delay(ms(30))
        .respond("/ordered", move |req| {
            let is_a3 = req.ext("partitionkey").as_deref() == Some("A")
                && req.ext("seq").as_deref() == Some("3");
            if is_a3 && !failed_once.swap(true, Ordering::SeqCst) {
                Reply::status(503)
            } else {
                Reply::status(202)
            }
        })
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "ordered.yaml",
            trigger("ordered")
                .subscriber(sink.url("/ordered"))
                .annotation("weft.dev/delivery-order", "ordered")
                .delivery(Delivery::new().retry(3).linear("PT0.1S")),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    for seq in 0..PER_KEY {
        for key in ["A", "B"] {
            let e = event("com.example.step")
                .ext("partitionkey", key)
                .ext("seq", &seq.to_string())
                .build();
            producer.send_accepted(&url, &e).await;
        }
    }

    let all = sink
        .wait_for_path("/ordered", 2 * PER_KEY as usize + 1, secs(30))
        .await;
    for key in ["A", "B"] {
        let mut seqs: Vec<i32> = all
            .iter()
            .filter(|r| r.ext("partitionkey").as_deref() == Some(key))
            .map(|r| r.ext("seq").unwrap().parse().unwrap())
            .collect();
        // A/3 arrives twice in a row (the failure, then the retry); nothing may come between.
        seqs.dedup();
        assert_eq!(
            seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "partition {key} in order"
        );
    }
    assert!(
        sink.max_in_flight("/ordered") <= 2,
        "at most one in flight per key (2 keys), saw {}",
        sink.max_in_flight("/ordered")
    );
}

#[tokio::test]
async fn an_unordered_trigger_delivers_concurrently_up_to_its_limit() {
    let sink = Sink::builder().delay(ms(200)).start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("free.yaml", trigger("free").subscriber(sink.url("/free")))
        .manifest(
            "limited.yaml",
            trigger("limited")
                .subscriber(sink.url("/limited"))
                .annotation("weft.dev/max-in-flight", "3"),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    const N: usize = 20;
    // Sent all at once, so that the backlog is there however fast ingest is.
    let events: Vec<_> = (0..N)
        .map(|i| event("com.example.work").ext("n", &i.to_string()).build())
        .collect();
    futures::future::join_all(events.iter().map(|e| producer.send_accepted(&url, e))).await;
    sink.wait_for_path("/free", N, secs(30)).await;
    sink.wait_for_path("/limited", N, secs(30)).await;

    let free = sink.max_in_flight("/free");
    let limited = sink.max_in_flight("/limited");
    println!("max in flight: unordered {free}, limited to 3: {limited}");
    assert!(free > 3, "unordered delivery overlaps requests: {free}");
    assert!(
        (2..=3).contains(&limited),
        "max-in-flight 3 allows up to 3 at once: {limited}"
    );
}

#[tokio::test]
async fn max_in_flight_flag_limits_every_trigger() {
    let sink = Sink::builder().delay(ms(150)).start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("t.yaml", trigger("t").subscriber(sink.url("/t")))
        .arg("--max-in-flight")
        .arg("2")
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    let events: Vec<_> = (0..10).map(|_| event("com.example.work").build()).collect();
    futures::future::join_all(events.iter().map(|e| producer.send_accepted(&url, e))).await;
    sink.wait_for_path("/t", 10, secs(30)).await;
    assert_eq!(sink.max_in_flight("/t"), 2, "--max-in-flight 2");
}
