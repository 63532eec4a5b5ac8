//! Whole-system tests on the real servers that `e2e/services/` runs (PostgreSQL, NATS
//! JetStream, Kafka), one per scenario and backend (`backend_tests!` at the end):
//!
//! - `scale_out_survives_sigkill`: two `weft up` processes on one backend with the same
//!   manifests share a trigger; producers send to both ingresses in turn; one process is
//!   killed with SIGKILL mid-stream and started again. Both must have delivered before the
//!   kill (the backends share a trigger's work: row leases, a shared durable consumer, a
//!   consumer group), and every event that got a 202 must reach the sink.
//! - `server_restart_loses_nothing` and `server_crash_loses_nothing`: the server is stopped
//!   under load (cleanly, or like a crash with `--kill`), kept down for [`OUTAGE`], and
//!   started again on its data. While it is down the ingress must answer 5xx, never 202;
//!   once it is back, Weft must accept events again by itself within [`RECOVERY`]; every
//!   202 must reach the sink.
//!
//! Duplicates are allowed (at-least-once) and printed; loss is not. A test skips when its
//! server's URL is unset, unless `WEFT_REQUIRE_BACKENDS=1` (see [`Backend::url`]).
//!
//! Tests of one backend run one at a time ([`LOCKS`]): stopping a server would break any
//! other test using it. Tests of different backends run in parallel.
//! Each test works in a namespace of its own and, on Kafka and NATS, under a name prefix of
//! its own ([`Backend::channel_url`]). A passing test deletes its broker (and so its log);
//! a failing one leaves it on the server for a look.
//!
//! Every check of a test runs, and a failing test lists all that failed, with the requests
//! concerned and their times relative to the kill or the stop.
//!
//! Run with `cargo build --bin weft && cargo test -p weft-e2e --test backends`; the binary
//! must have been built with the backends' features (a URL it cannot open fails the test).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::Instant;
use weft_e2e::backend::unique_name;
use weft_e2e::{Backend, Producer, Sink, Weft, broker, documents, event, ms, secs, trigger};

/// Concurrent producers; each sends the next event as soon as the last one is answered.
const PRODUCERS: usize = 4;
/// How long a server stays down: longer than the backends' append timeouts (PostgreSQL
/// 3 s to get a connection, NATS 5 s, Kafka 10 s counting its slow start), so that
/// requests fail while it is down instead of waiting it out.
const OUTAGE: Duration = Duration::from_secs(8);
/// How soon after the server serves again Weft must accept events again.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long every acknowledged event has to reach the sink once producers stop: covers
/// the 10 s takeover of a killed process's events (see `Backend::channel_url`).
const DRAIN: Duration = Duration::from_secs(60);
/// Fewer acknowledged events than this would prove little about loss.
const MIN_ACKED: usize = 100;
/// The broker every test uses, in its own namespace.
const BROKER: &str = "default";
/// The trigger every test uses.
const TRIGGER: &str = "all";

/// One lock per backend, in [`Backend::ALL`] order; see the module docs.
static LOCKS: [tokio::sync::Mutex<()>; 3] = [const { tokio::sync::Mutex::const_new(()) }; 3];

/// What one POST got back.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// 202: the event is owed to the sink.
    Accepted,
    /// Any other status, with the start of the body.
    Status(u16, String),
    /// No response: connection refused or reset, or a timeout.
    Failed(String),
}

/// One POST of one event.
#[derive(Clone, Debug)]
struct Record {
    id: String,
    /// Which ingress it went to (an index into the load's targets).
    target: usize,
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
}

impl Record {
    /// One line for a failure message, with times relative to `epoch` (`label`).
    fn brief(&self, epoch: Instant, label: &str) -> String {
        let at = |t: Instant| {
            let secs = if t >= epoch {
                (t - epoch).as_secs_f64()
            } else {
                -(epoch - t).as_secs_f64()
            };
            format!("{secs:+.3}s")
        };
        let outcome = match &self.outcome {
            Outcome::Accepted => "202".to_owned(),
            Outcome::Status(code, body) => format!("{code} {:?}", body.trim_end()),
            Outcome::Failed(error) => format!("no response: {error}"),
        };
        format!(
            "{} to ingress {}, sent {} and answered {} from {label}: {outcome}",
            self.id,
            self.target,
            at(self.sent),
            at(self.answered)
        )
    }

    fn accepted(&self) -> bool {
        self.outcome == Outcome::Accepted
    }

    fn server_error(&self) -> bool {
        matches!(self.outcome, Outcome::Status(500..=599, _))
    }
}

/// [`PRODUCERS`] tasks POSTing events without pause, each to the targets in turn, until
/// stopped; every answer is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(targets: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let targets = Arc::new(targets);
        let tasks = (0..PRODUCERS)
            .map(|p| {
                let (stop, records, targets) = (stop.clone(), records.clone(), targets.clone());
                tokio::spawn(async move {
                    let producer = Producer::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let target = (p + n) % targets.len();
                        n += 1;
                        let e = event("com.example.backends").build();
                        let sent = Instant::now();
                        let outcome = match producer.send(&targets[target], &e).await {
                            Ok(r) if r.status.as_u16() == 202 => Outcome::Accepted,
                            Ok(r) => Outcome::Status(
                                r.status.as_u16(),
                                r.body.chars().take(200).collect(),
                            ),
                            Err(e) => Outcome::Failed(e.to_string()),
                        };
                        let retry = outcome != Outcome::Accepted;
                        records.lock().unwrap().push(Record {
                            id: e.id().to_owned(),
                            target,
                            sent,
                            answered: Instant::now(),
                            outcome,
                        });
                        if retry {
                            // Not acknowledged, so not owed. Back off a little instead of
                            // spinning on a refused connection.
                            tokio::time::sleep(ms(20)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            records,
            tasks,
        }
    }

    /// How many records satisfy `f` so far.
    fn count(&self, f: impl Fn(&Record) -> bool) -> usize {
        self.records.lock().unwrap().iter().filter(|r| f(r)).count()
    }

    /// Waits until some record satisfies `f` and returns the first that does; panics,
    /// saying `what` was awaited, after `timeout`.
    async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&Record) -> bool) -> Record {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            if let Some(r) = self.records.lock().unwrap().iter().find(|r| f(r)) {
                return r.clone();
            }
            if Instant::now() >= deadline {
                let records = self.records.lock().unwrap();
                let last: Vec<String> = records[records.len().saturating_sub(8)..]
                    .iter()
                    .map(|r| r.brief(start, "the start of the wait"))
                    .collect();
                panic!(
                    "no {what} within {timeout:?}; the last answers were:\n    {}",
                    last.join("\n    ")
                );
            }
            tokio::time::sleep(ms(20)).await;
        }
    }

    /// Stops the producers, waits for their last requests, and returns every record.
    async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a producer task does not panic");
        }
        std::mem::take(&mut *self.records.lock().unwrap())
    }
}

/// One test's backend, namespace, sink and manifests; holds its backend's lock.
struct Test {
    backend: Backend,
    namespace: String,
    channel: String,
    manifests: String,
    sink: Sink,
    /// Released last, after the test's processes are gone.
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl Test {
    /// Takes the backend's lock and prepares a broker and a trigger to a fresh sink in a
    /// namespace of its own; `None` (the test skips) when the backend's URL is unset.
    async fn prepare(backend: Backend) -> Option<Test> {
        let server = backend.url()?;
        let waiting = Instant::now();
        let lock = LOCKS[Backend::ALL.iter().position(|b| *b == backend).unwrap_or(0)]
            .lock()
            .await;
        let names = unique_name();
        println!(
            "{backend}: namespace {names} (waited {:?} for other {backend} tests)",
            waiting.elapsed()
        );
        let sink = Sink::start().await;
        let manifests = documents(&[
            &broker(BROKER).namespace(&names),
            &trigger(TRIGGER)
                .namespace(&names)
                .broker(BROKER)
                .subscriber(sink.url("/all")),
        ]);
        Some(Test {
            backend,
            channel: backend.channel_url(&server, &names),
            namespace: names,
            manifests,
            sink,
            _lock: lock,
        })
    }

    /// Starts a `weft up` on the backend with the test's manifests; returns once its
    /// trigger is ready.
    async fn weft(&self) -> Weft {
        Weft::builder()
            .manifest("broker.yaml", &self.manifests)
            .arg("--channel")
            .arg(&self.channel)
            .start()
            .await
    }

    /// The ingress URL of the test's broker on `weft`.
    fn url(&self, weft: &Weft) -> String {
        weft.url(&self.namespace, BROKER)
    }

    /// What `weft` reports its dispatcher delivered for the test's trigger (0 while it
    /// does not list the trigger).
    async fn delivered(&self, weft: &Weft) -> u64 {
        weft.get_triggers()
            .await
            .iter()
            .find(|t| t.namespace == self.namespace && t.name == TRIGGER)
            .map_or(0, |t| t.delivered)
    }

    /// Waits until every acknowledged id has reached the sink and prints deliveries and
    /// duplicates; notes the lost ids otherwise.
    async fn check_all_arrive(
        &self,
        records: &[Record],
        (epoch, label): (Instant, &str),
        failures: &mut Failures,
    ) {
        let acked = acknowledged(records);
        let missing = self.sink.wait_for_ids(&acked, DRAIN).await;
        let all = self.sink.requests();
        let unique: HashSet<&str> = all
            .iter()
            .filter_map(|r| r.event.as_ref().map(|e| e.id()))
            .collect();
        println!(
            "{}: sink got {} deliveries, {} distinct ids, {} duplicates",
            self.backend,
            all.len(),
            unique.len(),
            all.len() - unique.len()
        );
        let lost: Vec<String> = records
            .iter()
            .filter(|r| r.accepted() && missing.contains(&r.id))
            .map(|r| r.brief(epoch, label))
            .collect();
        failures.check(lost.is_empty(), || {
            format!(
                "{} of {} acknowledged events did not reach the sink within {DRAIN:?}:\n    {}",
                lost.len(),
                acked.len(),
                lost[..lost.len().min(10)].join("\n    ")
            )
        });
    }

    /// Deletes the broker (and so its log) from every process, so that the server does
    /// not collect topics and streams run after run. Best effort: a broker still listed
    /// after a while only gets a note, since the test's point is already proven.
    async fn delete_broker(&self, wefts: &[&Weft]) {
        for weft in wefts {
            weft.remove_manifest("broker.yaml");
        }
        let deadline = Instant::now() + secs(15);
        for weft in wefts {
            loop {
                let brokers = weft.get_brokers().await;
                if !brokers.iter().any(|b| b.namespace == self.namespace) {
                    break;
                }
                if Instant::now() >= deadline {
                    println!("note: broker {}/{BROKER} still listed", self.namespace);
                    return;
                }
                tokio::time::sleep(ms(100)).await;
            }
        }
    }
}

/// A seed from the clock, printed by the test, so that runs vary.
fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

/// The ids that got a 202.
fn acknowledged(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .filter(|r| r.accepted())
        .map(|r| r.id.clone())
        .collect()
}

/// Notes answers that were neither a 202 nor a 5xx: a 4xx tells the producer its valid
/// event is wrong or its broker absent, which no outage or restart excuses (a producer does
/// not retry it).
fn check_only_202_or_5xx(
    records: &[Record],
    (epoch, label): (Instant, &str),
    failures: &mut Failures,
) {
    let unexpected: Vec<String> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Status(code, _) if !(500..=599).contains(&code)))
        .map(|r| r.brief(epoch, label))
        .collect();
    failures.check(unexpected.is_empty(), || {
        format!(
            "{} answers were neither 202 nor 5xx, e.g.\n    {}",
            unexpected.len(),
            unexpected[..unexpected.len().min(3)].join("\n    ")
        )
    });
}

/// What a test found wrong. Once its load has run, every check runs and the test fails at
/// the end listing all that failed, so that one failure does not hide another (a bad status
/// code and a lost event, say).
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    /// Notes `what` unless `ok`.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let what = what();
            println!("FAILED: {what}");
            self.0.push(what);
        }
    }

    /// Panics listing every failed check.
    fn assert_none(self, backend: Backend) {
        assert!(
            self.0.is_empty(),
            "{backend}: {} checks failed:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// Prints how the answers split, per target.
fn print_outcomes(backend: Backend, records: &[Record], targets: usize) {
    for target in 0..targets {
        let of_target = || records.iter().filter(move |r| r.target == target);
        println!(
            "{backend}: ingress {target}: {} sent, {} accepted, {} 5xx, {} without a response",
            of_target().count(),
            of_target().filter(|r| r.accepted()).count(),
            of_target().filter(|r| r.server_error()).count(),
            of_target()
                .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
                .count(),
        );
    }
}

async fn scale_out_survives_sigkill(backend: Backend) {
    let Some(test) = Test::prepare(backend).await else {
        return;
    };
    let mut failures = Failures::default();
    let mut wefts = [test.weft().await, test.weft().await];
    let targets: Vec<String> = wefts.iter().map(|w| test.url(w)).collect();
    let load = Load::start(targets);

    // Normal operation: both processes take a share of the trigger's events. Every
    // backend documents this (PostgreSQL row leases, NATS a durable consumer both pull
    // from, Kafka a consumer group over the topic's partitions).
    let deadline = Instant::now() + secs(30);
    let shares = loop {
        let shares = [
            test.delivered(&wefts[0]).await,
            test.delivered(&wefts[1]).await,
        ];
        if shares.iter().all(|&n| n >= 10) || Instant::now() >= deadline {
            break shares;
        }
        tokio::time::sleep(ms(100)).await;
    };
    println!("{backend}: before the kill, the processes delivered {shares:?}");
    failures.check(shares.iter().all(|&n| n >= 10), || {
        format!(
            "two processes on one backend should share the trigger's work, but after 30 s \
             of load they had delivered {shares:?} (at least 10 each expected)"
        )
    });

    let victim = (seed() % 2) as usize;
    let survivor = 1 - victim;
    let before = load.count(Record::accepted);
    wefts[victim].kill_9().await;
    let killed = Instant::now();
    println!("{backend}: killed process {victim} with SIGKILL ({before} accepted so far)");
    tokio::time::sleep(secs(2)).await;
    wefts[victim].restart().await;
    let restarted = Instant::now();
    println!(
        "{backend}: process {victim} restarted after {:?}",
        restarted - killed
    );
    load.wait_for("202 from the restarted process", secs(15), |r| {
        r.target == victim && r.sent >= restarted && r.accepted()
    })
    .await;
    // Enough acknowledged events to prove something, however slow the machine.
    let deadline = Instant::now() + secs(20);
    tokio::time::sleep(secs(1)).await;
    while load.count(Record::accepted) < 2 * MIN_ACKED && Instant::now() < deadline {
        tokio::time::sleep(ms(100)).await;
    }
    let records = load.stop().await;

    print_outcomes(backend, &records, 2);
    for target in 0..2 {
        failures.check(
            records
                .iter()
                .any(|r| r.target == target && r.sent < killed && r.accepted()),
            || format!("ingress {target} accepted nothing before the kill"),
        );
    }
    let served_meanwhile = records.iter().any(|r| {
        r.target == survivor && r.sent >= killed && r.answered <= restarted && r.accepted()
    });
    failures.check(served_meanwhile, || {
        format!("the surviving process {survivor} accepted nothing while the other was down")
    });
    check_only_202_or_5xx(&records, (restarted, "the restart"), &mut failures);
    let acked = acknowledged(&records).len();
    failures.check(acked > MIN_ACKED, || {
        format!("only {acked} events were acknowledged; the test proves nothing with so few")
    });
    test.check_all_arrive(&records, (killed, "the kill"), &mut failures)
        .await;
    // Kept after a failure, for a look at what the server holds.
    failures.assert_none(backend);
    test.delete_broker(&[&wefts[0], &wefts[1]]).await;
}

async fn server_outage(backend: Backend, kill: bool) {
    let Some(test) = Test::prepare(backend).await else {
        return;
    };
    assert!(
        backend.is_running().await,
        "{backend}: `e2e/services/status {backend}` does not report it running; this test \
         stops and starts the server through e2e/services, so {} must name the server \
         `e2e/services/up {backend}` started",
        backend.env_var()
    );
    let mut failures = Failures::default();
    let weft = test.weft().await;
    let load = Load::start(vec![test.url(&weft)]);
    load.wait_for("202 before the outage", secs(15), Record::accepted)
        .await;
    tokio::time::sleep(secs(1)).await;

    let how = if kill { "killed" } else { "stopped" };
    let stopping = Instant::now();
    let outage = backend.stop(kill).await;
    let stopped = Instant::now();
    println!(
        "{backend}: server {how} in {:?} ({} accepted so far)",
        stopped - stopping,
        load.count(Record::accepted)
    );
    tokio::time::sleep(OUTAGE).await;
    let starting = Instant::now();
    outage.start().await;
    let started = Instant::now();
    println!(
        "{backend}: server started again in {:?}",
        started - starting
    );
    let first = load
        .wait_for(
            "202 for an event sent after the server was back",
            RECOVERY,
            |r| r.sent >= started && r.accepted(),
        )
        .await;
    println!(
        "{backend}: accepting again {:?} after the server was back",
        first.answered - started
    );
    tokio::time::sleep(secs(2)).await;
    let records = load.stop().await;

    print_outcomes(backend, &records, 1);
    check_only_202_or_5xx(&records, (stopping, "the stop"), &mut failures);
    // Sent and answered while the server was certainly down: nothing can have stored it.
    let accepted_while_down: Vec<String> = records
        .iter()
        .filter(|r| r.sent >= stopped && r.answered <= starting && r.accepted())
        .map(|r| r.brief(stopping, "the stop"))
        .collect();
    failures.check(accepted_while_down.is_empty(), || {
        format!(
            "the ingress answered 202 to {} events sent and answered while the server was \
             down ({:?} to {:?} after the stop), e.g.\n    {}",
            accepted_while_down.len(),
            stopped - stopping,
            starting - stopping,
            accepted_while_down[..accepted_while_down.len().min(3)].join("\n    ")
        )
    });
    let outage_errors = records
        .iter()
        .filter(|r| r.sent >= stopping && r.sent <= first.answered && r.server_error())
        .count();
    println!("{backend}: {outage_errors} requests answered 5xx around the outage");
    failures.check(outage_errors > 0, || {
        format!(
            "no request failed with 5xx while the server was {how} for {OUTAGE:?}; the \
             ingress must answer 5xx when it cannot store"
        )
    });
    test.check_all_arrive(&records, (stopping, "the stop"), &mut failures)
        .await;
    // Kept after a failure, for a look at what the server holds.
    failures.assert_none(backend);
    test.delete_broker(&[&weft]).await;
}

/// One module per backend, with one test per scenario.
macro_rules! backend_tests {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scale_out_survives_sigkill() {
                super::scale_out_survives_sigkill($backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_restart_loses_nothing() {
                server_outage($backend, false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_crash_loses_nothing() {
                server_outage($backend, true).await;
            }
        }
    )*};
}

backend_tests! {
    postgres => Backend::Postgres,
    nats => Backend::Nats,
    kafka => Backend::Kafka,
}
