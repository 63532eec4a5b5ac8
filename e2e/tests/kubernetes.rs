//! Weft on a real Kubernetes API server (`e2e/services/up kube`: etcd and kube-apiserver on
//! loopback), driven with `kubectl` as a user would: the CRDs from `config/crds/` installed,
//! Knative-style Brokers and Triggers applied, and `weft controller`, `weft ingress` and
//! `weft dispatcher` running as local processes against it on PostgreSQL (no kubelet runs
//! Pods here).
//!
//! Each test works in a namespace of its own, with its own three processes watching only that
//! namespace and its own leader-election Lease there, so tests run in parallel; the one that
//! stops the API server runs alone ([`API_SERVER`]). The
//! controller is told the ingress's local URL (`--ingress-url`), so a Broker's
//! `status.address.url` is where a test sends its events.
//!
//! Skipped without `WEFT_KUBECONFIG` and `WEFT_POSTGRES_URL`, unless
//! `WEFT_REQUIRE_BACKENDS=1`. Run with `cargo build --bin weft && cargo test -p weft-e2e
//! --test kubernetes`.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OnceCell, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;
use weft_e2e::backend::unique_name;
use weft_e2e::cluster::{Role, condition, is_true};
use weft_e2e::{Backend, Cluster, Delivery, Producer, Sink, broker, event, secs, trigger};

const CLASS: &str = "eventing.knative.dev/broker.class";
/// How long the controller may take to write a status.
const STATUS: Duration = Duration::from_secs(30);

/// Held shared by every test, and exclusively by the one that stops the API server.
static API_SERVER: RwLock<()> = RwLock::const_new(());

/// A test's hold on [`API_SERVER`], released when the test ends.
enum Hold {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// One test's cluster namespace, sink and Weft processes.
struct Env {
    _hold: Hold,
    cluster: Cluster,
    namespace: String,
    postgres: String,
    channel: String,
    sink: Sink,
    ingress: Role,
    dispatcher: Role,
    controller: Role,
}

static CRDS: OnceCell<()> = OnceCell::const_new();

impl Env {
    async fn start() -> Option<Env> {
        Self::start_holding(Hold::Shared(API_SERVER.read().await)).await
    }

    /// For a test that stops the API server: no other test runs meanwhile.
    async fn start_alone() -> Option<Env> {
        Self::start_holding(Hold::Alone(API_SERVER.write().await)).await
    }

    async fn start_holding(hold: Hold) -> Option<Env> {
        let cluster = Cluster::from_env()?;
        let postgres = Backend::Postgres.url()?;
        CRDS.get_or_init(|| cluster.install_crds()).await;
        let namespace = unique_name();
        cluster.create_namespace(&namespace).await;
        let channel = Backend::Postgres.channel_url(&postgres, &namespace);
        let sink = Sink::start().await;
        let args = Self::args(&channel, &namespace);
        let ingress = Role::start(&cluster, "ingress", &args).await;
        let dispatcher = Role::start(&cluster, "dispatcher", &args).await;
        let controller = Self::controller(&cluster, &channel, &namespace, &ingress).await;
        Some(Env {
            _hold: hold,
            cluster,
            namespace,
            postgres,
            channel,
            sink,
            ingress,
            dispatcher,
            controller,
        })
    }

    fn args(channel: &str, namespace: &str) -> Vec<String> {
        ["--channel", channel, "--namespace", namespace]
            .map(String::from)
            .to_vec()
    }

    async fn controller(cluster: &Cluster, channel: &str, namespace: &str, ingress: &Role) -> Role {
        let args = Self::controller_args(channel, namespace, ingress, 4);
        Role::start(cluster, "controller", &args).await
    }

    /// A controller's arguments: this namespace's channel, ingress URL and Lease, which
    /// lasts `lease_seconds`.
    fn controller_args(
        channel: &str,
        namespace: &str,
        ingress: &Role,
        lease_seconds: u32,
    ) -> Vec<String> {
        let mut args = Self::args(channel, namespace);
        args.extend([
            "--ingress-url".into(),
            ingress.base_url(),
            "--lease-namespace".into(),
            namespace.into(),
            "--lease-seconds".into(),
            lease_seconds.to_string(),
        ]);
        args
    }

    fn weft_broker(&self, name: &str) -> String {
        broker(name)
            .namespace(&self.namespace)
            .annotation(CLASS, "Weft")
            .to_string()
    }

    fn trigger_to(&self, name: &str, broker: &str, path: &str) -> String {
        trigger(name)
            .namespace(&self.namespace)
            .broker(broker)
            .subscriber(self.sink.url(path))
            .to_string()
    }

    /// `(type, reason)` of the Kubernetes Events recorded about the object `name`, waiting
    /// up to the status timeout for at least two.
    async fn events_about(&self, name: &str) -> Vec<(String, String)> {
        let deadline = Instant::now() + STATUS;
        loop {
            let listed = self
                .cluster
                .kubectl(
                    &[
                        "get",
                        "events.events.k8s.io",
                        "-n",
                        &self.namespace,
                        "-o",
                        "json",
                    ],
                    None,
                )
                .await;
            assert!(listed.ok, "kubectl get events: {}", listed.stderr);
            let list: Value = serde_json::from_str(&listed.stdout).expect("JSON");
            let events: Vec<(String, String)> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["regarding"]["name"] == name)
                .map(|e| (text(e, "/type").to_owned(), text(e, "/reason").to_owned()))
                .collect();
            if events.len() >= 2 || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_ready(&self, kind: &str, name: &str) -> Value {
        self.cluster
            .wait_for(kind, &self.namespace, name, "Ready=True", STATUS, |o| {
                is_true(o, "Ready")
            })
            .await
            .expect("a ready object exists")
    }

    async fn wait_gone(&self, kind: &str, name: &str) {
        self.cluster
            .wait_for(kind, &self.namespace, name, "gone", STATUS, |o| o.is_none())
            .await;
    }

    /// POSTs one event to `url` until the ingress takes it (it learns of a new Broker
    /// from its watch, a moment after the controller); returns the event's id.
    async fn send(&self, url: &str, ty: &str) -> String {
        let producer = Producer::new();
        let deadline = Instant::now() + STATUS;
        let event = event(ty).build();
        loop {
            let sent = producer
                .send(url, &event)
                .await
                .expect("the ingress answers");
            if sent.status == 202 {
                return event.id().to_string();
            }
            assert!(
                sent.status == 404 && Instant::now() < deadline,
                "POST {url} answered {} {}",
                sent.status,
                sent.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a dispatcher runs the trigger whose subscriber is `path`: probes go to
    /// `address` until one arrives. A ready trigger keeps what is sent to it anyway; a
    /// test that must know a dispatcher runs it (before the API server goes away) asks.
    async fn started(&self, address: &str, path: &str) {
        let producer = Producer::new();
        let deadline = Instant::now() + STATUS;
        loop {
            let probe = event("com.example.probe").build();
            let sent = producer
                .send(address, &probe)
                .await
                .expect("the ingress answers");
            if sent.status == 202
                && self
                    .sink
                    .try_wait_until(Duration::from_millis(500), |requests| {
                        requests
                            .iter()
                            .any(|r| r.path == path && r.id() == probe.id())
                    })
                    .await
                    .is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no probe reached {path} within {STATUS:?} (last answer {} {})",
                sent.status,
                sent.body
            );
        }
    }

    /// Waits until the sink got the event `id` at `path`.
    async fn wait_delivered(&self, path: &str, id: &str) {
        let got = self
            .sink
            .try_wait_until(secs(30), |requests| {
                requests.iter().any(|r| r.path == path && r.id() == id)
            })
            .await
            .is_some();
        assert!(
            got,
            "event {id} did not reach {path}; the sink got {:?}",
            self.sink
                .requests()
                .iter()
                .map(|r| (r.path.clone(), r.id().to_string()))
                .collect::<Vec<_>>()
        );
    }

    /// Runs one SQL statement on the PostgreSQL server with psql.
    async fn admin_sql(&self, statement: &str) {
        let out = tokio::process::Command::new("psql")
            .args([self.postgres.as_str(), "-tAc", statement])
            .output()
            .await
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {statement:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `SELECT count(*)` of rows of `table` for the object `name` in this namespace, in the
    /// PostgreSQL channel's own tables, read with psql.
    async fn rows(&self, table: &str, name: &str) -> u64 {
        let query = format!(
            "SELECT count(*) FROM {table} WHERE namespace = '{}' AND name = '{name}'",
            self.namespace
        );
        let out = tokio::process::Command::new("psql")
            .args([self.postgres.as_str(), "-tAc", &query])
            .output()
            .await
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a count")
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test]
async fn broker_and_trigger_become_ready_and_deliver_through_the_broker_address() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.cluster.apply(&env.weft_broker("default")).await;
    env.cluster
        .apply(&env.trigger_to("orders", "default", "/orders"))
        .await;

    let broker = env.wait_ready("broker", "default").await;
    let address = format!("{}/{}/default", env.ingress.base_url(), env.namespace);
    assert_eq!(text(&broker, "/status/address/url"), address);
    assert_eq!(
        broker.pointer("/status/observedGeneration"),
        broker.pointer("/metadata/generation")
    );
    for ready in [
        "Addressable",
        "TriggerChannelReady",
        "DeadLetterSinkResolved",
    ] {
        assert!(is_true(Some(&broker), ready), "broker {ready}: {broker:#}");
    }
    assert!(
        broker["metadata"]["finalizers"]
            .to_string()
            .contains("eventing.weft.dev/storage"),
        "the broker carries Weft's finalizer: {broker:#}"
    );

    let trigger = env.wait_ready("trigger", "orders").await;
    assert_eq!(
        text(&trigger, "/status/subscriberUri"),
        env.sink.url("/orders")
    );
    for ready in ["BrokerReady", "SubscriberResolved", "SubscriptionReady"] {
        assert!(
            is_true(Some(&trigger), ready),
            "trigger {ready}: {trigger:#}"
        );
    }

    // What `kubectl get` shows, through the CRDs' printer columns.
    let listed = env
        .cluster
        .kubectl(&["get", "brokers,triggers", "-n", &env.namespace], None)
        .await;
    assert!(listed.ok, "{}", listed.stderr);
    assert!(
        listed.stdout.contains(&address),
        "kubectl get shows the URL:\n{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("True"),
        "kubectl get shows Ready:\n{}",
        listed.stdout
    );

    let id = env.send(&address, "com.example.order").await;
    env.wait_delivered("/orders", &id).await;
}

#[tokio::test]
async fn a_ready_trigger_keeps_what_is_sent_before_any_dispatcher_runs_it() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.dispatcher.kill_9().await;
    env.cluster.apply(&env.weft_broker("default")).await;
    env.cluster
        .apply(&env.trigger_to("patient", "default", "/patient"))
        .await;
    let broker = env.wait_ready("broker", "default").await;
    env.wait_ready("trigger", "patient").await;
    let address = text(&broker, "/status/address/url").to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(env.send(&address, "com.example.early").await);
    }

    env.dispatcher = Role::start(
        &env.cluster,
        "dispatcher",
        &Env::args(&env.channel, &env.namespace),
    )
    .await;
    for id in &ids {
        env.wait_delivered("/patient", id).await;
    }
}

#[tokio::test]
async fn a_trigger_created_before_its_broker_waits_then_delivers() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.cluster
        .apply(&env.trigger_to("early", "late", "/early"))
        .await;
    let trigger = env
        .cluster
        .wait_for(
            "trigger",
            &env.namespace,
            "early",
            "Ready=False BrokerDoesNotExist",
            STATUS,
            |o| {
                o.and_then(|o| condition(o, "Ready"))
                    .is_some_and(|(s, r)| s == "False" && r == "BrokerDoesNotExist")
            },
        )
        .await
        .expect("the trigger exists");
    assert_eq!(
        condition(&trigger, "BrokerReady"),
        Some(("False".into(), "BrokerDoesNotExist".into()))
    );

    env.cluster.apply(&env.weft_broker("late")).await;
    let broker = env.wait_ready("broker", "late").await;
    env.wait_ready("trigger", "early").await;
    let address = text(&broker, "/status/address/url");
    let id = env.send(address, "com.example.late").await;
    env.wait_delivered("/early", &id).await;

    // Each change of Ready was recorded as a Kubernetes Event on the trigger.
    let events = env.events_about("early").await;
    assert!(
        events.contains(&("Warning".into(), "BrokerDoesNotExist".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("Normal".into(), "Ready".into())),
        "{events:?}"
    );
    // The controller counts its reconciles on /metrics.
    let metrics = reqwest::get(format!("{}/metrics", env.controller.base_url()))
        .await
        .expect("the controller serves /metrics")
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"weft_controller_reconciles_total{kind="Trigger",outcome="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_controller_reconcile_duration_seconds"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refs_resolve_to_urls_and_what_weft_cannot_serve_is_not_ready_with_a_reason() {
    let Some(env) = Env::start().await else {
        return;
    };
    let ns = &env.namespace;
    env.cluster.apply(&env.weft_broker("default")).await;
    let service = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  ports:\n  - port: 80\n    targetPort: 8080\n"
        )
    };
    let by_ref = |trigger: &str, service: &str, uri: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {trigger}\n  \
             namespace: {ns}\nspec:\n  broker: default\n  subscriber:\n    ref:\n      \
             apiVersion: v1\n      kind: Service\n      name: {service}\n    uri: {uri}\n"
        )
    };
    env.cluster.apply(&service("sink")).await;
    env.cluster
        .apply(&by_ref("to-service", "sink", "/events"))
        .await;
    env.cluster
        .apply(&by_ref("to-nothing", "absent", "/"))
        .await;
    let bad_sql = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: bad-sql\n  \
         namespace: {ns}\nspec:\n  broker: default\n  filters:\n  - cesql: \"type = \"\n  \
         subscriber:\n    uri: {}\n",
        env.sink.url("/never")
    );
    env.cluster.apply(&bad_sql).await;

    let resolved = env.wait_ready("trigger", "to-service").await;
    assert_eq!(
        text(&resolved, "/status/subscriberUri"),
        format!("http://sink.{ns}.svc.cluster.local/events")
    );

    let unresolved = env
        .cluster
        .wait_for(
            "trigger",
            ns,
            "to-nothing",
            "SubscriberResolved=False",
            STATUS,
            |o| {
                o.and_then(|o| condition(o, "SubscriberResolved"))
                    .is_some_and(|(s, _)| s == "False")
            },
        )
        .await
        .expect("the trigger exists");
    assert_eq!(
        condition(&unresolved, "Ready"),
        Some(("False".into(), "SubscriberResolveFailed".into())),
        "{unresolved:#}"
    );
    let message = unresolved["status"]["conditions"].to_string();
    assert!(
        message.contains("absent"),
        "the message names the missing Service: {message}"
    );

    let invalid = env
        .cluster
        .wait_for(
            "trigger",
            ns,
            "bad-sql",
            "Ready=False InvalidTrigger",
            STATUS,
            |o| {
                o.and_then(|o| condition(o, "Ready"))
                    .is_some_and(|(s, r)| s == "False" && r == "InvalidTrigger")
            },
        )
        .await
        .expect("the trigger exists");
    let message = invalid["status"]["conditions"].to_string();
    assert!(
        message.contains("cesql"),
        "the message names the filter: {message}"
    );

    // The Service appears: the trigger recovers by itself.
    env.cluster.apply(&service("absent")).await;
    let recovered = env.wait_ready("trigger", "to-nothing").await;
    assert_eq!(
        text(&recovered, "/status/subscriberUri"),
        format!("http://absent.{ns}.svc.cluster.local/")
    );
}

#[tokio::test]
async fn deleting_a_trigger_or_broker_removes_its_storage() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.cluster.apply(&env.weft_broker("default")).await;
    env.cluster
        .apply(&env.trigger_to("doomed", "default", "/doomed"))
        .await;
    let broker = env.wait_ready("broker", "default").await;
    env.wait_ready("trigger", "doomed").await;
    let address = text(&broker, "/status/address/url");
    let id = env.send(address, "com.example.x").await;
    env.wait_delivered("/doomed", &id).await;
    assert_eq!(
        env.rows("weft_brokers", "default").await,
        1,
        "the broker has a log"
    );
    assert_eq!(
        env.rows("weft_cursors", "doomed").await,
        1,
        "the trigger has a cursor"
    );

    env.cluster
        .delete("trigger", &env.namespace, "doomed")
        .await;
    env.wait_gone("trigger", "doomed").await;
    assert_eq!(
        env.rows("weft_cursors", "doomed").await,
        0,
        "the cursor is deleted"
    );

    env.cluster
        .delete("broker", &env.namespace, "default")
        .await;
    env.wait_gone("broker", "default").await;
    assert_eq!(
        env.rows("weft_brokers", "default").await,
        0,
        "the log is deleted"
    );
}

#[tokio::test]
async fn a_trigger_deleted_while_events_wait_keeps_its_cursor_until_purged() {
    let Some(env) = Env::start().await else {
        return;
    };
    // A sink nobody listens on: every event waits, retrying.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    env.cluster.apply(&env.weft_broker("default")).await;
    let waiting = trigger("waiting")
        .namespace(&env.namespace)
        .broker("default")
        .subscriber(format!("http://{down}/"))
        .delivery(Delivery::new().retry(50).linear("PT1S"))
        .to_string();
    env.cluster.apply(&waiting).await;
    let broker = env.wait_ready("broker", "default").await;
    env.wait_ready("trigger", "waiting").await;
    let address = text(&broker, "/status/address/url");
    env.send(address, "com.example.waiting").await;

    env.cluster
        .delete("trigger", &env.namespace, "waiting")
        .await;
    // It stays, terminating, with its finalizer and its cursor.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = env.cluster.get("trigger", &env.namespace, "waiting").await;
    let held = held.expect("the trigger is held while its event waits");
    assert!(
        held["metadata"]["deletionTimestamp"].is_string(),
        "{held:#}"
    );
    // `kubectl get` says why, as `weft get` does standalone.
    let held = env
        .cluster
        .wait_for(
            "trigger",
            &env.namespace,
            "waiting",
            "Retained",
            STATUS,
            |o| {
                condition(o.unwrap_or(&Value::Null), "Ready")
                    .is_some_and(|(status, reason)| status == "False" && reason == "Retained")
            },
        )
        .await
        .expect("still held");
    assert!(
        held["metadata"]["deletionTimestamp"].is_string(),
        "{held:#}"
    );
    assert_eq!(
        env.rows("weft_cursors", "waiting").await,
        1,
        "the cursor is kept"
    );

    // A deliberate purge lets it go, with its cursor.
    let purge = env
        .cluster
        .kubectl(
            &[
                "annotate",
                "trigger",
                "waiting",
                "-n",
                &env.namespace,
                "weft.dev/purge=true",
            ],
            None,
        )
        .await;
    assert!(purge.ok, "kubectl annotate: {}", purge.stderr);
    env.wait_gone("trigger", "waiting").await;
    assert_eq!(
        env.rows("weft_cursors", "waiting").await,
        0,
        "the cursor is deleted"
    );
}
#[tokio::test]
async fn a_restarted_controller_catches_up_while_the_data_plane_keeps_delivering() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.cluster.apply(&env.weft_broker("default")).await;
    env.cluster
        .apply(&env.trigger_to("first", "default", "/first"))
        .await;
    let broker = env.wait_ready("broker", "default").await;
    env.wait_ready("trigger", "first").await;
    let address = text(&broker, "/status/address/url").to_string();

    env.controller.kill_9().await;
    let id = env.send(&address, "com.example.while-down").await;
    env.wait_delivered("/first", &id).await;
    env.cluster
        .apply(&env.trigger_to("second", "default", "/second"))
        .await;
    // Its subscriber is a URL: the data plane runs it without the controller.
    env.dispatcher
        .wait_for_log(
            &["dispatcher started", &format!("{}/second", env.namespace)],
            STATUS,
        )
        .await;
    let waiting = env
        .cluster
        .get("trigger", &env.namespace, "second")
        .await
        .expect("the trigger exists");
    assert!(
        waiting.pointer("/status/conditions").is_none(),
        "no controller runs, so no status: {waiting:#}"
    );

    // A new replica takes the lease over once the dead one's expires, and catches up.
    env.controller =
        Env::controller(&env.cluster, &env.channel, &env.namespace, &env.ingress).await;
    env.wait_ready("trigger", "second").await;
    let id = env.send(&address, "com.example.after").await;
    env.wait_delivered("/first", &id).await;
    env.wait_delivered("/second", &id).await;
}

#[tokio::test]
async fn brokers_of_other_classes_are_left_alone() {
    let Some(env) = Env::start().await else {
        return;
    };
    let other = broker("theirs")
        .namespace(&env.namespace)
        .annotation(CLASS, "MTChannelBasedBroker")
        .to_string();
    env.cluster.apply(&other).await;
    env.cluster
        .apply(&env.trigger_to("on-theirs", "theirs", "/theirs"))
        .await;
    env.cluster.apply(&env.weft_broker("ours")).await;
    env.wait_ready("broker", "ours").await;
    // The controller says when it looked at them and left them alone.
    let ns = &env.namespace;
    for object in [format!("{ns}/theirs"), format!("{ns}/on-theirs")] {
        env.controller
            .wait_for_log(&["another class", &object], STATUS)
            .await;
    }

    let theirs = env
        .cluster
        .get("broker", &env.namespace, "theirs")
        .await
        .expect("the broker exists");
    assert!(
        theirs.get("status").is_none(),
        "no status on another class's broker: {theirs:#}"
    );
    assert!(
        theirs["metadata"].get("finalizers").is_none(),
        "no finalizer on another class's broker: {theirs:#}"
    );
    let on_theirs = env
        .cluster
        .get("trigger", &env.namespace, "on-theirs")
        .await
        .expect("the trigger exists");
    assert!(
        on_theirs.get("status").is_none(),
        "no status on its trigger: {on_theirs:#}"
    );
    let sent = Producer::new()
        .send(
            &format!("{}/{}/theirs", env.ingress.base_url(), env.namespace),
            &event("x").build(),
        )
        .await
        .expect("the ingress answers");
    assert_eq!(
        sent.status, 404,
        "the ingress does not serve another class's broker"
    );
}

#[tokio::test]
async fn the_api_server_rejects_what_knative_rejects() {
    let Some(env) = Env::start().await else {
        return;
    };
    let ns = &env.namespace;
    let two_dialects = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: two\n  \
         namespace: {ns}\nspec:\n  broker: default\n  filters:\n  - exact:\n      type: a\n    \
         prefix:\n      type: b\n  subscriber:\n    uri: http://example.com/\n"
    );
    // What Knative users write is accepted: the examples, and every filter dialect nested.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples");
    let out = env
        .cluster
        .kubectl(&["apply", "--dry-run=server", "-f", examples], None)
        .await;
    assert!(out.ok, "the examples are accepted: {}", out.stderr);
    let rich = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: rich\n  \
         namespace: {ns}\n  annotations:\n    weft.dev/delivery-order: ordered\nspec:\n  \
         broker: default\n  filter:\n    attributes:\n      type: a\n  filters:\n  \
         - all:\n    - exact:\n        type: a\n    - any:\n      - prefix:\n          \
         source: /shop\n      - not:\n          suffix:\n            subject: .tmp\n  \
         - cesql: \"type LIKE 'com.%' AND INT(priority) > 3\"\n  subscriber:\n    ref:\n      \
         apiVersion: v1\n      kind: Service\n      name: sink\n    uri: /events\n  \
         delivery:\n    retry: 3\n    backoffPolicy: exponential\n    backoffDelay: PT0.2S\n    \
         timeout: PT5S\n    deadLetterSink:\n      uri: http://dead.example.com/\n"
    );
    let out = env.cluster.try_apply(&rich).await;
    assert!(
        out.ok,
        "a trigger using every dialect is accepted: {}\n{rich}",
        out.stderr
    );

    let out = env.cluster.try_apply(&two_dialects).await;
    assert!(!out.ok, "a filter with two dialects is rejected");
    assert!(
        out.stderr.contains("filters"),
        "the error names the field: {}",
        out.stderr
    );

    let no_subscriber = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: nowhere\n  \
         namespace: {ns}\nspec:\n  broker: default\n  subscriber: {{}}\n"
    );
    let out = env.cluster.try_apply(&no_subscriber).await;
    assert!(!out.ok, "a subscriber without ref or uri is rejected");

    env.cluster
        .apply(&env.trigger_to("moving", "default", "/m"))
        .await;
    let out = env
        .cluster
        .try_apply(&env.trigger_to("moving", "other", "/m"))
        .await;
    assert!(!out.ok, "spec.broker is immutable");
    assert!(
        out.stderr.contains("mmutable"),
        "the error says why: {}",
        out.stderr
    );
}

#[tokio::test]
async fn the_data_plane_keeps_delivering_while_the_api_server_is_down() {
    let Some(env) = Env::start_alone().await else {
        return;
    };
    env.cluster.apply(&env.weft_broker("default")).await;
    env.cluster
        .apply(&env.trigger_to("first", "default", "/first"))
        .await;
    let broker = env.wait_ready("broker", "default").await;
    env.wait_ready("trigger", "first").await;
    let address = text(&broker, "/status/address/url").to_string();
    env.started(&address, "/first").await;
    let id = env.send(&address, "com.example.before").await;
    env.wait_delivered("/first", &id).await;

    let outage = env.cluster.kill_api_server().await;
    let producer = Producer::new();
    for n in 0..3 {
        let event = event("com.example.during").build();
        let sent = producer
            .send(&address, &event)
            .await
            .expect("the ingress answers");
        assert_eq!(
            sent.status, 202,
            "event {n} while the API server is down: {}",
            sent.body
        );
        env.wait_delivered("/first", event.id()).await;
    }
    // Past the controller's 4 s lease: it loses the lease and stands by.
    env.controller
        .wait_for_log(&["lost the lease; standing by"], STATUS)
        .await;
    outage.start().await;

    // Everyone reconnects by themselves: a new trigger gets ready and receives events.
    env.cluster
        .apply(&env.trigger_to("after", "default", "/after"))
        .await;
    env.wait_ready("trigger", "after").await;
    env.started(&address, "/after").await;
    let id = env.send(&address, "com.example.after").await;
    env.wait_delivered("/after", &id).await;
    env.wait_delivered("/first", &id).await;
}

#[tokio::test]
async fn of_two_controllers_one_leads_and_the_other_takes_over_when_it_dies() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    let args = Env::controller_args(&env.channel, &env.namespace, &env.ingress, 4);
    let second = Role::start_candidate(&env.cluster, &args).await;
    env.cluster.apply(&env.weft_broker("default")).await;
    env.wait_ready("broker", "default").await;
    assert!(!second.has_led(), "only one controller leads at a time");

    env.controller.kill_9().await;
    env.cluster
        .apply(&env.trigger_to("later", "default", "/later"))
        .await;
    env.wait_ready("trigger", "later").await;
    assert!(second.has_led(), "the candidate took over the lease");
}

#[tokio::test]
async fn a_controller_stopped_with_sigterm_gives_its_lease_up() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    // Two controllers with a 30 s lease (renewed, and retried by the standby, every ~4 s):
    // without a release, the standby would wait out the whole lease.
    env.controller.kill_9().await;
    let args = Env::controller_args(&env.channel, &env.namespace, &env.ingress, 30);
    let mut first = Role::start(&env.cluster, "controller", &args).await;
    let leader = first.led_as().expect("the first controller leads");
    let mut second = Role::start_candidate(&env.cluster, &args).await;

    assert!(first.terminate().await, "the leader exits cleanly");
    let lease = env
        .cluster
        .get("lease", &env.namespace, "weft-controller")
        .await
        .expect("the lease exists");
    assert_ne!(
        text(&lease, "/spec/holderIdentity"),
        leader,
        "the stopped leader no longer holds the lease: {lease:#}"
    );
    first.wait_for_log(&["released the lease"], STATUS).await;

    // The standby takes over at its next try and reconciles.
    env.cluster.apply(&env.weft_broker("default")).await;
    env.wait_ready("broker", "default").await;
    assert!(second.has_led(), "the standby took the lease over");
    assert!(second.terminate().await, "the standby exits cleanly too");
}

#[tokio::test]
async fn a_replica_started_before_its_channel_waits_for_it_then_serves() {
    let Some(env) = Env::start().await else {
        return;
    };
    // A database that does not exist yet: opening the channel fails until it does.
    let database = format!("weft_late_{}", env.namespace.replace('-', "_"));
    let (server, _) = env
        .postgres
        .rsplit_once('/')
        .expect("a database in the URL");
    let channel = Backend::Postgres.channel_url(&format!("{server}/{database}"), &env.namespace);
    let args = Env::args(&channel, &env.namespace);
    let ingress = Role::start_until(&env.cluster, "ingress", &args, "weft starting").await;
    ingress
        .wait_for_log(&["cannot open the channel; retrying"], STATUS)
        .await;

    // Alive (no restart by a liveness probe), not ready, refusing events for now.
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let url = format!("{}{path}", ingress.base_url());
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("the replica answers")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    let sent = Producer::new()
        .send(
            &format!("{}/{}/default", ingress.base_url(), env.namespace),
            &event("com.example.early").build(),
        )
        .await
        .expect("the replica answers");
    assert_eq!(sent.status, 503, "{}", sent.body);

    env.admin_sql(&format!("CREATE DATABASE {database}")).await;
    let deadline = Instant::now() + STATUS;
    while status("/readyz").await != 200 {
        assert!(
            Instant::now() < deadline,
            "the replica was not ready within {STATUS:?} of its database appearing; log:\n{}",
            ingress.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("/healthz").await, 200);
    drop(ingress);
    env.admin_sql(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await;
}
