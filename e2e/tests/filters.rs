//! Trigger filters through the whole system: `spec.filters` dialects route events, and a
//! trigger with an invalid CESQL expression is reported not ready (with the filter and the
//! position of the error) while the other triggers keep delivering.

use weft_e2e::{Producer, Sink, Weft, broker, event, secs, trigger};

fn filtered_trigger(name: &str, subscriber: &str, filters: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: {name}
  namespace: default
spec:
  broker: default
  subscriber:
    uri: {subscriber}
  filters:
{filters}"
    )
}

#[tokio::test]
async fn dialects_route_and_an_invalid_cesql_trigger_alone_is_not_ready() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "cesql.yaml",
            filtered_trigger(
                "urgent",
                &sink.url("/urgent"),
                "    - cesql: \"type LIKE 'com.example.%' AND INT(priority) > 3\"\n",
            ),
        )
        .manifest(
            "dialects.yaml",
            filtered_trigger(
                "orders",
                &sink.url("/orders"),
                "    - prefix: { type: com.example.order. }\n    - not: { exact: { source: /test } }\n",
            ),
        )
        .manifest(
            "broken.yaml",
            filtered_trigger(
                "broken",
                &sink.url("/broken"),
                "    - cesql: \"type = 'x' AND (\"\n",
            ),
        )
        .manifest("all.yaml", trigger("all").subscriber(sink.url("/all")))
        .no_wait_for_triggers()
        .start()
        .await;

    let triggers = weft
        .wait_for_triggers(secs(10), |ts| {
            ts.len() == 4 && ts.iter().filter(|t| t.ready).count() == 3
        })
        .await;
    let broken = triggers.iter().find(|t| t.name == "broken").unwrap();
    assert!(!broken.ready);
    let reason = broken.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("spec.filters[0].cesql") && reason.contains("position"),
        "the reason names the filter and the position: {reason}"
    );
    // The reason `kubectl get` shows for the same manifest (e2e/tests/kubernetes.rs).
    assert!(reason.starts_with("InvalidTrigger: "), "{reason}");
    assert!(
        triggers
            .iter()
            .filter(|t| t.name != "broken")
            .all(|t| t.ready)
    );

    let url = weft.url("default", "default");
    let producer = Producer::new();
    let sent = [
        event("com.example.order.created")
            .ext("priority", "5")
            .source("/shop")
            .build(),
        event("com.example.order.created")
            .ext("priority", "1")
            .source("/test")
            .build(),
        event("com.example.payment").ext("priority", "9").build(),
        event("org.other.thing").ext("priority", "9").build(),
    ];
    for e in &sent {
        producer.send_accepted(&url, e).await;
    }
    sink.wait_for_path("/all", sent.len(), secs(10)).await;
    sink.wait_for_path("/urgent", 2, secs(10)).await;
    sink.wait_for_path("/orders", 1, secs(10)).await;
    let ids = |path: &str| -> Vec<String> {
        let mut ids: Vec<String> = sink
            .requests_to(path)
            .iter()
            .map(|r| r.id().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut want_urgent = vec![sent[0].id().to_owned(), sent[2].id().to_owned()];
    want_urgent.sort();
    assert_eq!(
        ids("/urgent"),
        want_urgent,
        "CESQL: example type and priority > 3"
    );
    assert_eq!(
        ids("/orders"),
        vec![sent[0].id().to_owned()],
        "prefix and not exact"
    );
    assert!(
        ids("/broken").is_empty(),
        "a trigger that is not ready delivers nothing"
    );
}
