//! Smoke tests of `weft bench` (the `weft-bench` crate): short load runs against the
//! built-in baselines and the receiver, checking that the reports count what was really
//! sent and received (no `weft` binary needed, about a second each), and one short
//! `weft bench e2e` run of the binary.

use std::time::Duration;

use tokio::sync::oneshot;
use weft_bench::baseline;
use weft_bench::load::{self, LoadOptions, Loop, scheduled_events};
use weft_bench::receive::{Receiver, ReceiverOptions};

/// Starts a baseline in this process; it stops when the returned sender is dropped.
async fn bare_handler() -> (String, oneshot::Sender<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, addr) = oneshot::channel();
    tokio::spawn(baseline::serve_http(
        "127.0.0.1:0",
        move |a| {
            let _ = ready.send(a);
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (
        format!("http://{}/default/default", addr.await.unwrap()),
        stop,
    )
}

fn options(target: String, mode: Loop) -> LoadOptions {
    LoadOptions {
        mode,
        connections: 4,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        ..LoadOptions::new(target)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_sends_its_schedule_and_the_bare_handler_accepts_it_all() {
    let (url, _stop) = bare_handler().await;
    let rate = 500.0;
    let outcome = load::run(&options(url, Loop::Open { rate })).await.unwrap();
    let r = &outcome.report;
    // 1 s at 500/s: 100 events in the warm-up, 400 in the window.
    assert_eq!(r.total_sent, scheduled_events(rate, Duration::from_secs(1)));
    assert_eq!(r.sent, 400, "{r:?}");
    assert_eq!(r.accepted, 400);
    assert_eq!(r.failed, 0);
    assert_eq!(r.status.0.get(&202), Some(&400));
    assert_eq!(r.status.0.len(), 1, "only 202s: {:?}", r.status);
    assert_eq!(r.latency.count, 400);
    assert!(r.latency.p50_ms > 0.0 && r.latency.p50_ms <= r.latency.max_ms);
    // Accepted over the window and the wait for its last answer: at most the offered rate,
    // less only by how late that last answer was (generous, for a loaded CI machine).
    assert!(
        r.accepted_per_s <= rate * 1.01 && r.accepted_per_s > rate * 0.5,
        "accepted {} events/s at {rate}",
        r.accepted_per_s
    );
    assert_eq!(outcome.accepted.len(), 500, "every accepted id is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_counts_every_answer_and_refused_connections_fail_the_run() {
    let (url, stop) = bare_handler().await;
    let outcome = load::run(&options(url.clone(), Loop::Closed))
        .await
        .unwrap();
    let r = &outcome.report;
    assert!(r.accepted > 100, "{r:?}");
    assert_eq!(r.accepted, r.sent);
    assert_eq!(r.status.0.get(&202), Some(&r.accepted));
    assert_eq!(r.latency.count, r.accepted);
    assert_eq!(outcome.accepted.len(), r.total_accepted);
    drop(stop);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = load::run(&options(url, Loop::Closed)).await;
    assert!(refused.is_err(), "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_sees_every_event_once_with_its_latency() {
    let receiver = Receiver::start(ReceiverOptions::default()).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, addr) = oneshot::channel();
    // Through the forwarder, so that baseline is exercised as well.
    let sink = receiver.url("/t0");
    tokio::spawn(async move {
        baseline::serve_forwarder(
            "127.0.0.1:0",
            &sink,
            move |a| {
                let _ = ready.send(a);
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await
    });
    let url = format!("http://{}/", addr.await.unwrap());
    let outcome = load::run(&options(url, Loop::Open { rate: 300.0 }))
        .await
        .unwrap();
    drop(stop);
    let report = receiver.report();
    assert_eq!(outcome.report.total_accepted, 300);
    assert_eq!(report.total.unique, 300, "{report:?}");
    assert_eq!(report.total.duplicates, 0);
    assert_eq!(report.total.invalid, 0);
    assert_eq!(report.total.latency.count, 300);
    assert_eq!(receiver.seen("/t0", &outcome.run), outcome.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_bench_e2e_delivers_every_accepted_event_and_reports_it_as_json() {
    let output = tokio::process::Command::new(weft_e2e::weft::binary())
        .args([
            "bench",
            "e2e",
            "--rate",
            "200",
            "--duration",
            "1s",
            "--warmup",
            "0.2s",
        ])
        .args([
            "--triggers",
            "2",
            "--groups",
            "2",
            "--json",
            "--no-progress",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "weft bench e2e failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // 1.2 s at 200/s; each of the two triggers matches half of the events.
    assert_eq!(report["ingest"]["total_accepted"], 240, "{report:#}");
    assert_eq!(report["expected"], 240);
    assert_eq!(report["delivered"], 240);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["received"]["paths"]["/t0"]["unique"], 120);
    assert_eq!(report["received"]["paths"]["/t1"]["unique"], 120);
    assert_eq!(
        report["latency"]["count"], 200,
        "latency after the warm-up only"
    );
    assert!(report["cpu_s"].as_f64().is_some_and(|c| c > 0.0));
}
