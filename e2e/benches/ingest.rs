//! Ingest benchmark: how fast `weft up` accepts events compared with an HTTP handler that
//! does nothing but answer 202.
//!
//! Run with `cargo build --release --bin weft && cargo bench -p weft-e2e --bench ingest`.
//! `WEFT_BENCH_SECS` sets the measured seconds per run (default 10; 2 s of warm-up precede
//! each run).
//!
//! Two targets, each driven the same way:
//! - **bare**: an axum handler in this process that reads the body and answers 202, storing
//!   nothing: the ceiling HTTP alone allows on this machine.
//! - **weft**: the release binary, SQLite channel in a temp dir, one broker with one trigger
//!   whose sink (in this process) answers 202, so deliveries run during the measurement.
//!
//! Two loads:
//! - **closed loop**: 32 producers, each sending its next binary-mode event (~256 B of data)
//!   as soon as the previous one is answered; reports events/s and latency p50/p99.
//! - **open loop**: 1,000 events/s on a fixed schedule whatever the answers; latency runs
//!   from the *intended* send time, so a stall is charged to every event it delays (no
//!   coordinated omission); reports p50/p99/max.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use http::HeaderMap;
use tokio::task::JoinSet;
use tokio::time::Instant;
use weft_config::event::http::encode_binary;
use weft_e2e::{Sink, Weft, broker, event, trigger};

const PRODUCERS: usize = 32;
const OPEN_LOOP_RATE: u64 = 1_000;
const WARM_UP: Duration = Duration::from_secs(2);
const DATA_BYTES: usize = 256;

/// Latencies in microseconds, from 1 µs to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Results of one closed-loop run.
struct Closed {
    rate: f64,
    latency: Histogram<u64>,
    errors: u64,
}

/// Results of one open-loop run.
struct Open {
    latency: Histogram<u64>,
    errors: u64,
}

/// Starts the bare handler: reads the body, answers 202, keeps nothing.
async fn start_bare() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(|_body: Bytes| async { StatusCode::ACCEPTED });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One binary-mode request (headers, body) with a fresh id and ~256 B of JSON data.
fn request() -> (HeaderMap, Bytes) {
    let filler = "x".repeat(DATA_BYTES - 32);
    let e = event("com.example.bench")
        .json(&format!(r#"{{"seq":12345678,"pad":"{filler}"}}"#))
        .build();
    let mut headers = HeaderMap::new();
    let body = encode_binary(&e, &mut headers);
    (headers, body)
}

/// POSTs one event; true on 202.
async fn send(client: &reqwest::Client, url: &str) -> bool {
    let (headers, body) = request();
    match client.post(url).headers(headers).body(body).send().await {
        Ok(r) => {
            let ok = r.status() == reqwest::StatusCode::ACCEPTED;
            // Reading the (empty) body returns the connection to the pool.
            ok && r.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn closed_loop(client: &reqwest::Client, url: &str, measure: Duration) -> Closed {
    let start = Instant::now();
    let (from, until) = (start + WARM_UP, start + WARM_UP + measure);
    let mut tasks = JoinSet::new();
    for _ in 0..PRODUCERS {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.spawn(async move {
            let mut latency = histogram();
            let (mut done, mut errors) = (0u64, 0u64);
            loop {
                let sent_at = Instant::now();
                if sent_at >= until {
                    break;
                }
                let ok = send(&client, &url).await;
                let answered = Instant::now();
                // Only requests sent and answered inside the window count.
                if sent_at >= from && answered <= until {
                    if ok {
                        done += 1;
                        latency.saturating_record(micros(answered - sent_at));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latency, done, errors)
        });
    }
    let mut latency = histogram();
    let (mut done, mut errors) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (h, d, e) = result.expect("a producer task");
        latency.add(h).expect("same bounds");
        done += d;
        errors += e;
    }
    Closed {
        rate: done as f64 / measure.as_secs_f64(),
        latency,
        errors,
    }
}

async fn open_loop(client: &reqwest::Client, url: &str, measure: Duration) -> Open {
    let latency = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(Mutex::new(0u64));
    let interval = Duration::from_secs(1) / OPEN_LOOP_RATE as u32;
    let total = ((WARM_UP + measure).as_secs_f64() * OPEN_LOOP_RATE as f64) as u32;
    let runtime = tokio::runtime::Handle::current();
    let (client, url) = (client.clone(), url.to_owned());
    let (task_latency, task_errors) = (latency.clone(), errors.clone());
    // The schedule runs on its own thread: tokio's timer has millisecond granularity, which
    // would add up to 1 ms to every measured latency; a thread sleep is accurate to tens of µs.
    let schedule = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let from = start + WARM_UP;
        let mut sends = Vec::with_capacity(total as usize);
        for i in 0..total {
            let intended = start + interval * i;
            if let Some(wait) = intended.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            let (client, url) = (client.clone(), url.clone());
            let (latency, errors) = (task_latency.clone(), task_errors.clone());
            sends.push(runtime.spawn(async move {
                let ok = send(&client, &url).await;
                let took = intended.elapsed();
                if intended < from {
                    return;
                }
                if ok {
                    latency.lock().unwrap().saturating_record(micros(took));
                } else {
                    *errors.lock().unwrap() += 1;
                }
            }));
        }
        sends
    });
    for send in schedule.await.expect("the schedule thread") {
        send.await.expect("a send task");
    }
    let latency = latency.lock().unwrap().clone();
    let errors = *errors.lock().unwrap();
    Open { latency, errors }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`; `None`
/// where there is no procfs.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th,
    // stime the 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Weft targets.
    Some(Duration::from_millis(ticks * 10))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let measure = Duration::from_secs(
        std::env::var("WEFT_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(PRODUCERS * 4)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");

    let bare_url = format!("http://{}/default/default", start_bare().await);
    let sink = Sink::builder().without_recording().start().await;
    let weft = Weft::builder()
        .release()
        .manifest("broker.yaml", broker("default"))
        .manifest("sink.yaml", trigger("sink").subscriber(sink.url("/sink")))
        // A second broker with no trigger: ingest alone, nothing to deliver.
        .manifest("ingest-only.yaml", broker("ingest-only"))
        .start()
        .await;
    let pid = weft.pid().expect("weft runs");
    eprintln!("weft binary: {}", weft.binary().display());

    let targets = [
        ("bare handler", bare_url, false),
        ("weft, 1 trigger", weft.url("default", "default"), true),
        ("weft, no trigger", weft.url("default", "ingest-only"), true),
    ];
    let mut results = Vec::new();
    for (name, url, is_weft) in &targets {
        eprintln!("{name}: closed loop, {PRODUCERS} producers, {measure:?} after {WARM_UP:?}");
        let (cpu_before, delivered_before) = (cpu_time(pid), sink.count());
        let closed = closed_loop(&client, url, measure).await;
        // Includes the warm-up: CPU per event, not an exact share of the window.
        let cpu = cpu_time(pid)
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        if *is_weft {
            let delivered = sink.count() - delivered_before;
            eprintln!(
                "{name}: sink received {delivered} deliveries during the run; weft CPU {cpu:?}"
            );
            drain(&weft).await;
        }
        eprintln!("{name}: open loop, {OPEN_LOOP_RATE} events/s");
        let open = open_loop(&client, url, measure).await;
        if *is_weft {
            drain(&weft).await;
        }
        results.push((name, closed, open, if *is_weft { cpu } else { None }));
    }

    println!();
    println!(
        "| target | closed loop: events/s | p50 ms | p99 ms | weft CPU s | open loop {OPEN_LOOP_RATE}/s: p50 ms | p99 ms | max ms | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, c, o, cpu) in &results {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {} |",
            c.rate,
            ms(&c.latency, 0.5),
            ms(&c.latency, 0.99),
            cpu.map_or("–".into(), |d| format!("{:.1}", d.as_secs_f64())),
            ms(&o.latency, 0.5),
            ms(&o.latency, 0.99),
            o.latency.max() as f64 / 1000.0,
            c.errors + o.errors,
        );
    }
    let bare = &results[0].1;
    let (with_trigger, ingest_only) = (&results[1], &results[2]);
    let ratio = with_trigger.1.rate / bare.rate;
    let p99 = ms(&with_trigger.2.latency, 0.99);
    println!();
    println!(
        "weft/bare ingest rate with {PRODUCERS} producers: {:.1}% (aim ≥ 50%: {}); \
         without a trigger: {:.1}%",
        ratio * 100.0,
        if ratio >= 0.5 { "met" } else { "NOT met" },
        ingest_only.1.rate / bare.rate * 100.0
    );
    println!(
        "weft p99 at {OPEN_LOOP_RATE} events/s: {p99:.2} ms (aim ≤ 5 ms: {})",
        if p99 <= 5.0 { "met" } else { "NOT met" }
    );
}

/// Waits for weft to deliver its backlog, so one run's deliveries do not load the next.
async fn drain(weft: &Weft) {
    let start = Instant::now();
    weft.wait_for_trigger("sink", Duration::from_secs(300), |t| t.backlog == 0)
        .await;
    eprintln!(
        "weft: backlog delivered {:?} after the run",
        start.elapsed()
    );
}
