//! The standard scenarios, run per channel, each beside the baseline it is a ratio to, and
//! the markdown section, SVG charts and JSON they produce (`weft bench suite`).
//!
//! | scenario | Weft runs | baseline (same run, same machine) |
//! |---|---|---|
//! | ingest-ack | broker without triggers: closed loop, open-loop sweep | bare 202 handler |
//! | end to end | one trigger: closed loop, open-loop sweep | stateless forwarder |
//! | fan-out | 1, 10, 100 triggers matching 10% each: closed loop, open loop | forwarder |
//! | failing sink | healthy trigger beside a 503 one with a dead-letter sink | healthy trigger alone |
//! | idle memory | 100 brokers, 1,000 triggers, no traffic | no brokers |
//! | CPU | CPU s per 1,000 deliveries in the end-to-end runs | forwarder |
//!
//! Adding a backend is one more `--channel URL`: every scenario above runs per channel.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::BenchError;
use super::chart::{self, PALETTE, Panel, Series};
use super::e2e::{self, E2eOptions, E2eReport, System, Topology};
use super::load::{self, IngestReport, LoadOptions, Loop};
use super::process::{ChannelSpec, WeftUp, manifest, start_baseline};
use super::receive::{Receiver, ReceiverOptions};
use super::report::{Machine, load_average, percent, thousands};
use crate::{broker, trigger};

/// Where the generated section of `BENCHMARKS.md` starts and ends; the rest of the file is
/// left as it is.
pub const BEGIN: &str = "<!-- BEGIN weft bench suite (generated; edit around it) -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- END weft bench suite -->";

/// The rate the latency target is stated at, always part of the sweep.
pub const TARGET_RATE: f64 = 1000.0;

/// What the suite runs.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// The `weft` binary (also serves the baselines).
    pub bin: PathBuf,
    /// The channels every scenario runs on.
    pub channels: Vec<ChannelSpec>,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Connections of closed-loop runs.
    pub connections: usize,
    /// Connections of open-loop runs.
    pub open_connections: usize,
    /// Closed-loop pairs (baseline, Weft) measured alternately per ratio target; the
    /// pair with the median ratio is reported.
    pub repeat: usize,
    /// Offered rates of the open-loop sweeps (events/s); [`TARGET_RATE`] is added.
    pub rates: Vec<f64>,
    /// Trigger counts of the fan-out scenario.
    pub fanout: Vec<usize>,
    /// Offered rate of the fan-out and failing-sink open loops.
    pub fixed_rate: f64,
    /// Brokers and triggers (in all) of the idle-memory scenario.
    pub idle: (usize, usize),
    /// How long the idle instance sits before its memory is read.
    pub idle_settle: Duration,
    /// Data bytes per event.
    pub size: usize,
    /// Progress lines on stderr.
    pub progress: bool,
    /// The command line, recorded with the figures.
    pub command: String,
}

impl SuiteOptions {
    /// The standard suite on `channels`.
    pub fn new(bin: PathBuf, channels: Vec<ChannelSpec>) -> Self {
        SuiteOptions {
            bin,
            channels,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            connections: 32,
            open_connections: 64,
            repeat: 3,
            rates: vec![500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0],
            fanout: vec![1, 10, 100],
            fixed_rate: 500.0,
            idle: (100, 1000),
            idle_settle: Duration::from_secs(5),
            size: 256,
            progress: true,
            command: String::new(),
        }
    }
}

/// One run with the load average (`uptime`, 1 minute) just before it.
#[derive(Clone, Debug, Serialize)]
pub struct Run<T> {
    /// Load average before the run.
    pub load_before: f64,
    /// What it measured.
    pub report: T,
}

/// One offered rate of an ingest sweep.
#[derive(Clone, Debug, Serialize)]
pub struct IngestPoint {
    /// Offered events/s.
    pub rate: f64,
    /// The bare handler.
    pub baseline: Run<IngestReport>,
    /// Weft.
    pub weft: Run<IngestReport>,
}

/// One offered rate of an end-to-end sweep.
#[derive(Clone, Debug, Serialize)]
pub struct E2ePoint {
    /// Offered events/s.
    pub rate: f64,
    /// The forwarder.
    pub baseline: Run<E2eReport>,
    /// Weft.
    pub weft: Run<E2eReport>,
}

/// The fan-out scenario at one trigger count.
#[derive(Clone, Debug, Serialize)]
pub struct FanoutRow {
    /// Triggers, each matching 10% of the events.
    pub triggers: usize,
    /// Closed loop: throughput.
    pub closed: Run<E2eReport>,
    /// Open loop at the fixed rate: latency.
    pub open: Run<E2eReport>,
}

/// Idle resident memory of one instance.
#[derive(Clone, Debug, Serialize)]
pub struct IdleRow {
    /// Brokers.
    pub brokers: usize,
    /// Triggers.
    pub triggers: usize,
    /// Resident memory, MiB, after settling.
    pub rss_mib: f64,
    /// CPU seconds it used while idle, over the settle time.
    pub idle_cpu_s: f64,
}

/// Every scenario on one channel.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelResults {
    /// `sqlite`, `memory`, `postgres`, …
    pub channel: String,
    /// Ingest-ack, closed loop: bare handler, then Weft; the pair with the median ratio.
    pub ingest_closed: (Run<IngestReport>, Run<IngestReport>),
    /// Weft ÷ bare handler, %, of every closed-loop pair in the order measured.
    pub ingest_closed_ratios: Vec<f64>,
    /// Ingest-ack, open-loop sweep.
    pub ingest_sweep: Vec<IngestPoint>,
    /// End to end, closed loop: forwarder, then Weft; the pair with the median ratio.
    pub e2e_closed: (Run<E2eReport>, Run<E2eReport>),
    /// Weft ÷ forwarder deliveries/s, %, of every closed-loop pair in the order measured.
    pub e2e_closed_ratios: Vec<f64>,
    /// End to end, open-loop sweep.
    pub e2e_sweep: Vec<E2ePoint>,
    /// The forwarder at the fixed rate (fan-out baseline).
    pub forwarder_fixed: Run<E2eReport>,
    /// Fan-out rows.
    pub fanout: Vec<FanoutRow>,
    /// Healthy trigger alone, then beside a failing one: closed loop; the median pair.
    pub failing_closed: (Run<E2eReport>, Run<E2eReport>),
    /// Beside ÷ alone deliveries/s, %, of every closed-loop pair in the order measured.
    pub failing_closed_ratios: Vec<f64>,
    /// The same at the fixed rate.
    pub failing_open: (Run<E2eReport>, Run<E2eReport>),
    /// Idle memory: no brokers, one broker and trigger, the large set.
    pub idle: Vec<IdleRow>,
}

/// Everything the suite measured.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    /// When it ran (UTC, `YYYY-MM-DD HH:MM`).
    pub date: String,
    /// `git rev-parse --short HEAD` where the suite ran, if it is a checkout.
    pub commit: Option<String>,
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// Per-run measured and warm-up seconds, connections, size.
    pub duration_s: f64,
    /// Warm-up seconds per run.
    pub warmup_s: f64,
    /// Closed-loop connections.
    pub connections: usize,
    /// Open-loop connections.
    pub open_connections: usize,
    /// Alternating closed-loop pairs per ratio target.
    pub repeat: usize,
    /// Data bytes per event.
    pub size: usize,
    /// Rate of the fan-out and failing-sink open loops.
    pub fixed_rate: f64,
    /// Per channel.
    pub channels: Vec<ChannelResults>,
}

fn say(options: &SuiteOptions, what: &str) {
    if options.progress {
        eprintln!("== {what} (load {:.2})", load_average());
    }
}

async fn timed<T, F: Future<Output = Result<T, BenchError>>>(f: F) -> Result<Run<T>, BenchError> {
    let load_before = load_average();
    Ok(Run {
        load_before,
        report: f.await?,
    })
}

impl SuiteOptions {
    fn load(&self, label: &str, mode: Loop) -> LoadOptions {
        LoadOptions {
            target: String::new(),
            mode,
            connections: match mode {
                Loop::Open { .. } => self.open_connections,
                Loop::Closed => self.connections,
            },
            duration: self.duration,
            warmup: self.warmup,
            size: self.size,
            groups: 0,
            progress: self.progress,
            label: label.to_owned(),
        }
    }

    fn e2e(&self, system: System, topology: Topology, load: LoadOptions) -> E2eOptions {
        E2eOptions {
            bin: self.bin.clone(),
            system,
            topology,
            load,
            max_in_flight: None,
            idle_timeout: Duration::from_secs(15),
        }
    }

    fn sweep_rates(&self) -> Vec<f64> {
        let mut rates = self.rates.clone();
        if !rates.contains(&TARGET_RATE) {
            rates.push(TARGET_RATE);
        }
        rates.sort_by(f64::total_cmp);
        rates
    }
}

/// One ingest run against `url`.
async fn ingest_run(
    options: &SuiteOptions,
    url: &str,
    mode: Loop,
    label: String,
) -> Result<Run<IngestReport>, BenchError> {
    let mut load = options.load(&label, mode);
    load.target = url.to_owned();
    timed(async { Ok(load::run(&load).await?.report) }).await
}

/// Of pairs (baseline, system) measured one after the other, the pair whose ratio
/// `ratio(baseline, system)` is the median (the lower one of an even count), and every
/// ratio in the order measured.
pub fn median_pair<T>(
    pairs: Vec<(Run<T>, Run<T>)>,
    ratio: impl Fn(&T, &T) -> f64,
) -> ((Run<T>, Run<T>), Vec<f64>) {
    let ratios: Vec<f64> = pairs
        .iter()
        .map(|(a, b)| ratio(&a.report, &b.report))
        .collect();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&i, &j| ratios[i].total_cmp(&ratios[j]));
    let median = order[(order.len() - 1) / 2];
    // `median` indexes `pairs`, which holds at least one pair (repeat ≥ 1).
    let pair = pairs.into_iter().nth(median).expect("a pair at the median");
    (pair, ratios)
}

fn delivered_ratio(base: &E2eReport, system: &E2eReport) -> f64 {
    percent(system.delivered_per_s, base.delivered_per_s).unwrap_or(0.0)
}

async fn channel(options: &SuiteOptions, spec: &ChannelSpec) -> Result<ChannelResults, BenchError> {
    let c = &spec.label;
    let weft = System::Weft(spec.clone());
    let dir = tempfile::Builder::new()
        .prefix("weft-bench-")
        .tempdir()
        .map_err(|e| BenchError::Start {
            what: "a temp dir".into(),
            reason: e.to_string(),
        })?;
    let repeat = options.repeat.max(1);

    // Both targets run at once, and their runs alternate, so that a change in the
    // machine's load affects both sides of each ratio alike.
    say(
        options,
        &format!("[{c}] ingest-ack: bare handler and weft (broker without triggers), alternating"),
    );
    let bare = start_baseline(&options.bin, &["baseline-http"], dir.path()).await?;
    let bare_url = format!("http://{}/", bare.addr());
    let up = WeftUp::start(
        &options.bin,
        spec,
        &[manifest("broker.yaml", broker("bench"))],
        &[],
        Duration::from_secs(30),
    )
    .await?;
    let weft_url = up.broker_url("default", "bench");
    let mut pairs = Vec::new();
    for i in 1..=repeat {
        pairs.push((
            ingest_run(options, &bare_url, Loop::Closed, format!("bare closed {i}")).await?,
            ingest_run(options, &weft_url, Loop::Closed, format!("weft closed {i}")).await?,
        ));
    }
    let (ingest_closed, ingest_closed_ratios) = median_pair(pairs, |b, w| {
        percent(w.accepted_per_s, b.accepted_per_s).unwrap_or(0.0)
    });
    let mut ingest_sweep = Vec::new();
    for rate in options.sweep_rates() {
        let open = Loop::Open { rate };
        ingest_sweep.push(IngestPoint {
            rate,
            baseline: ingest_run(options, &bare_url, open, format!("bare {rate}/s")).await?,
            weft: ingest_run(options, &weft_url, open, format!("weft {rate}/s")).await?,
        });
    }
    bare.stop().await;
    up.stop().await;

    say(options, &format!("[{c}] end to end, closed loop"));
    let one = Topology::default();
    let closed = options.load("e2e closed", Loop::Closed);
    let mut pairs = Vec::new();
    for _ in 0..repeat {
        let fwd = options.e2e(System::Forwarder, one, closed.clone());
        pairs.push((
            timed(e2e::run(&fwd)).await?,
            timed(e2e::run(&options.e2e(weft.clone(), one, closed.clone()))).await?,
        ));
    }
    let (e2e_closed, e2e_closed_ratios) = median_pair(pairs, delivered_ratio);
    let mut e2e_sweep = Vec::new();
    for rate in options.sweep_rates() {
        say(options, &format!("[{c}] end to end at {rate}/s"));
        let open = options.load(&format!("e2e {rate}/s"), Loop::Open { rate });
        let baseline = timed(e2e::run(&options.e2e(System::Forwarder, one, open.clone()))).await?;
        let w = timed(e2e::run(&options.e2e(weft.clone(), one, open))).await?;
        e2e_sweep.push(E2ePoint {
            rate,
            baseline,
            weft: w,
        });
    }

    let fixed = Loop::Open {
        rate: options.fixed_rate,
    };
    let fixed_load = |label: &str| options.load(label, fixed);
    say(
        options,
        &format!("[{c}] forwarder at {}/s", options.fixed_rate),
    );
    let forwarder_fixed = timed(e2e::run(&options.e2e(
        System::Forwarder,
        one,
        fixed_load("forwarder fixed"),
    )))
    .await?;
    let mut fanout = Vec::new();
    for &triggers in &options.fanout {
        say(
            options,
            &format!("[{c}] fan-out to {triggers} triggers, 10% each"),
        );
        let topology = Topology {
            triggers,
            groups: 10,
            failing: false,
        };
        let label = format!("fan-out {triggers}");
        let closed = options.load(&format!("{label} closed"), Loop::Closed);
        let closed = timed(e2e::run(&options.e2e(weft.clone(), topology, closed))).await?;
        let open = fixed_load(&format!("{label} {}/s", options.fixed_rate));
        let open = timed(e2e::run(&options.e2e(weft.clone(), topology, open))).await?;
        fanout.push(FanoutRow {
            triggers,
            closed,
            open,
        });
    }

    say(options, &format!("[{c}] failing sink beside a healthy one"));
    let failing = Topology {
        failing: true,
        ..one
    };
    let mut pairs = Vec::new();
    for i in 1..=repeat {
        let alone = options.load(&format!("healthy alone closed {i}"), Loop::Closed);
        let beside = options.load(&format!("beside failing closed {i}"), Loop::Closed);
        pairs.push((
            timed(e2e::run(&options.e2e(weft.clone(), one, alone))).await?,
            timed(e2e::run(&options.e2e(weft.clone(), failing, beside))).await?,
        ));
    }
    let (failing_closed, failing_closed_ratios) = median_pair(pairs, delivered_ratio);
    let alone = fixed_load("healthy alone fixed");
    let beside = fixed_load("beside failing fixed");
    let failing_open = (
        timed(e2e::run(&options.e2e(weft.clone(), one, alone))).await?,
        timed(e2e::run(&options.e2e(weft.clone(), failing, beside))).await?,
    );

    say(options, &format!("[{c}] idle memory"));
    let mut idle = Vec::new();
    for (brokers, triggers) in [(0, 0), (1, 1), options.idle] {
        idle.push(idle_memory(options, spec, brokers, triggers).await?);
    }

    Ok(ChannelResults {
        channel: c.clone(),
        ingest_closed,
        ingest_closed_ratios,
        ingest_sweep,
        e2e_closed,
        e2e_closed_ratios,
        e2e_sweep,
        forwarder_fixed,
        fanout,
        failing_closed,
        failing_closed_ratios,
        failing_open,
        idle,
    })
}

/// Starts Weft with `brokers` brokers and `triggers` triggers spread over them, lets it sit
/// idle, and reads its memory.
async fn idle_memory(
    options: &SuiteOptions,
    spec: &ChannelSpec,
    brokers: usize,
    triggers: usize,
) -> Result<IdleRow, BenchError> {
    // The subscribers are never called: nothing is sent.
    let receiver = Receiver::start(ReceiverOptions::default()).await?;
    let mut manifests = Vec::new();
    for b in 0..brokers {
        let mut docs = vec![broker(&format!("b{b}")).to_string()];
        // Triggers spread evenly; the first brokers take the remainder.
        let mine = triggers / brokers + usize::from(b < triggers % brokers);
        for t in 0..mine {
            docs.push(
                trigger(&format!("b{b}-t{t}"))
                    .broker(&format!("b{b}"))
                    .subscriber(receiver.url(&format!("/b{b}/t{t}")))
                    .to_string(),
            );
        }
        manifests.push(manifest(&format!("b{b}.yaml"), docs.join("---\n")));
    }
    let ready = Duration::from_secs(30) + Duration::from_millis(100) * triggers as u32;
    let up = WeftUp::start(&options.bin, spec, &manifests, &[], ready).await?;
    let cpu_before = up.server().cpu();
    tokio::time::sleep(options.idle_settle).await;
    let cpu = up
        .server()
        .cpu()
        .zip(cpu_before)
        .map_or(0.0, |(a, b)| (a - b).as_secs_f64());
    let rss = up.server().rss().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    up.stop().await;
    Ok(IdleRow {
        brokers,
        triggers,
        rss_mib: rss,
        idle_cpu_s: cpu,
    })
}

/// Runs every scenario on every channel.
pub async fn run(options: &SuiteOptions) -> Result<SuiteReport, BenchError> {
    let mut channels = Vec::new();
    for spec in &options.channels {
        channels.push(channel(options, spec).await?);
    }
    Ok(SuiteReport {
        date: utc_now(),
        commit: git_commit(),
        command: options.command.clone(),
        machine: Machine::describe(),
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        connections: options.connections,
        open_connections: options.open_connections,
        repeat: options.repeat.max(1),
        size: options.size,
        fixed_rate: options.fixed_rate,
        channels,
    })
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The current UTC time as `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DD HH:MM` (UTC, proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil-from-days: eras of 400 years, days counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// `met` / `**missed**`.
fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn pct(a: f64, b: f64) -> String {
    percent(a, b).map_or("–".into(), |p| format!("{p:.0}%"))
}

/// `; pairs 38%, 43%, 40%` when there was more than one pair.
fn spread(ratios: &[f64]) -> String {
    if ratios.len() < 2 {
        return String::new();
    }
    let all: Vec<String> = ratios.iter().map(|r| format!("{r:.0}%")).collect();
    format!("; median of {} pairs: {}", ratios.len(), all.join(", "))
}

/// `closed, 32 conns` and, with several pairs, their ratios: the row shows the median one.
fn closed_label(connections: usize, ratios: &[f64]) -> String {
    let spread = spread(ratios);
    match spread.strip_prefix("; ") {
        Some(pairs) => format!("closed, {connections} conns ({pairs})"),
        None => format!("closed, {connections} conns"),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The targets of issue 3 on one channel: (target, measured, met).
pub fn targets(r: &ChannelResults) -> Vec<(String, String, bool)> {
    let (fwd, weft) = (&r.e2e_closed.0.report, &r.e2e_closed.1.report);
    let ratio = percent(weft.delivered_per_s, fwd.delivered_per_s).unwrap_or(0.0);
    let mut out = vec![(
        format!(
            "end to end ({}) ≥ 50% of the forwarder's rate, zero loss",
            r.channel
        ),
        format!(
            "{ratio:.1}% ({} vs {} events/s{}), {} lost{}",
            thousands(weft.delivered_per_s),
            thousands(fwd.delivered_per_s),
            spread(&r.e2e_closed_ratios),
            weft.lost,
            match (weft.cpu_s_per_1000, fwd.cpu_s_per_1000) {
                (Some(w), Some(f)) if f > 0.0 => {
                    format!("; CPU per delivery {:.1}× the forwarder's", w / f)
                }
                _ => String::new(),
            }
        ),
        ratio >= 50.0 && weft.lost == 0,
    )];
    if let Some(p) = r.e2e_sweep.iter().find(|p| p.rate == TARGET_RATE) {
        let p99 = p.weft.report.latency.p99_ms;
        out.push((
            format!("p99 end to end ≤ 10 ms at 1,000 events/s ({})", r.channel),
            format!(
                "{p99:.2} ms (forwarder {:.2} ms)",
                p.baseline.report.latency.p99_ms
            ),
            p99 <= 10.0 && p.weft.report.lost == 0,
        ));
    }
    let (alone, beside) = (&r.failing_closed.0.report, &r.failing_closed.1.report);
    let kept = percent(beside.delivered_per_s, alone.delivered_per_s).unwrap_or(0.0);
    let (alone_o, beside_o) = (&r.failing_open.0.report, &r.failing_open.1.report);
    out.push((
        format!("healthy trigger keeps ≥ 90% of its throughput beside a failing one ({})", r.channel),
        format!(
            "{kept:.1}% at full load ({} vs {} events/s{}); at {} events/s: {}, p99 {:.2} vs {:.2} ms",
            thousands(beside.delivered_per_s),
            thousands(alone.delivered_per_s),
            spread(&r.failing_closed_ratios),
            thousands(alone_o.ingest.mode_rate()),
            pct(beside_o.delivered_per_s, alone_o.delivered_per_s),
            beside_o.latency.p99_ms,
            alone_o.latency.p99_ms,
        ),
        kept >= 90.0 && beside.lost == 0,
    ));
    if let Some(big) = r.idle.last() {
        out.push((
            format!(
                "idle RSS ≤ 30 MiB with {} brokers and {} triggers ({})",
                big.brokers, big.triggers, r.channel
            ),
            format!("{:.1} MiB", big.rss_mib),
            big.rss_mib <= 30.0,
        ));
    }
    out
}

/// The figure of one channel: ingest and end-to-end throughput against offered load, and
/// p99 latency of both.
pub fn channel_chart(r: &ChannelResults) -> String {
    let series = |name: &str, color: usize, points: Vec<(f64, f64)>| Series {
        name: name.to_owned(),
        color: PALETTE[color],
        points,
    };
    let ingest = |f: &dyn Fn(&IngestPoint) -> f64| {
        r.ingest_sweep
            .iter()
            .map(|p| (p.rate, f(p)))
            .collect::<Vec<_>>()
    };
    let e2e = |f: &dyn Fn(&E2ePoint) -> f64| {
        r.e2e_sweep
            .iter()
            .map(|p| (p.rate, f(p)))
            .collect::<Vec<_>>()
    };
    let throughput = Panel {
        title: format!("Throughput ({})", r.channel),
        x_label: "offered events/s (open loop)".into(),
        y_label: "events/s".into(),
        log_y: false,
        series: vec![
            series(
                "bare handler: accepted",
                0,
                ingest(&|p| p.baseline.report.accepted_per_s),
            ),
            series(
                "weft: accepted",
                1,
                ingest(&|p| p.weft.report.accepted_per_s),
            ),
            series(
                "forwarder: delivered",
                2,
                e2e(&|p| p.baseline.report.delivered_per_s),
            ),
            series(
                "weft: delivered",
                3,
                e2e(&|p| p.weft.report.delivered_per_s),
            ),
        ],
    };
    let latency = Panel {
        title: format!("p99 latency ({})", r.channel),
        x_label: "offered events/s (open loop)".into(),
        y_label: "ms (log scale)".into(),
        log_y: true,
        series: vec![
            series(
                "bare handler: ack",
                0,
                ingest(&|p| p.baseline.report.latency.p99_ms),
            ),
            series("weft: ack", 1, ingest(&|p| p.weft.report.latency.p99_ms)),
            series(
                "forwarder: end to end",
                2,
                e2e(&|p| p.baseline.report.latency.p99_ms),
            ),
            series(
                "weft: end to end",
                3,
                e2e(&|p| p.weft.report.latency.p99_ms),
            ),
        ],
    };
    chart::figure(&[throughput, latency])
}

/// The markdown section, between [`BEGIN`] and [`END`]; `chart_link(channel)` gives the
/// path of each channel's SVG as the markdown file sees it.
pub fn markdown(report: &SuiteReport, chart_link: &dyn Fn(&str) -> String) -> String {
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    line(BEGIN.into());
    line("## Suite (`weft bench suite`)\n".into());
    line(format!(
        "Run {} UTC{}, command `{}`.\n",
        report.date,
        report
            .commit
            .as_deref()
            .map_or(String::new(), |c| format!(" at commit `{c}`")),
        report.command
    ));
    line(format!(
        "Machine: {}. The load generator, the receiver and the system under test share it. \
         Each run: {:.1} s measured after {:.1} s of warm-up; closed loops on {} connections, \
         open loops on {}; binary-mode events with {} B of JSON data. The load average \
         (`uptime`, 1 min) before each run is in the `load` column: above 2 the machine was \
         busy with other work too, and every figure is then a lower bound. Closed-loop \
         ratios come from {} pairs (baseline, then Weft) measured alternately; the table shows \
         the pair with the median ratio and lists all of them.\n",
        report.machine.line(),
        report.duration_s,
        report.warmup_s,
        report.connections,
        report.open_connections,
        report.size,
        report.repeat
    ));
    line("### Targets\n".into());
    line("| target | measured | status |".into());
    line("|---|---|---|".into());
    for r in &report.channels {
        for (target, measured, ok) in targets(r) {
            line(format!("| {target} | {measured} | {} |", verdict(ok)));
        }
    }
    line(String::new());
    for r in &report.channels {
        channel_markdown(&mut line, report, r, &chart_link(&r.channel));
    }
    line(END.into());
    md
}

fn channel_markdown(
    line: &mut dyn FnMut(String),
    report: &SuiteReport,
    r: &ChannelResults,
    chart: &str,
) {
    let c = &r.channel;
    line(format!("### Channel `{c}`\n"));
    line(format!(
        "![throughput and p99 latency against offered load, {c}]({chart})\n"
    ));

    line(
        "**Ingest-ack** — broker without triggers. Baseline: the bare handler (`weft bench \
         baseline-http`, reads the body, answers 202, stores nothing). Latency: POST until \
         the 202.\n"
            .into(),
    );
    line("| load | bare: events/s | p50 / p99 / p99.9 ms | weft: events/s | p50 / p99 / p99.9 ms | weft ÷ bare | failed | load |".into());
    line("|---|---:|---:|---:|---:|---:|---:|---:|".into());
    let ingest_row = |load: String, b: &Run<IngestReport>, w: &Run<IngestReport>| {
        let l = |r: &IngestReport| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                r.latency.p50_ms, r.latency.p99_ms, r.latency.p999_ms
            )
        };
        format!(
            "| {load} | {} | {} | {} | {} | {} | {} | {:.1} |",
            thousands(b.report.accepted_per_s),
            l(&b.report),
            thousands(w.report.accepted_per_s),
            l(&w.report),
            pct(w.report.accepted_per_s, b.report.accepted_per_s),
            w.report.failed,
            w.load_before
        )
    };
    line(ingest_row(
        closed_label(report.connections, &r.ingest_closed_ratios),
        &r.ingest_closed.0,
        &r.ingest_closed.1,
    ));
    for p in &r.ingest_sweep {
        line(ingest_row(
            format!("{} /s", thousands(p.rate)),
            &p.baseline,
            &p.weft,
        ));
    }
    line(String::new());

    line(
        "**End to end** — one trigger, sink answers 202. Baseline: the stateless forwarder \
         (`weft bench baseline-forwarder`, POSTs each event to the sink before answering, \
         stores nothing). Events/s: deliveries from the first send to the last delivery. \
         Latency: sender timestamp to arrival at the sink. Lost: accepted (2xx) but never \
         delivered.\n"
            .into(),
    );
    line("| load | forwarder: events/s | p50 / p99 / p99.9 ms | weft: events/s | p50 / p99 / p99.9 ms | weft ÷ fwd | lost | dup | drain s | load |".into());
    line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    let e2e_row = |load: String, f: &Run<E2eReport>, w: &Run<E2eReport>| {
        let l = |r: &E2eReport| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                r.latency.p50_ms, r.latency.p99_ms, r.latency.p999_ms
            )
        };
        format!(
            "| {load} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
            thousands(f.report.delivered_per_s),
            l(&f.report),
            thousands(w.report.delivered_per_s),
            l(&w.report),
            pct(w.report.delivered_per_s, f.report.delivered_per_s),
            w.report.lost + f.report.lost,
            w.report.duplicates,
            w.report.drain_s,
            w.load_before
        )
    };
    line(e2e_row(
        closed_label(report.connections, &r.e2e_closed_ratios),
        &r.e2e_closed.0,
        &r.e2e_closed.1,
    ));
    for p in &r.e2e_sweep {
        line(e2e_row(
            format!("{} /s", thousands(p.rate)),
            &p.baseline,
            &p.weft,
        ));
    }
    line(String::new());

    let fwd = &r.e2e_closed.0.report;
    let fixed = &r.forwarder_fixed.report;
    line(format!(
        "**Fan-out** — N triggers, each filtering `benchgroup` to match 10% of the events, \
         so each event is delivered N/10 times. Closed loop for throughput (events/s end to \
         end: accepted events over the time from the first send to the last delivery), open \
         loop at {} events/s for latency. Baseline: the forwarder, {} events/s closed loop; \
         p99 {:.2} ms at {} events/s.\n",
        thousands(report.fixed_rate),
        thousands(fwd.events_per_s),
        fixed.latency.p99_ms,
        thousands(report.fixed_rate),
    ));
    line("| triggers | closed: events/s end to end | ÷ forwarder | deliveries/s | lost | dup | CPU s / 1,000 deliveries | open: deliveries/s | p50 / p99 ms | lost | load |".into());
    line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for f in &r.fanout {
        let (c, o) = (&f.closed.report, &f.open.report);
        line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} | {} | {:.1} |",
            f.triggers,
            thousands(c.events_per_s),
            pct(c.events_per_s, fwd.events_per_s),
            thousands(c.delivered_per_s),
            c.lost,
            c.duplicates,
            opt(c.cpu_s_per_1000, 3),
            thousands(o.delivered_per_s),
            o.latency.p50_ms,
            o.latency.p99_ms,
            o.lost,
            f.closed.load_before
        ));
    }
    line(String::new());

    line(
        "**Failing sink** — a healthy trigger beside a trigger whose sink answers 503 \
         (2 retries, linear 100 ms backoff, then its dead-letter sink). Baseline: the \
         healthy trigger alone, same load.\n"
            .into(),
    );
    line("| load | alone: events/s | p99 ms | beside failing: events/s | p99 ms | kept | lost | dead letters | 503 answers | load |".into());
    line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for (label, (a, b)) in [
        (
            closed_label(report.connections, &r.failing_closed_ratios),
            &r.failing_closed,
        ),
        (
            format!("{} /s", thousands(report.fixed_rate)),
            &r.failing_open,
        ),
    ] {
        let dl = b.report.dead_letters.as_ref();
        line(format!(
            "| {label} | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} | {:.1} |",
            thousands(a.report.delivered_per_s),
            a.report.latency.p99_ms,
            thousands(b.report.delivered_per_s),
            b.report.latency.p99_ms,
            pct(b.report.delivered_per_s, a.report.delivered_per_s),
            b.report.lost,
            dl.map_or("–".into(), |d| format!(
                "{} of {}",
                d.received, d.expected
            )),
            dl.map_or("–".into(), |d| d.attempts.to_string()),
            b.load_before
        ));
    }
    line(String::new());

    line(
        "**Idle memory** — resident memory (VmRSS) after the instance has been ready and idle; \
         triggers spread evenly over the brokers. Baseline: the same binary with no brokers.\n"
            .into(),
    );
    line("| brokers | triggers | RSS MiB | ÷ no brokers | idle CPU s |".into());
    line("|---:|---:|---:|---:|---:|".into());
    let base = r.idle.first().map_or(0.0, |i| i.rss_mib);
    for i in &r.idle {
        line(format!(
            "| {} | {} | {:.1} | {} | {:.2} |",
            i.brokers,
            thousands(i.triggers as f64),
            i.rss_mib,
            percent(i.rss_mib, base).map_or("–".into(), |p| format!("{:.1}×", p / 100.0)),
            i.idle_cpu_s
        ));
    }
    line(String::new());

    line(
        "**CPU per 1,000 deliveries** — CPU seconds (user + system) of the system under test \
         from the first event sent to the last delivery, per 1,000 events delivered. \
         Baseline: the forwarder under the same load.\n"
            .into(),
    );
    line("| load | forwarder CPU s | weft CPU s | weft ÷ forwarder |".into());
    line("|---|---:|---:|---:|".into());
    let cpu_row = |label: String, f: &E2eReport, w: &E2eReport| {
        format!(
            "| {label} | {} | {} | {} |",
            opt(f.cpu_s_per_1000, 3),
            opt(w.cpu_s_per_1000, 3),
            match (w.cpu_s_per_1000, f.cpu_s_per_1000) {
                (Some(w), Some(f)) if f > 0.0 => format!("{:.1}×", w / f),
                _ => "–".into(),
            }
        )
    };
    line(cpu_row(
        format!("closed, {} conns", report.connections),
        &r.e2e_closed.0.report,
        &r.e2e_closed.1.report,
    ));
    if let Some(p) = r.e2e_sweep.iter().find(|p| p.rate == TARGET_RATE) {
        line(cpu_row(
            format!("{} /s", thousands(TARGET_RATE)),
            &p.baseline.report,
            &p.weft.report,
        ));
    }
    line(String::new());
}

/// Replaces the generated section of `existing` (or appends one) with `section`.
pub fn splice(existing: &str, section: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = &existing[end + END.len()..];
            format!("{}{}{}", &existing[..begin], section.trim_end(), after)
        }
        _ => {
            let mut out = existing.trim_end().to_owned();
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(section);
            out
        }
    }
}

/// Writes the markdown section into `markdown_path`, each channel's chart into
/// `charts_dir`, and all figures as JSON into `charts_dir/results.json`.
pub fn write(
    report: &SuiteReport,
    markdown_path: &Path,
    charts_dir: &Path,
) -> Result<(), BenchError> {
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|source| BenchError::Write { path, source })
    };
    std::fs::create_dir_all(charts_dir).map_err(|source| BenchError::Write {
        path: charts_dir.to_owned(),
        source,
    })?;
    for r in &report.channels {
        write(
            charts_dir.join(format!("suite-{}.svg", r.channel)),
            &channel_chart(r),
        )?;
    }
    // Serializing plain data with string keys cannot fail.
    let json = serde_json::to_string_pretty(report).expect("the report serializes");
    write(charts_dir.join("results.json"), &json)?;
    let base = markdown_path.parent().unwrap_or(Path::new(""));
    let link = |channel: &str| {
        let chart = charts_dir.join(format!("suite-{channel}.svg"));
        chart
            .strip_prefix(base)
            .unwrap_or(&chart)
            .display()
            .to_string()
    };
    let section = markdown(report, &link);
    let existing = std::fs::read_to_string(markdown_path).unwrap_or_default();
    write(markdown_path.to_owned(), &splice(&existing, &section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::ReceiveReport;
    use crate::report::{Latency, StatusCounts};

    fn ingest(accepted_per_s: f64, p99_ms: f64) -> IngestReport {
        IngestReport {
            target: "http://127.0.0.1:1/".into(),
            mode: Loop::Closed,
            connections: 32,
            duration_s: 5.0,
            warmup_s: 1.0,
            size: 256,
            sent: 10,
            accepted: 10,
            failed: 0,
            accepted_per_s,
            status: StatusCounts::default(),
            latency: Latency {
                p99_ms,
                ..Latency::default()
            },
            total_sent: 10,
            total_accepted: 10,
        }
    }

    fn e2e(delivered_per_s: f64, lost: u64, p99_ms: f64) -> Run<E2eReport> {
        Run {
            load_before: 1.0,
            report: E2eReport {
                system: "weft (sqlite)".into(),
                topology: Topology::default(),
                ingest: ingest(delivered_per_s, 1.0),
                expected: 100,
                delivered: 100 - lost,
                lost,
                duplicates: 0,
                delivered_per_s,
                events_per_s: delivered_per_s,
                latency: Latency {
                    p99_ms,
                    ..Latency::default()
                },
                drain_s: 0.0,
                cpu_s: Some(1.0),
                cpu_s_per_1000: Some(0.1),
                rss_mib: Some(20.0),
                dead_letters: None,
                received: ReceiveReport::default(),
                load_average: 1.0,
            },
        }
    }

    fn results() -> ChannelResults {
        let run = |r: IngestReport| Run {
            load_before: 1.0,
            report: r,
        };
        ChannelResults {
            channel: "sqlite".into(),
            ingest_closed: (run(ingest(40_000.0, 1.0)), run(ingest(10_000.0, 5.0))),
            ingest_closed_ratios: vec![25.0],
            ingest_sweep: Vec::new(),
            // 55% of the forwarder, nothing lost.
            e2e_closed: (e2e(20_000.0, 0, 2.0), e2e(11_000.0, 0, 9.0)),
            e2e_closed_ratios: vec![55.0],
            e2e_sweep: vec![E2ePoint {
                rate: TARGET_RATE,
                baseline: e2e(1000.0, 0, 2.0),
                weft: e2e(1000.0, 0, 12.5),
            }],
            forwarder_fixed: e2e(500.0, 0, 1.0),
            fanout: Vec::new(),
            // 85% of the healthy trigger's throughput beside the failing one.
            failing_closed: (e2e(8_000.0, 0, 5.0), e2e(6_800.0, 0, 6.0)),
            failing_closed_ratios: vec![80.0, 85.0, 95.0],
            failing_open: (e2e(500.0, 0, 2.0), e2e(500.0, 0, 2.0)),
            idle: vec![IdleRow {
                brokers: 100,
                triggers: 1000,
                rss_mib: 29.5,
                idle_cpu_s: 0.1,
            }],
        }
    }

    #[test]
    fn targets_are_judged_on_the_figures_and_the_losses() {
        let verdicts: Vec<bool> = targets(&results()).into_iter().map(|t| t.2).collect();
        assert_eq!(verdicts, [true, false, false, true]);
        let mut lossy = results();
        lossy.e2e_closed.1.report.lost = 1;
        assert!(
            !targets(&lossy)[0].2,
            "any loss misses the end-to-end target"
        );
        let first = &targets(&results())[0];
        assert_eq!(
            first.1,
            "55.0% (11,000 vs 20,000 events/s), 0 lost; CPU per delivery 1.0× the forwarder's"
        );
        assert!(targets(&results())[2].1.starts_with(
            "85.0% at full load (6,800 vs 8,000 events/s; median of 3 pairs: 80%, 85%, 95%)"
        ));
    }

    #[test]
    fn the_markdown_section_has_every_scenario_and_the_verdicts() {
        let report = SuiteReport {
            date: format_utc(0),
            commit: Some("abc1234".into()),
            command: "weft bench suite".into(),
            machine: Machine::describe(),
            duration_s: 5.0,
            warmup_s: 1.0,
            connections: 32,
            open_connections: 64,
            repeat: 3,
            size: 256,
            fixed_rate: 500.0,
            channels: vec![results()],
        };
        let md = markdown(&report, &|c| format!("bench/suite-{c}.svg"));
        assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
        for heading in [
            "**Ingest-ack**",
            "**End to end**",
            "**Fan-out**",
            "**Failing sink**",
            "**Idle memory**",
            "**CPU per 1,000 deliveries**",
        ] {
            assert!(md.contains(heading), "{heading} missing");
        }
        assert!(md.contains("(bench/suite-sqlite.svg)"));
        assert!(md.contains("at commit `abc1234`"));
        assert_eq!(md.matches("| **missed** |").count(), 2);
        assert!(md.contains("| closed, 32 conns | 20,000 | 0.00 / 2.00 / 0.00 | 11,000 |"));
    }

    #[test]
    fn the_median_pair_is_reported_with_every_ratio() {
        let run = |v: f64| Run {
            load_before: 0.0,
            report: v,
        };
        let pairs = vec![
            (run(10.0), run(5.0)),
            (run(10.0), run(3.0)),
            (run(10.0), run(9.0)),
        ];
        let ((base, system), ratios) = median_pair(pairs, |b, s| s / b * 100.0);
        assert_eq!((base.report, system.report), (10.0, 5.0));
        assert_eq!(ratios, [50.0, 30.0, 90.0]);
        let two = vec![(run(1.0), run(2.0)), (run(1.0), run(1.0))];
        assert_eq!(
            median_pair(two, |b, s| s / b).0.1.report,
            1.0,
            "the lower middle"
        );
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_798_761_600 + 3_723), "2027-01-01 01:02");
    }

    #[test]
    fn the_generated_section_is_replaced_and_the_rest_kept() {
        let first = splice(
            "# Benchmarks\n\n## Filters\ntext\n",
            &format!("{BEGIN}\nA\n{END}\n"),
        );
        assert_eq!(
            first,
            format!("# Benchmarks\n\n## Filters\ntext\n\n{BEGIN}\nA\n{END}\n")
        );
        let second = splice(
            &format!("{first}\n## After\n"),
            &format!("{BEGIN}\nB\n{END}\n"),
        );
        assert_eq!(
            second,
            format!("# Benchmarks\n\n## Filters\ntext\n\n{BEGIN}\nB\n{END}\n\n## After\n")
        );
    }
}
