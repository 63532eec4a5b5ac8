//! Reply events: a 200 carrying a CloudEvent goes back into the broker and is routed like
//! any other event; loops stop at the `knativebrokerttl` hop limit.

use weft_e2e::{Producer, Received, Reply, Sink, Weft, broker, event, ms, secs, trigger};

/// The reply the `/confirm` sink sends for an `order.placed` event: binary mode, or
/// structured when the order's subject says so.
fn confirm(req: &Received) -> Reply {
    let order = req.event();
    let reply = event("order.confirmed")
        .id(&format!("confirm-{}", order.id()))
        .source("/shop/confirmations")
        .json(&format!(r#"{{"order":"{}"}}"#, order.id()))
        .build();
    if order.subject() == Some("structured") {
        Reply::structured_event(&reply)
    } else {
        Reply::event(&reply)
    }
}

#[tokio::test]
async fn a_reply_is_routed_to_the_trigger_for_its_type() {
    let sink = Sink::builder().respond("/confirm", confirm).start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "placed.yaml",
            trigger("placed")
                .subscriber(sink.url("/confirm"))
                .filter_attr("type", "order.placed"),
        )
        .manifest(
            "confirmed.yaml",
            trigger("confirmed")
                .subscriber(sink.url("/confirmed"))
                .filter_attr("type", "order.confirmed"),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let orders = [
        event("order.placed").subject("binary").build(),
        event("order.placed").subject("structured").build(),
    ];
    for order in &orders {
        Producer::new().send_accepted(&url, order).await;
    }

    let confirmed = sink.wait_for_path("/confirmed", 2, secs(10)).await;
    for order in &orders {
        let id = format!("confirm-{}", order.id());
        let got = confirmed
            .iter()
            .find(|r| r.id() == id)
            .unwrap_or_else(|| panic!("no confirmation {id} for the {:?} reply", order.subject()));
        let e = got.event();
        assert_eq!(e.ty(), "order.confirmed");
        assert_eq!(e.source(), "/shop/confirmations");
        let data: serde_json::Value = serde_json::from_slice(e.data().unwrap()).unwrap();
        assert_eq!(data, serde_json::json!({ "order": order.id() }));
        assert!(e.extension("knativebrokerttl").is_none());
    }
    sink.wait_quiet(ms(500), secs(10)).await;
    assert_eq!(
        sink.requests_to("/confirm").len(),
        2,
        "replies do not match the `placed` trigger"
    );
    assert_eq!(sink.requests_to("/confirmed").len(), 2);
}

/// A sink that always answers with another `loop` event: a reply loop.
fn loop_back(_: &Received) -> Reply {
    Reply::event(&event("loop").build())
}

#[tokio::test]
async fn a_reply_loop_stops_at_the_producers_hop_limit() {
    let sink = Sink::builder().respond("/loop", loop_back).start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "loop.yaml",
            trigger("loop")
                .subscriber(sink.url("/loop"))
                .filter_attr("type", "loop"),
        )
        .start()
        .await;
    let first = event("loop").ext("knativebrokerttl", "5").build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &first)
        .await;

    sink.wait_for_path("/loop", 2, secs(10)).await;
    let all = sink.wait_quiet(ms(1500), secs(30)).await;
    println!("deliveries in the loop: {}", all.len());
    assert_eq!(all[0].id(), first.id());
    // ttl 5 is delivered, and each reply re-enters with one hop less: 4, 3, 2, 1; the reply
    // that would carry 0 is dropped.
    assert_eq!(all.len(), 5, "deliveries of a loop started with ttl 5");
}

#[tokio::test]
async fn a_reply_loop_without_a_ttl_stops_after_255_hops() {
    let sink = Sink::builder().respond("/loop", loop_back).start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "loop.yaml",
            trigger("loop")
                .subscriber(sink.url("/loop"))
                .filter_attr("type", "loop"),
        )
        .start()
        .await;
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &event("loop").build())
        .await;

    sink.wait_for_path("/loop", 200, secs(60)).await;
    let all = sink.wait_quiet(ms(1500), secs(60)).await;
    println!("deliveries in the loop: {}", all.len());
    assert_eq!(all.len(), 255, "the default hop limit is 255");
}

#[tokio::test]
async fn an_event_in_a_202_response_is_not_a_reply() {
    let sink = Sink::builder()
        .respond("/accepting", |_| {
            Reply::event(&event("order.confirmed").build()).status_code(202)
        })
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "placed.yaml",
            trigger("placed")
                .subscriber(sink.url("/accepting"))
                .filter_attr("type", "order.placed"),
        )
        .manifest(
            "confirmed.yaml",
            trigger("confirmed")
                .subscriber(sink.url("/confirmed"))
                .filter_attr("type", "order.confirmed"),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    Producer::new()
        .send(&url, &event("order.placed").build())
        .await
        .unwrap();
    // A marker sent after it: once the marker is through, a reply would have been too.
    let marker = event("order.confirmed").build();
    Producer::new().send(&url, &marker).await.unwrap();
    sink.wait_for_path("/accepting", 1, secs(10)).await;
    sink.wait_for_path("/confirmed", 1, secs(10)).await;
    sink.wait_quiet(ms(700), secs(10)).await;
    let confirmed = sink.requests_to("/confirmed");
    assert_eq!(confirmed.len(), 1, "only the marker: {confirmed:?}");
    assert_eq!(confirmed[0].id(), marker.id());
}
