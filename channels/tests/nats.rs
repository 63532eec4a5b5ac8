//! NATS-only behaviour that the conformance suite cannot express: what happens when the
//! server restarts, when a process holding events dies, and while a delivery takes longer
//! than `ack_wait`. Each test runs its own `nats-server` (Debian's `nats-server` package,
//! as `e2e/services/nats.sh` installs it, or the binary `WEFT_NATS_SERVER` names) on a free
//! port with its store in a temporary directory, so it can stop and restart it.

#![cfg(feature = "nats")]

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{events, ids, key, runtime, take};
use weft_channels::nats::NatsChannel;
use weft_channels::{Channel, ChannelOptions, Subscription};

/// A `nats-server` with JetStream that the test can kill and start again.
struct Server {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts a server, or returns `None` (skip) where `nats-server` is not installed,
    /// unless `WEFT_REQUIRE_BACKENDS=1` makes that a failure.
    fn start() -> Option<Server> {
        let binary = std::env::var_os("WEFT_NATS_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
            })
            .or_else(|| {
                let out = Command::new("sh")
                    .args(["-c", "command -v nats-server"])
                    .output()
                    .ok()?;
                let path = String::from_utf8(out.stdout).ok()?;
                (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
            });
        let Some(binary) = binary else {
            if common::backends_required() {
                panic!(
                    "WEFT_REQUIRE_BACKENDS=1 but nats-server is not installed (apt-get install nats-server)"
                );
            }
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut server = Server {
            binary,
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.run();
        Some(server)
    }

    fn url(&self, query: &str) -> String {
        format!("nats://127.0.0.1:{}?{query}", self.port)
    }

    /// Starts the process on the same port and store, and waits until it accepts clients.
    fn run(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process as an operator would (SIGTERM) and waits until it exited.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn open(url: &str) -> NatsChannel {
    // JetStream may still be recovering its store right after a start.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match NatsChannel::open(url, ChannelOptions::default()).await {
            Ok(channel) => return channel,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for JetStream: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot open {url}: {e}"),
        }
    }
}

/// Takes and acknowledges events until `want` are among them, tolerating errors (the
/// server may be down) as the dispatcher does; returns every id seen.
async fn collect(sub: &mut Box<dyn Subscription>, want: &BTreeSet<String>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !want.iter().all(|id| seen.contains(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing {:?}",
            want.iter()
                .filter(|id| !seen.contains(*id))
                .collect::<Vec<_>>()
        );
        match tokio::time::timeout(Duration::from_millis(500), sub.next(100)).await {
            Ok(Ok(batch)) => {
                seen.extend(ids(&batch));
                batch.into_iter().for_each(|d| d.ack.ack());
            }
            Ok(Err(e)) => {
                assert!(e.is_retriable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {}
        }
    }
    seen
}

fn id_set(from: usize, to: usize) -> BTreeSet<String> {
    (from..=to).map(|i| format!("e{i}")).collect()
}

/// While the server is down, appends fail quickly with a retriable error (the ingress
/// answers 503, never 202); after it restarts, the channel recovers by itself and every
/// event that was accepted reaches the subscription, though events flowed in and out all
/// along: the server is stopped (`kill` false: SIGTERM) or crashes (SIGKILL) under load.
async fn outage_loses_nothing(kill: bool) {
    let Some(mut server) = Server::start() else {
        return;
    };
    let ch = std::sync::Arc::new(open(&server.url("timeout=1s&ack_wait=2s")).await);
    let (broker, trigger) = (key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();

    // Two producers append one event at a time and remember what was accepted.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let producing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let (ch, broker) = (ch.clone(), broker.clone());
            let (accepted, producing) = (accepted.clone(), producing.clone());
            tokio::spawn(async move {
                let mut i = p * 1_000_000;
                while producing.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let started = Instant::now();
                    match ch.append(&broker, events(i, i)).await {
                        Ok(()) => {
                            accepted.lock().unwrap().insert(format!("e{i}"));
                        }
                        Err(e) => {
                            assert!(e.is_retriable(), "{e}");
                            assert!(
                                started.elapsed() < Duration::from_secs(5),
                                "a failed append took {:?}",
                                started.elapsed()
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect();
    // The consumer takes and acknowledges events all along.
    let consuming = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        let mut seen = Vec::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(Ok(batch)) =
                tokio::time::timeout(Duration::from_millis(200), sub.next(50)).await
            {
                seen.extend(ids(&batch));
                batch.into_iter().for_each(|d| d.ack.ack());
            }
        }
        (sub, seen)
    });

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = accepted.lock().unwrap().len();
    if kill {
        server.kill();
    } else {
        server.stop();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.run();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    producing.store(false, std::sync::atomic::Ordering::Relaxed);
    for producer in producers {
        producer.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > before + 10,
        "appends did not recover: {} accepted before the outage, {} in all",
        before,
        accepted.len()
    );
    let (mut sub, mut seen) = consuming.await.unwrap();
    let missing: BTreeSet<_> = accepted
        .iter()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    seen.extend(collect(&mut sub, &missing).await);
    assert!(accepted.iter().all(|id| seen.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stop_under_load_loses_nothing() {
    outage_loses_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_crash_under_load_loses_nothing() {
    outage_loses_nothing(true).await;
}

/// A process that dies while holding events (no `-NAK`, no progress reports) loses none
/// of them: after `ack_wait` they go to the process that shares the trigger.
#[test]
fn events_held_by_a_dead_process_go_to_the_survivor() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url("ack_wait=1s&prefix=crash");
    let (broker, trigger) = (key("b"), key("t"));
    let first = runtime();
    first.block_on(async {
        let ch = open(&url).await;
        ch.ensure_log(&broker).await.unwrap();
        let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
        ch.append(&broker, events(1, 10)).await.unwrap();
        let held = take(&mut sub, 4).await;
        // The process dies here: nothing it holds is handed back.
        std::mem::forget(held);
        std::mem::forget(sub);
        std::mem::forget(ch);
    });
    first.shutdown_timeout(Duration::ZERO);

    runtime().block_on(async {
        let ch = open(&url).await;
        let mut sub = ch.subscribe(&broker, &trigger).await.unwrap();
        let started = Instant::now();
        let seen = collect(&mut sub, &id_set(1, 10)).await;
        assert_eq!(seen.len(), 10, "each event once: {seen:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "the dead process's events came back before ack_wait"
        );
        ch.close().await.unwrap();
    });
}

/// An event whose delivery takes several `ack_wait`s (retries with backoff) is not
/// delivered again meanwhile: the subscription reports progress on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_delivery_is_not_delivered_twice() {
    let Some(server) = Server::start() else {
        return;
    };
    let ch = open(&server.url("ack_wait=1s")).await;
    let (broker, trigger) = (key("b"), key("t"));
    ch.ensure_log(&broker).await.unwrap();
    let mut busy = ch.subscribe(&broker, &trigger).await.unwrap();
    let mut idle = ch.subscribe(&broker, &trigger).await.unwrap();
    ch.append(&broker, events(1, 1)).await.unwrap();
    let held = take(&mut busy, 1).await;
    let again = tokio::time::timeout(Duration::from_millis(3500), idle.next(10)).await;
    assert!(
        again.is_err(),
        "delivered again while held: {:?}",
        again.map(|b| b.map(|b| ids(&b)))
    );
    held.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(ch.backlog(&broker, &trigger).await.unwrap(), 0);
}
