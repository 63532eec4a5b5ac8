//! Nothing a user got a 202 for is lost to a manifest mistake: a YAML typo saved while
//! `weft up` runs, a wrong `-f` path, a trigger deleted while events wait for it, a name
//! defined twice, a second `weft up` on the same data dir. Each test keeps events waiting
//! for a sink that is down, makes the mistake, and checks that every event still arrives.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use weft_e2e::{Delivery, Producer, Sink, Weft, broker, event, ms, secs, trigger};

/// A loopback address nothing listens on yet: the sink is down until started there.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Retries for long enough that events wait for a sink that is down for the whole test.
fn patient() -> Delivery {
    Delivery::new()
        .retry(30)
        .linear("PT0.5S")
        .backoff_max("PT1S")
}

/// Runs a second `weft up -f manifests --data-dir data` (on free ports) beside `weft`, and
/// returns its output once it exits.
async fn up_beside(weft: &Weft, manifests: &Path, data: &Path) -> std::process::Output {
    let free = "127.0.0.1:0".as_ref();
    weft.cli([
        "up".as_ref(),
        "-f".as_ref(),
        manifests.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--addr".as_ref(),
        free,
        "--admin-addr".as_ref(),
        free,
    ])
    .await
}

/// A trigger `all` whose sink at `down` is not up yet, retrying patiently.
fn waiting_trigger(down: SocketAddr) -> String {
    trigger("all")
        .subscriber(format!("http://{down}/all"))
        .delivery(patient())
        .to_string()
}

/// Sends `n` events and checks each got a 202; returns their ids.
async fn send(url: &str, n: usize) -> HashSet<String> {
    let producer = Producer::new();
    let mut ids = HashSet::new();
    for _ in 0..n {
        let e = event("com.example.waiting").build();
        producer.send_accepted(url, &e).await;
        ids.insert(e.id().to_owned());
    }
    ids
}

/// Starts the sink on `addr` and waits until every id in `ids` reached `path`.
async fn deliver_all(addr: SocketAddr, path: &str, ids: &HashSet<String>) -> Sink {
    let sink = Sink::builder().bind(addr).start().await;
    sink.wait_until(secs(30), |all| {
        let got: HashSet<&str> = all
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.id())
            .collect();
        ids.iter().all(|id| got.contains(id.as_str()))
    })
    .await;
    sink
}

#[tokio::test]
async fn a_yaml_typo_in_the_broker_file_keeps_it_accepting_and_loses_nothing() {
    let down = free_addr();
    let broker_yaml = broker("default").delivery(patient()).to_string();
    let weft = Weft::builder()
        .manifest("broker.yaml", &broker_yaml)
        .manifest(
            "trigger.yaml",
            trigger("all").subscriber(format!("http://{down}/all")),
        )
        .start()
        .await;
    let url = weft.url("default", "default");
    let mut ids = send(&url, 20).await;

    // A typo saved mid-edit: the broker keeps its log, and still accepts events.
    weft.write_manifest(
        "broker.yaml",
        broker_yaml.replace("kind: Broker", "kind: Broker\nspec: ["),
    );
    let deadline = tokio::time::Instant::now() + secs(10);
    let status = loop {
        let brokers = weft.get_brokers().await;
        if let Some(b) = brokers.iter().find(|b| !b.ready) {
            break b.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{brokers:?}");
        tokio::time::sleep(ms(100)).await;
    };
    let reason = status.reason.unwrap();
    assert!(reason.starts_with("InvalidBroker: "), "{reason}");
    assert!(
        reason.contains("broker.yaml") && reason.contains("not valid YAML"),
        "{reason}"
    );
    assert!(reason.contains("line"), "the error says where: {reason}");
    ids.extend(send(&url, 20).await);

    weft.write_manifest("broker.yaml", &broker_yaml);
    let _sink = deliver_all(down, "/all", &ids).await;
}

#[tokio::test]
async fn a_yaml_typo_in_a_trigger_file_shows_it_not_ready_and_keeps_its_cursor() {
    let down = free_addr();
    let trigger_yaml = waiting_trigger(down);
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("trigger.yaml", &trigger_yaml)
        .start()
        .await;
    let url = weft.url("default", "default");
    let mut ids = send(&url, 20).await;

    weft.write_manifest("trigger.yaml", trigger_yaml.replace("spec:", "spec: ["));
    let status = weft.wait_for_trigger("all", secs(10), |t| !t.ready).await;
    let reason = status.reason.unwrap();
    assert!(
        reason.contains("trigger.yaml") && reason.contains("not valid YAML"),
        "{reason}"
    );
    ids.extend(send(&url, 20).await);

    weft.write_manifest("trigger.yaml", &trigger_yaml);
    weft.wait_for_trigger("all", secs(10), |t| t.ready).await;
    let _sink = deliver_all(down, "/all", &ids).await;
}

#[tokio::test]
async fn a_wrong_manifest_path_is_a_startup_error_that_keeps_the_data() {
    let down = free_addr();
    let mut weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("trigger.yaml", waiting_trigger(down))
        .start()
        .await;
    let ids = send(&weft.url("default", "default"), 20).await;
    weft.kill_9().await;

    let data = weft.data_dir();
    let wrong = weft.manifests_dir().join("no-such-folder");
    let out = up_beside(&weft, &wrong, &data).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the manifests") && stderr.contains("no-such-folder"),
        "{stderr}"
    );
    assert!(!stderr.contains("deleting"), "{stderr}");

    weft.restart().await;
    let _sink = deliver_all(down, "/all", &ids).await;
}

#[tokio::test]
async fn a_second_weft_up_on_the_same_data_dir_is_refused() {
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .start()
        .await;
    let (manifests, data) = (weft.manifests_dir(), weft.data_dir());
    let out = up_beside(&weft, &manifests, &data).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another weft process"),
        "{stderr}"
    );
    // The first one is unharmed.
    Producer::new()
        .send_accepted(
            &weft.url("default", "default"),
            &event("com.example.x").build(),
        )
        .await;
}

#[tokio::test]
async fn a_trigger_deleted_while_events_wait_is_retained_until_it_returns_or_is_purged() {
    let down = free_addr();
    let trigger_yaml = waiting_trigger(down);
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest("trigger.yaml", &trigger_yaml)
        .start()
        .await;
    let url = weft.url("default", "default");
    let ids = send(&url, 20).await;

    weft.remove_manifest("trigger.yaml");
    let retained = weft
        .wait_for_trigger("all", secs(10), |t| {
            t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Retained"))
        })
        .await;
    assert!(!retained.ready);
    assert_eq!(
        retained.backlog, 20,
        "weft get shows what waits: {retained:?}"
    );

    // It comes back: same cursor, every event delivered.
    weft.write_manifest("trigger.yaml", &trigger_yaml);
    weft.wait_for_trigger("all", secs(10), |t| t.ready).await;
    let sink = deliver_all(down, "/all", &ids).await;
    drop(sink);

    // Deleted again with events waiting, then purged on purpose.
    let more = send(&url, 5).await;
    assert_eq!(more.len(), 5);
    weft.remove_manifest("trigger.yaml");
    weft.wait_for_trigger("all", secs(10), |t| {
        t.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Retained"))
    })
    .await;
    let addr = weft.admin_addr().to_string();
    let out = weft
        .cli(["purge", "trigger", "default/all", "--admin-addr", &addr])
        .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("deleted the cursor of trigger default/all"),
        "{stdout}"
    );
    weft.wait_for_triggers(secs(10), |ts| ts.iter().all(|t| t.name != "all"))
        .await;
    let again = weft
        .cli(["purge", "trigger", "default/all", "--admin-addr", &addr])
        .await;
    assert!(!again.status.success(), "nothing left to purge: {again:?}");
}

#[tokio::test]
async fn a_trigger_defined_twice_is_an_error_and_the_running_one_keeps_delivering() {
    let sink = Sink::start().await;
    let weft = Weft::builder()
        .manifest("broker.yaml", broker("default"))
        .manifest(
            "triggers.yaml",
            trigger("orders").subscriber(sink.url("/first")),
        )
        .start()
        .await;
    // A second file, sorted first, with the same name.
    weft.write_manifest(
        "a-copy.yaml",
        trigger("orders").subscriber(sink.url("/second")),
    );
    let status = weft
        .wait_for_trigger("orders", secs(10), |t| !t.ready)
        .await;
    let reason = status.reason.unwrap();
    assert!(reason.contains("defined more than once"), "{reason}");
    assert!(
        reason.contains("a-copy.yaml") && reason.contains("triggers.yaml"),
        "{reason}"
    );

    let ids = send(&weft.url("default", "default"), 5).await;
    sink.wait_until(secs(10), |all| {
        ids.iter()
            .all(|id| all.iter().any(|r| r.path == "/first" && r.id() == id))
    })
    .await;
    sink.wait_quiet(ms(300), secs(5)).await;
    assert!(sink.requests_to("/second").is_empty());
}

#[tokio::test]
async fn running_out_of_file_descriptors_changes_no_desired_state() {
    let down = free_addr();
    // A connection cap above the descriptor limit, so that idle clients can exhaust it.
    let weft = Weft::builder()
        .fd_limit(96)
        .arg("--max-connections")
        .arg("1000")
        .manifest("broker.yaml", broker("default"))
        .manifest("trigger.yaml", waiting_trigger(down))
        .start()
        .await;
    let url = weft.url("default", "default");
    let mut ids = send(&url, 10).await;

    // Idle clients take every descriptor the process has.
    let mut idle = Vec::new();
    for _ in 0..200 {
        match tokio::net::TcpStream::connect(weft.addr()).await {
            Ok(stream) => idle.push(stream),
            Err(_) => break,
        }
    }
    // A manifest change makes it read the folder while it cannot open anything.
    weft.write_manifest(
        "late.yaml",
        trigger("late").subscriber(format!("http://{down}/late")),
    );
    tokio::time::sleep(secs(3)).await;
    drop(idle);

    // Nothing was taken for a deletion: the broker accepts, the trigger kept its cursor,
    // and the folder is read again once it can be.
    Producer::new()
        .send_accepted(&url, &event("com.example.after").build())
        .await;
    ids.extend(send(&url, 10).await);
    weft.wait_for_triggers(secs(15), |ts| {
        ts.iter().any(|t| t.name == "late") && ts.iter().any(|t| t.name == "all" && t.ready)
    })
    .await;
    assert!(!weft.log().contains("deleting"), "{}", weft.log());
    let _sink = deliver_all(down, "/all", &ids).await;
}
