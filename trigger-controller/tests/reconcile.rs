//! The reconciler against the in-memory channel: readiness and reasons, and what happens
//! to cursors and logs as manifests come and go.

use std::path::Path;
use std::sync::Arc;

use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::Channel;
use weft_channels::memory::MemoryChannel;
use weft_config::manifest::{Manifests, load_str};
use weft_config::{Event, ObjectKey};
use weft_controller::reconcile::{Reconciler, Roles};
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
    board: Arc<StatusBoard>,
    reconciler: Reconciler,
}

impl Fixture {
    fn new(channel: Arc<dyn Channel>) -> Self {
        let dataplane = Arc::new(DataPlane::new(channel.clone(), DataPlaneOptions::default()));
        let board = Arc::new(StatusBoard::default());
        Fixture {
            reconciler: Reconciler::new(dataplane, board.clone()),
            channel,
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
async fn an_invalid_edit_pauses_the_trigger_but_keeps_its_cursor() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let good = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &good])).await;
    let broker = key("default");
    assert_eq!(
        f.channel.subscriptions(&broker).await.unwrap(),
        vec![key("orders")]
    );

    let broken = trigger("orders", "not a url");
    f.reconciler.reconcile(&manifests(&[BROKER, &broken])).await;
    let status = f.board.trigger(&key("orders")).unwrap();
    assert_eq!(status.condition.reason, Some("InvalidManifest"));
    assert!(
        status
            .condition
            .message
            .unwrap()
            .contains("spec.subscriber.uri")
    );
    // Events that arrive meanwhile wait for the trigger.
    f.channel
        .append(&broker, vec![Event::new("1", "/s", "t").unwrap()])
        .await
        .unwrap();
    assert_eq!(
        f.channel.subscriptions(&broker).await.unwrap(),
        vec![key("orders")]
    );
    assert_eq!(f.channel.backlog(&broker, &key("orders")).await.unwrap(), 1);

    // Removing the trigger deletes its cursor.
    f.reconciler.reconcile(&manifests(&[BROKER])).await;
    assert!(f.channel.subscriptions(&broker).await.unwrap().is_empty());
    assert!(f.board.trigger(&key("orders")).is_none());
}

#[tokio::test]
async fn removing_a_broker_deletes_its_log_and_its_triggers_wait_for_it() {
    let mut f = Fixture::new(Arc::new(MemoryChannel::new()));
    let t = trigger("orders", "http://127.0.0.1:9/");
    f.reconciler.reconcile(&manifests(&[BROKER, &t])).await;
    f.reconciler.reconcile(&manifests(&[&t])).await;
    assert!(f.channel.logs().await.unwrap().is_empty());
    assert_eq!(f.trigger_reason("orders"), Some("BrokerDoesNotExist"));
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
