//! The reconciler against the in-memory channel: readiness and reasons, and what happens
//! to cursors and logs as manifests come and go.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::Channel;
use weft_channels::memory::MemoryChannel;
use weft_config::manifest::{Manifests, load_str};
use weft_config::{Event, ObjectKey};
use weft_controller::reconcile::{DEFAULT_RETENTION, Reconciler, Roles};
use weft_controller::status::PurgeKind;
use weft_controller::status::StatusBoard;

const BROKER: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: { name: default, namespace: shop }
";

fn trigger(name: &str, subscriber: &str) -> String {
    format!(
        "
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{ name: {name}, namespace: shop }}
spec:
  broker: default
  subscriber: {{ uri: \"{subscriber}\" }}
"
    )
}

fn manifests(docs: &[&str]) -> Manifests {
    load_str(&docs.join("\n---\n"), Path::new("test.yaml"))
}

struct Fixture {
    channel: Arc<dyn Channel>,
    dataplane: Arc<DataPlane>,
    board: Arc<StatusBoard>,
    reconciler: Reconciler,
}

impl Fixture {
    fn new(channel: Arc<dyn Channel>) -> Self {
        let dataplane = Arc::new(DataPlane::new(channel.clone(), DataPlaneOptions::default()));
        let board = Arc::new(StatusBoard::default());
        Fixture {
            reconciler: Reconciler::new(dataplane.clone(), board.clone()),
            channel,
            dataplane,
            board,
        }
    }

    fn trigger_reason(&self, name: &str) -> Option<&'static str> {
        self.board
            .trigger(&key(name))
            .expect("trigger has a status")
            .condition
            .reason
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("shop", name)
}

#[tokio::test]
async fn trigger_created_before_its_broker_recovers_when_the_broker_appears() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[&t])).await;
    assert_eq!(f.trigger_reason("orders"), Some("BrokerDoesNotExist"));

    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    let status = f.board.trigger(&key("orders")).unwrap();
    assert!(status.condition.ready, "{status:?}");
    assert!(f.board.broker(&key("default")).unwrap().ready);
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_valid_version_delivering() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let good = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &good])).await;
    assert!(f.dataplane.is_running(&key("orders")));

    let broken = trigger("orders", "not a url");
    f.reconciler.reconcile(&manifests(&[BROKER, &broken])).await;
    let status = f.board.trigger(&key("orders")).unwrap();
    assert_eq!(status.condition.reason, Some("InvalidTrigger"));
    let message = status.condition.message.unwrap();
    assert!(message.contains("spec.subscriber.uri"), "{message}");
    assert!(
        message.contains("the last valid version keeps delivering"),
        "{message}"
    );
    assert_eq!(status.subscriber.as_deref(), Some("http://127.0.0.1:9/"));
    // Every condition, as Kubernetes would show the same manifest's.
    let subscription = status
        .conditions
        .iter()
        .find(|c| c.type_ == "SubscriptionReady")
        .expect("a SubscriptionReady condition");
    assert_eq!(subscription.reason.as_deref(), Some("InvalidTrigger"));
    assert!(subscription.last_transition_time.is_some());
    assert!(
        f.dataplane.is_running(&key("orders")),
        "the valid version still runs"
    );
}

#[tokio::test]
async fn an_invalid_new_trigger_waits_with_its_cursor_and_leaves_with_its_file() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    let broken = trigger("orders", "not a url");
    f.reconciler.reconcile(&manifests(&[BROKER, &broken])).await;
    assert_eq!(f.trigger_reason("orders"), Some("InvalidTrigger"));
    assert!(!f.dataplane.is_running(&key("orders")));

    // Its file is deleted: it leaves `weft get` at once.
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    assert!(f.board.trigger(&key("orders")).is_none());
}

#[tokio::test]
async fn removing_a_trigger_without_waiting_events_deletes_its_cursor() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    assert!(
        f.channel
            .subscriptions(&key("default"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(f.board.trigger(&key("orders")).is_none());
    assert!(f.reconciler.retained().is_empty());
}

/// A trigger whose sink is down, with `n` events waiting for it.
async fn trigger_with_backlog(f: &mut Fixture, n: usize) -> String {
    let t = trigger("orders", "not a url");
    // Valid first (so it has a cursor), then invalid (so nothing delivers the events).
    let good = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &good])).await;
    f.dataplane.stop_trigger(&key("orders")).await;
    let events = (0..n)
        .map(|i| Event::new(i.to_string(), "/s", "t").unwrap())
        .collect();
    f.channel.append(&key("default"), events).await.unwrap();
    t
}

#[tokio::test(start_paused = true)]
async fn a_deleted_trigger_with_waiting_events_keeps_its_cursor_for_the_grace_period() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let _ = trigger_with_backlog(&mut f, 3).await;
    let broker = key("default");

    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    assert_eq!(
        f.channel.subscriptions(&broker).await.unwrap(),
        vec![key("orders")]
    );
    assert_eq!(f.channel.backlog(&broker, &key("orders")).await.unwrap(), 3);
    let status = f
        .board
        .trigger(&key("orders"))
        .expect("weft get still shows it");
    assert_eq!(status.condition.reason, Some("Retained"));
    assert!(status.condition.message.unwrap().contains("3 events"));
    assert_eq!(status.broker, "default", "so weft get shows its backlog");

    // It comes back before the grace period ends: same cursor, every event still there.
    let good = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &good])).await;
    assert!(f.reconciler.retained().is_empty());
    assert_eq!(f.channel.backlog(&broker, &key("orders")).await.unwrap(), 3);
    f.dataplane.stop_trigger(&key("orders")).await;

    // Deleted again; the grace period ends: now it goes, deliberately.
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    tokio::time::advance(DEFAULT_RETENTION - Duration::from_secs(1)).await;
    f.reconciler.expire().await;
    assert_eq!(
        f.channel.subscriptions(&broker).await.unwrap(),
        vec![key("orders")]
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(f.reconciler.next_expiry().unwrap() <= tokio::time::Instant::now());
    f.reconciler.expire().await;
    assert!(f.channel.subscriptions(&broker).await.unwrap().is_empty());
    assert!(f.board.trigger(&key("orders")).is_none());
}

#[tokio::test]
async fn a_purge_deletes_retained_storage_and_only_that() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let _ = trigger_with_backlog(&mut f, 2).await;
    let other = trigger("audit", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &other])).await;

    let refused = f.reconciler.purge(PurgeKind::Trigger, &key("audit")).await;
    assert!(
        refused
            .unwrap_err()
            .contains("no storage of a deleted trigger shop/audit")
    );
    let deleted = f
        .reconciler
        .purge(PurgeKind::Trigger, &key("orders"))
        .await
        .unwrap();
    assert_eq!(
        deleted,
        ["the cursor of trigger shop/orders on broker shop/default"]
    );
    assert_eq!(
        f.channel.subscriptions(&key("default")).await.unwrap(),
        vec![key("audit")]
    );
}

#[tokio::test]
async fn a_deleted_broker_keeps_its_log_while_events_wait_and_resumes_when_it_returns() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger_with_backlog(&mut f, 4).await;
    // The broker's manifest goes; the (now invalid) trigger stays.
    f.reconciler.reconcile(&manifests(&[&t])).await;
    assert_eq!(f.channel.logs().await.unwrap(), vec![key("default")]);
    assert_eq!(
        f.board.broker(&key("default")).unwrap().reason,
        Some("Retained")
    );

    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    assert!(f.board.broker(&key("default")).unwrap().ready);
    assert_eq!(
        f.channel
            .backlog(&key("default"), &key("orders"))
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn removing_a_broker_without_waiting_events_deletes_its_log_and_its_triggers_wait() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    f.reconciler.reconcile(&manifests(&[&t])).await;
    assert!(f.channel.logs().await.unwrap().is_empty());
    assert_eq!(f.trigger_reason("orders"), Some("BrokerDoesNotExist"));
}

#[tokio::test]
async fn an_unreadable_broker_manifest_keeps_it_accepting_and_its_triggers_delivering() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger("orders", "http://127.0.0.1:9/");
    let good = manifests(&[BROKER, &t]);
    f.reconciler.reconcile(&good).await;

    // A typo saved into the broker's document.
    let mut typo = manifests(&[&BROKER.replace("kind: Broker", "kind: Broker\nspec: ["), &t]);
    typo.carry_over(&good);
    f.reconciler.reconcile(&typo).await;
    let broker = f.board.broker(&key("default")).unwrap();
    assert_eq!(broker.reason, Some("InvalidBroker"));
    assert!(broker.message.unwrap().contains("not valid YAML"));
    assert!(
        f.dataplane.is_running(&key("orders")),
        "its trigger keeps delivering"
    );
    assert!(f.board.trigger(&key("orders")).unwrap().condition.ready);
    assert_eq!(f.channel.logs().await.unwrap(), vec![key("default")]);
}

#[tokio::test]
async fn a_name_defined_twice_keeps_the_running_trigger() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let first = trigger("orders", "http://127.0.0.1:9/first");
    f.reconciler.reconcile(&manifests(&[BROKER, &first])).await;
    let second = trigger("orders", "http://127.0.0.1:9/second");
    f.reconciler
        .reconcile(&manifests(&[BROKER, &second, &first]))
        .await;
    let status = f.board.trigger(&key("orders")).unwrap();
    assert_eq!(status.condition.reason, Some("InvalidTrigger"));
    assert!(
        status
            .condition
            .message
            .unwrap()
            .contains("defined more than once")
    );
    assert_eq!(
        status.subscriber.as_deref(),
        Some("http://127.0.0.1:9/first")
    );
    assert!(f.dataplane.is_running(&key("orders")));
}

#[tokio::test]
async fn storage_of_objects_deleted_while_down_is_collected_on_start() {
    let channel: Arc<dyn Channel> = Arc::new(MemoryChannel::new());
    let (kept, gone) = (key("default"), key("old"));
    for broker in [&kept, &gone] {
        channel.ensure_log(broker).await.unwrap();
    }
    drop(channel.subscribe(&kept, &key("orders")).await.unwrap());
    drop(channel.subscribe(&kept, &key("deleted")).await.unwrap());

    let mut f = Fixture::new(channel.clone());
    let t = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    assert_eq!(channel.logs().await.unwrap(), vec![kept.clone()]);
    assert_eq!(
        channel.subscriptions(&kept).await.unwrap(),
        vec![key("orders")]
    );
}

#[tokio::test]
async fn storage_deleted_while_down_that_holds_events_is_retained_at_start() {
    let channel: Arc<dyn Channel> = Arc::new(MemoryChannel::new());
    let old = key("old");
    channel.ensure_log(&old).await.unwrap();
    drop(channel.subscribe(&old, &key("audit")).await.unwrap());
    let event = Event::new("1", "/s", "t").unwrap();
    channel.append(&old, vec![event]).await.unwrap();

    let mut f = Fixture::new(channel.clone());
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    let mut logs = channel.logs().await.unwrap();
    logs.sort();
    assert_eq!(logs, vec![key("default"), old.clone()]);
    assert_eq!(channel.backlog(&old, &key("audit")).await.unwrap(), 1);
    assert_eq!(f.board.broker(&old).unwrap().reason, Some("Retained"));
    assert_eq!(f.trigger_reason("audit"), Some("Retained"));
}

#[tokio::test]
async fn nothing_is_collected_at_start_while_a_manifest_cannot_be_read() {
    let channel: Arc<dyn Channel> = Arc::new(MemoryChannel::new());
    let old = key("old");
    channel.ensure_log(&old).await.unwrap();

    let mut f = Fixture::new(channel.clone());
    let unreadable = manifests(&[BROKER, "kind: [oops"]);
    assert!(!unreadable.unread.is_empty());
    f.reconciler.reconcile(&unreadable).await;
    let mut logs = channel.logs().await.unwrap();
    logs.sort();
    assert_eq!(logs, vec![key("default"), old]);
}

#[tokio::test]
async fn without_collection_at_start_other_installations_storage_is_kept() {
    let channel: Arc<dyn Channel> = Arc::new(MemoryChannel::new());
    let theirs = ObjectKey::new("other-team", "events");
    channel.ensure_log(&theirs).await.unwrap();
    drop(
        channel
            .subscribe(&theirs, &ObjectKey::new("other-team", "audit"))
            .await
            .unwrap(),
    );

    let dataplane = Arc::new(DataPlane::new(channel.clone(), DataPlaneOptions::default()));
    let roles = Roles {
        collect_at_start: false,
        ..Roles::ALL
    };
    let mut reconciler = Reconciler::with_roles(dataplane, Arc::default(), roles);
    let t = trigger("orders", "http://127.0.0.1:9/");
    reconciler.reconcile(&manifests(&[BROKER, &t])).await;

    let mut logs = channel.logs().await.unwrap();
    logs.sort();
    assert_eq!(logs, vec![theirs.clone(), key("default")]);
    assert_eq!(
        channel.subscriptions(&theirs).await.unwrap(),
        vec![ObjectKey::new("other-team", "audit")]
    );
}
