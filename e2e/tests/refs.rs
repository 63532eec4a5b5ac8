//! `ref` destinations under `weft up`: a ref to a `v1` Service annotated with `weft.dev/url`
//! delivers to that URL, and a ref to another Broker in the manifests delivers into that
//! broker, whose own triggers then get the event.

use weft_e2e::{Producer, Sink, Weft, broker, event, secs};

/// A core `v1` Service standing for a sink on this machine, as the README shows it.
fn service(name: &str, url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n    \
         weft.dev/url: {url:?}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n"
    )
}

/// A Trigger on `broker` whose subscriber is `subscriber` (the YAML under `subscriber:`).
fn trigger(name: &str, broker: &str, subscriber: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n\
         spec:\n  broker: {broker}\n  subscriber:\n{subscriber}"
    )
}

#[tokio::test]
async fn a_ref_to_an_annotated_service_receives_events() {
    let sink = Sink::start().await;
    let to_display =
        "    ref:\n      apiVersion: v1\n      kind: Service\n      name: event-display\n";
    let with_path = format!("{to_display}    uri: /orders\n");
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("service.yaml", service("event-display", &sink.url("/")))
        .manifest("display.yaml", trigger("display", "default", to_display))
        .manifest("orders.yaml", trigger("orders", "default", &with_path))
        .start()
        .await;
    let triggers = weft.get_triggers().await;
    for t in &triggers {
        assert!(t.ready, "{t:?}");
    }

    let sent = event("com.example.ref").build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &sent)
        .await;
    assert_eq!(
        sink.wait_for_path("/", 1, secs(10)).await[0].id(),
        sent.id()
    );
    assert_eq!(
        sink.wait_for_path("/orders", 1, secs(10)).await[0].id(),
        sent.id()
    );
}

#[tokio::test]
async fn a_ref_to_another_broker_delivers_into_it() {
    let sink = Sink::start().await;
    let to_audit = "    ref:\n      apiVersion: eventing.knative.dev/v1\n      kind: Broker\n      \
                    name: audit\n";
    let archive = format!("    uri: {:?}\n", sink.url("/archive"));
    let weft = Weft::builder()
        .manifest(
            "brokers.yaml",
            format!("{}---\n{}", broker("default"), broker("audit")),
        )
        .manifest("forward.yaml", trigger("forward", "default", to_audit))
        .manifest("archive.yaml", trigger("archive", "audit", &archive))
        .start()
        .await;
    let audit = weft.url("default", "audit");
    let forward = weft
        .get_triggers()
        .await
        .into_iter()
        .find(|t| t.name == "forward")
        .expect("the forwarding trigger is listed");
    assert!(forward.ready, "{forward:?}");
    assert_eq!(forward.subscriber.as_deref(), Some(audit.as_str()));

    let sent = event("com.example.forwarded").build();
    Producer::new()
        .send_accepted(&weft.url("default", "default"), &sent)
        .await;
    let archived = sink.wait_for_path("/archive", 1, secs(10)).await;
    assert_eq!(archived[0].id(), sent.id());
    assert_eq!(archived[0].event().ty(), "com.example.forwarded");
}
