//! Manifest changes while `weft up` runs: a new trigger starts receiving within seconds, an
//! edited filter takes effect, a removed trigger stops; `weft get` shows the state.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use weft_e2e::{
    BrokerStatus, Producer, Sink, TriggerStatus, Weft, broker, event, ms, secs, trigger,
};

/// Sends an event of type `ty` every 100 ms until aborted: traffic while the config changes.
fn keep_sending(url: String, ty: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let producer = Producer::new();
        loop {
            producer.send_accepted(&url, &event(ty).build()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn a_trigger_added_while_running_receives_events_and_stops_when_removed() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "steady.yaml",
            trigger("steady").subscriber(sink.url("/steady")),
        )
        .start()
        .await;
    let url = weft.url("default", "default");

    let added = Instant::now();
    weft.write_manifest("live.yaml", trigger("live").subscriber(sink.url("/live")));
    let traffic = keep_sending(url.clone(), "com.example.live");
    sink.wait_for_path("/live", 1, secs(5)).await;
    traffic.abort();
    println!(
        "the new trigger received its first event after {:?}",
        added.elapsed()
    );

    // `weft get triggers` lists it, in the table and as JSON.
    let addr = weft.admin_addr().to_string();
    let table = weft.cli(["get", "triggers", "--admin-addr", &addr]).await;
    assert!(table.status.success(), "weft get triggers: {table:?}");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("live") && table.contains("steady"),
        "weft get triggers:\n{table}"
    );
    let json = weft
        .cli(["get", "triggers", "--admin-addr", &addr, "-o", "json"])
        .await;
    assert!(json.status.success(), "weft get triggers -o json: {json:?}");
    let triggers: Vec<TriggerStatus> = serde_json::from_slice(&json.stdout).unwrap();
    let live = triggers
        .iter()
        .find(|t| t.name == "live")
        .expect("`live` is listed");
    assert_eq!(live.namespace, "default");
    assert_eq!(live.broker, "default");
    assert!(live.ready, "{live:?}");
    assert_eq!(live.reason, None);
    assert_eq!(live.subscriber.as_deref(), Some(sink.url("/live").as_str()));
    assert_eq!(weft.get_triggers().await.len(), 2, "the admin API agrees");

    let brokers = weft
        .cli(["get", "brokers", "--admin-addr", &addr, "-o", "json"])
        .await;
    assert!(
        brokers.status.success(),
        "weft get brokers -o json: {brokers:?}"
    );
    let brokers: Vec<BrokerStatus> = serde_json::from_slice(&brokers.stdout).unwrap();
    assert_eq!(brokers.len(), 1);
    assert!(brokers[0].ready);
    assert_eq!(brokers[0].address, url);

    // Removed: it disappears from the status, and events sent afterwards never reach it.
    weft.remove_manifest("live.yaml");
    weft.wait_for_triggers(secs(5), |ts| ts.iter().all(|t| t.name != "live"))
        .await;
    let producer = Producer::new();
    let after: Vec<_> = (0..5).map(|_| event("com.example.after").build()).collect();
    for e in &after {
        producer.send_accepted(&url, e).await;
    }
    sink.wait_until(secs(10), |all| {
        after
            .iter()
            .all(|e| all.iter().any(|r| r.path == "/steady" && r.id() == e.id()))
    })
    .await;
    sink.wait_quiet(ms(500), secs(10)).await;
    let stray: Vec<_> = sink
        .requests_to("/live")
        .into_iter()
        .filter(|r| r.event().ty() == "com.example.after")
        .collect();
    assert!(
        stray.is_empty(),
        "{} events reached the removed trigger",
        stray.len()
    );
}

#[tokio::test]
async fn an_edited_filter_takes_effect_while_running() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "t.yaml",
            trigger("t")
                .subscriber(sink.url("/t"))
                .filter_attr("type", "com.example.a"),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let producer = Producer::new();
    let a = event("com.example.a").build();
    producer.send(&url, &a).await.unwrap();
    assert_eq!(sink.wait_for_path("/t", 1, secs(10)).await[0].id(), a.id());

    weft.write_manifest(
        "t.yaml",
        trigger("t")
            .subscriber(sink.url("/t"))
            .filter_attr("type", "com.example.b"),
    );
    let traffic = keep_sending(url.clone(), "com.example.b");
    sink.wait_until(secs(5), |all| {
        all.iter().any(|r| r.event().ty() == "com.example.b")
    })
    .await;
    traffic.abort();

    let late_a = event("com.example.a").build();
    let b = event("com.example.b").build();
    producer.send(&url, &late_a).await.unwrap();
    producer.send(&url, &b).await.unwrap();
    sink.wait_until(secs(10), |all| all.iter().any(|r| r.id() == b.id()))
        .await;
    sink.wait_quiet(ms(500), secs(10)).await;
    assert!(
        sink.requests().iter().all(|r| r.id() != late_a.id()),
        "type a no longer matches the edited filter"
    );
}
