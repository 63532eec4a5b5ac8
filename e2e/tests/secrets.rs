//! The admin API on an address of its own, and credentials shown nowhere: not by the admin
//! API, `weft get` or the logs for a subscriber URL, not on stderr for a channel URL.

use std::time::Duration;

use http::StatusCode;
use weft_e2e::{Producer, Sink, TriggerStatus, Weft, broker, event, secs, trigger};

/// A password and a token no log line or output may contain.
const PASSWORD: &str = "s3cr3t-pw-417";
const TOKEN: &str = "tok-abc-913";

/// `sink`'s URL at `path` with a user, [`PASSWORD`] and a `token` query of [`TOKEN`].
fn with_credentials(sink: &Sink, path: &str) -> String {
    let url = sink.url(path);
    let (scheme, rest) = url.split_once("://").expect("an http URL");
    format!("{scheme}://user:{PASSWORD}@{rest}?token={TOKEN}&x=1")
}

#[tokio::test]
async fn the_admin_api_is_served_on_the_admin_address_and_not_on_the_ingress() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("t.yaml", trigger("t").subscriber(sink.url("/t")))
        .start()
        .await;
    assert_ne!(weft.addr(), weft.admin_addr());
    let producer = Producer::new();
    for what in ["brokers", "triggers"] {
        let on_ingress = producer
            .get(&format!("{}/_weft/v1/{what}", weft.base_url()))
            .await
            .unwrap();
        assert_eq!(
            on_ingress.status,
            StatusCode::NOT_FOUND,
            "{}",
            on_ingress.body
        );
        assert!(
            on_ingress.body.contains("--admin-addr"),
            "{}",
            on_ingress.body
        );
        let on_admin = producer
            .get(&format!("{}/_weft/v1/{what}", weft.admin_url()))
            .await
            .unwrap();
        assert_eq!(on_admin.status, StatusCode::OK, "{}", on_admin.body);
    }
    // Probes keep working on the ingress address; the admin address answers them too.
    for base in [weft.base_url(), weft.admin_url()] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let sent = producer.get(&format!("{base}{path}")).await.unwrap();
            assert_eq!(sent.status, StatusCode::OK, "{base}{path}");
        }
    }
    // Events go to the ingress only.
    let sent = producer
        .send(
            &format!("{}/default/default", weft.admin_url()),
            &event("com.example").build(),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, StatusCode::NOT_FOUND);
    // `weft get` reads the admin address.
    let admin = weft.admin_addr().to_string();
    let table = weft.cli(["get", "triggers", "--admin-addr", &admin]).await;
    assert!(table.status.success(), "{table:?}");
    assert!(String::from_utf8_lossy(&table.stdout).contains("True"));
    let ingress = weft.addr().to_string();
    let wrong = weft
        .cli(["get", "triggers", "--admin-addr", &ingress])
        .await;
    assert!(!wrong.status.success(), "the ingress serves no admin API");
}

#[tokio::test]
async fn a_subscriber_url_with_credentials_is_shown_without_them() {
    let sink = Sink::start().await;
    let secret_sink = with_credentials(&sink, "/secret");
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("t.yaml", trigger("t").subscriber(secret_sink.clone()))
        // Not a valid subscriber: its problem is logged and shown as the reason.
        .manifest(
            "bad.yaml",
            trigger("bad").subscriber(format!("ftp://user:{PASSWORD}@host/?token={TOKEN}")),
        )
        .no_wait_for_triggers()
        .start()
        .await;
    weft.wait_for_trigger("t", secs(10), |t| t.ready).await;

    // Delivery still uses the real URL.
    let producer = Producer::new();
    producer
        .send_accepted(
            &weft.url("default", "default"),
            &event("com.example").build(),
        )
        .await;
    sink.wait_for_path("/secret", 1, secs(10)).await;

    let admin = weft.admin_addr().to_string();
    let json = weft
        .cli(["get", "triggers", "--admin-addr", &admin, "-o", "json"])
        .await;
    assert!(json.status.success(), "{json:?}");
    let stdout = String::from_utf8_lossy(&json.stdout).into_owned();
    let triggers: Vec<TriggerStatus> = serde_json::from_str(&stdout).unwrap();
    let shown = triggers
        .iter()
        .find(|t| t.name == "t")
        .expect("t is listed");
    let expected = sink.url("/secret").replace("://", "://user:***@") + "?token=***&x=1";
    assert_eq!(shown.subscriber.as_deref(), Some(expected.as_str()));
    let bad = triggers
        .iter()
        .find(|t| t.name == "bad")
        .expect("bad is listed");
    assert!(!bad.ready);
    let reason = bad.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("ftp://user:***@host/?token=***"),
        "{reason}"
    );
    let table = weft.cli(["get", "triggers", "--admin-addr", &admin]).await;
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let api = reqwest::get(format!("{}/_weft/v1/triggers", weft.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await; // the last log lines
    let log = weft.log();
    assert!(log.contains("trigger ready"), "{log}");
    for (what, text) in [
        ("weft get -o json", &stdout),
        ("weft get", &table),
        ("the admin API", &api),
        ("the log", &log),
    ] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(TOKEN),
            "{what} shows a credential:\n{text}"
        );
    }
}

/// Runs `weft up --channel <channel>` (which cannot open) and returns stdout and stderr.
async fn up_with_channel(channel: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broker.yaml"),
        broker("default").to_string(),
    )
    .unwrap();
    let run = tokio::process::Command::new(weft_e2e::weft::binary())
        .args(["up", "-f"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--channel", channel])
        .env("WEFT_LOG", "debug")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(secs(60), run)
        .await
        .expect("weft up gives up on a channel it cannot open")
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[tokio::test]
async fn channel_credentials_are_not_printed_when_the_channel_cannot_open() {
    // Port 1 on loopback refuses connections: every client fails and says why.
    let channels = [
        format!("postgres://weft:{PASSWORD}@127.0.0.1:1/weft"),
        format!("postgres://127.0.0.1:1/weft?user=weft&password={PASSWORD}"),
        format!("nats://{TOKEN}@127.0.0.1:1"),
        format!("nats://u:{PASSWORD}@127.0.0.1:1,u:{PASSWORD}@127.0.0.1:2"),
        format!("nats://127.0.0.1:1?token={TOKEN}"),
        format!("kafka://user:{PASSWORD}@127.0.0.1:1"),
        format!("kafka://127.0.0.1:1?sasl.password={PASSWORD}"),
    ];
    for channel in channels {
        let printed = up_with_channel(&channel).await;
        assert!(
            printed.contains("cannot open channel") || printed.contains("invalid channel url"),
            "{channel}: {printed}"
        );
        assert!(
            !printed.contains(PASSWORD) && !printed.contains(TOKEN),
            "{channel} shows a credential:\n{printed}"
        );
    }
}
