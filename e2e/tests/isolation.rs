//! Triggers are independent: a sink that hangs or fails slows only its own trigger. Its
//! events wait within its in-flight limit while the healthy trigger on the same broker
//! keeps delivering at once.

use weft_e2e::{Delivery, Producer, Reply, Sink, Weft, broker, event, secs, trigger};

#[tokio::test]
async fn a_hanging_and_a_failing_sink_do_not_delay_a_healthy_trigger() {
    let sink = Sink::builder()
        // Never answers within the test: every delivery to /stuck stays in flight.
        .always("/stuck", Reply::status(202).delay(secs(120)))
        .always("/failing", Reply::status(503))
        .start()
        .await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "stuck.yaml",
            trigger("stuck")
                .subscriber(sink.url("/stuck"))
                .annotation("weft.dev/max-in-flight", "4"),
        )
        .manifest(
            "failing.yaml",
            trigger("failing")
                .subscriber(sink.url("/failing"))
                .delivery(Delivery::new().retry(1000).linear("PT0.05S")),
        )
        .manifest(
            "healthy.yaml",
            trigger("healthy").subscriber(sink.url("/healthy")),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    const N: usize = 50;
    for i in 0..N {
        let e = event("com.example.work").ext("n", &i.to_string()).build();
        producer.send_accepted(&url, &e).await;
    }

    let healthy = sink.wait_for_path("/healthy", N, secs(10)).await;
    assert_eq!(healthy.len(), N, "the healthy trigger got every event");
    assert_eq!(
        sink.requests_to("/stuck").len(),
        4,
        "the hanging sink holds exactly its in-flight limit"
    );
    assert!(
        !sink.requests_to("/failing").is_empty(),
        "the failing sink is being retried meanwhile"
    );
}
