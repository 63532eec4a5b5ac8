//! One end-to-end run: a receiver, the system under test (`weft up` on a channel, or the
//! stateless forwarder baseline) and the load, in one go, then a wait for every accepted
//! event to arrive, and a report of what was lost, duplicated, how fast and how late.
//!
//! The Weft topology is one broker, `default/bench`, with `triggers` triggers `t0…`
//! subscribed to receiver paths `/t0…`. With `groups > 0` each event carries
//! `benchgroup = seq % groups` and trigger `i` filters `benchgroup: i % groups`, so each
//! trigger matches `1/groups` of the events. With `failing`, one more trigger subscribes
//! `/fail`, which answers 503: it retries twice (linear, 100 ms) and then dead-letters to
//! `/dls`, next to the healthy ones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Serialize;

use super::BenchError;
use super::load::{self, GROUP_EXT, IngestReport, LoadOptions};
use super::process::{ChannelSpec, Server, WeftUp, manifest, start_baseline};
use super::receive::{ReceiveReport, Receiver, ReceiverOptions};
use super::report::{Latency, SeqSet, load_average, thousands};
use crate::{Delivery, broker, trigger};

/// The system that carries events from the load to the receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum System {
    /// `weft up` on this channel.
    Weft(ChannelSpec),
    /// The stateless forwarder baseline.
    Forwarder,
}

impl System {
    /// `weft (sqlite)` or `forwarder`.
    pub fn label(&self) -> String {
        match self {
            System::Weft(channel) => format!("weft ({})", channel.label),
            System::Forwarder => "forwarder".into(),
        }
    }
}

/// Triggers and sinks behind the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Healthy triggers.
    pub triggers: usize,
    /// When above 0, trigger `i` matches only events with `seq % groups == i % groups`.
    pub groups: u32,
    /// Add a trigger whose sink always answers 503, with a dead-letter sink.
    pub failing: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            triggers: 1,
            groups: 0,
            failing: false,
        }
    }
}

/// One end-to-end run.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    /// The `weft` binary, which also serves the baselines.
    pub bin: PathBuf,
    /// What carries the events.
    pub system: System,
    /// Triggers and sinks (Weft only; the forwarder has one sink).
    pub topology: Topology,
    /// The load; its target is filled in.
    pub load: LoadOptions,
    /// Passed to `weft up --max-in-flight`.
    pub max_in_flight: Option<usize>,
    /// Give up waiting for deliveries when none arrived for this long.
    pub idle_timeout: Duration,
}

/// Dead letters of the failing trigger.
#[derive(Clone, Debug, Serialize)]
pub struct DeadLetters {
    /// Delivery attempts the failing sink answered 503.
    pub attempts: u64,
    /// Events that should reach the dead-letter sink (every accepted one), in the end.
    pub expected: u64,
    /// Distinct events that did by the time the healthy trigger had all its events.
    pub received: u64,
}

/// What an end-to-end run measured.
#[derive(Clone, Debug, Serialize)]
pub struct E2eReport {
    /// `weft (sqlite)` or `forwarder`.
    pub system: String,
    /// Triggers and sinks.
    pub topology: Topology,
    /// The producer side: what the system accepted, how fast, how late its answers were.
    pub ingest: IngestReport,
    /// Deliveries the healthy sinks should get: accepted events (warm-up included) times
    /// the triggers that match them.
    pub expected: u64,
    /// Distinct expected deliveries that arrived.
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of an event a sink had already received.
    pub duplicates: u64,
    /// Delivered events per second, from the first event sent to the last delivery.
    pub delivered_per_s: f64,
    /// Accepted events per second, over the same time: how fast events got through every
    /// trigger that matched them (differs from `delivered_per_s` with fan-out and filters).
    pub events_per_s: f64,
    /// From the sender's timestamp to arrival, healthy sinks, after the warm-up.
    pub latency: Latency,
    /// Seconds from the end of the load to the last delivery.
    pub drain_s: f64,
    /// CPU seconds the system used from the start of the load to the last delivery.
    pub cpu_s: Option<f64>,
    /// CPU seconds per 1,000 deliveries (dead letters and failed attempts not counted).
    pub cpu_s_per_1000: Option<f64>,
    /// The system's resident memory at the end, MiB.
    pub rss_mib: Option<f64>,
    /// With a failing trigger: its dead letters.
    pub dead_letters: Option<DeadLetters>,
    /// The receiver's counts per path.
    pub received: ReceiveReport,
    /// The 1-minute load average when the run ended.
    pub load_average: f64,
}

impl E2eReport {
    /// The report as text for a person.
    pub fn text(&self) -> String {
        let mut out = format!("system      {}\n", self.system);
        out.push_str(&self.ingest.text());
        out.push_str(&format!(
            "delivered   {} of {} expected ({} lost, {} duplicates)\n\
             throughput  {} deliveries/s, {} events/s end to end\n\
             end to end  {}\n\
             drained     {:.2} s after the load\n",
            self.delivered,
            self.expected,
            self.lost,
            self.duplicates,
            thousands(self.delivered_per_s),
            thousands(self.events_per_s),
            self.latency.line(),
            self.drain_s,
        ));
        if let (Some(cpu), Some(per)) = (self.cpu_s, self.cpu_s_per_1000) {
            out.push_str(&format!(
                "cpu         {cpu:.2} s ({per:.3} s per 1,000 deliveries)\n"
            ));
        }
        if let Some(rss) = self.rss_mib {
            out.push_str(&format!("memory      {rss:.1} MiB resident\n"));
        }
        if let Some(d) = &self.dead_letters {
            out.push_str(&format!(
                "dead letter {} of {} so far ({} attempts answered 503)\n",
                d.received, d.expected, d.attempts
            ));
        }
        out
    }
}

/// The system under test while it runs.
enum Running {
    Weft(WeftUp),
    Forwarder(Server),
}

impl Running {
    fn server(&self) -> &Server {
        match self {
            Running::Weft(w) => w.server(),
            Running::Forwarder(s) => s,
        }
    }

    async fn stop(self) {
        match self {
            Running::Weft(w) => w.stop().await,
            Running::Forwarder(s) => s.stop().await,
        }
    }
}

/// The manifests of [`Topology`] for sinks on `receiver`.
pub fn manifests(topology: &Topology, receiver: &Receiver) -> Vec<(String, String)> {
    let mut out = vec![manifest("broker.yaml", broker("bench"))];
    for i in 0..topology.triggers {
        let mut t = trigger(&format!("t{i}"))
            .broker("bench")
            .subscriber(receiver.url(&format!("/t{i}")));
        if topology.groups > 0 {
            t = t.filter_attr(
                GROUP_EXT,
                &(i as u64 % u64::from(topology.groups)).to_string(),
            );
        }
        out.push(manifest(&format!("t{i}.yaml"), t));
    }
    if topology.failing {
        let t = trigger("failing")
            .broker("bench")
            .subscriber(receiver.url("/fail"))
            .delivery(
                Delivery::new()
                    .retry(2)
                    .linear("PT0.1S")
                    .dead_letter_sink(receiver.url("/dls")),
            );
        out.push(manifest("failing.yaml", t));
    }
    out
}

/// Which accepted events each healthy path should get: `(path, group)`; group `None`
/// means every event.
fn expectations(system: &System, topology: &Topology) -> Vec<(String, Option<u64>)> {
    match system {
        System::Forwarder => vec![("/t0".into(), None)],
        System::Weft(_) => (0..topology.triggers)
            .map(|i| {
                let group = (topology.groups > 0).then(|| i as u64 % u64::from(topology.groups));
                (format!("/t{i}"), group)
            })
            .collect(),
    }
}

/// How many of `accepted` belong to `group` (of `groups`), and how many of those `seen`
/// lacks.
pub fn expected_and_lost(
    accepted: &SeqSet,
    seen: &SeqSet,
    group: Option<u64>,
    groups: u32,
) -> (u64, u64) {
    let mut expected = 0;
    let mut lost = 0;
    for seq in accepted.iter() {
        if let Some(g) = group
            && seq % u64::from(groups) != g
        {
            continue;
        }
        expected += 1;
        lost += u64::from(!seen.contains(seq));
    }
    (expected, lost)
}

/// Runs the system, the load and the receiver, and reports.
pub async fn run(options: &E2eOptions) -> Result<E2eReport, BenchError> {
    let topology = match options.system {
        System::Forwarder => Topology::default(),
        System::Weft(_) => options.topology,
    };
    if options.system == System::Forwarder && options.topology != Topology::default() {
        return Err(BenchError::Options {
            reason: "the forwarder has one sink: no --triggers, --groups or --failing".into(),
        });
    }
    let mut statuses = std::collections::HashMap::new();
    statuses.insert("/fail".to_owned(), StatusCode::SERVICE_UNAVAILABLE);
    let receiver = Receiver::start(ReceiverOptions {
        statuses,
        ..ReceiverOptions::default()
    })
    .await?;
    let logs = tempfile::Builder::new()
        .prefix("weft-bench-")
        .tempdir()
        .map_err(|e| BenchError::Start {
            what: "a temp dir".into(),
            reason: e.to_string(),
        })?;
    let running = match &options.system {
        System::Weft(channel) => {
            let mut extra = Vec::new();
            if let Some(n) = options.max_in_flight {
                extra.extend(["--max-in-flight".to_owned(), n.to_string()]);
            }
            // Many triggers take a while to become ready on a busy machine.
            let ready =
                Duration::from_secs(30) + Duration::from_millis(100) * topology.triggers as u32;
            let weft = WeftUp::start(
                &options.bin,
                channel,
                &manifests(&topology, &receiver),
                &extra,
                ready,
            )
            .await?;
            Running::Weft(weft)
        }
        System::Forwarder => {
            let sink = receiver.url("/t0");
            let server = start_baseline(
                &options.bin,
                &["baseline-forwarder", "--sink", &sink],
                logs.path(),
            )
            .await?;
            Running::Forwarder(server)
        }
    };
    let target = match &running {
        Running::Weft(w) => w.broker_url("default", "bench"),
        Running::Forwarder(s) => format!("http://{}/", s.addr()),
    };
    let mut load_options = options.load.clone();
    load_options.target = target;
    if topology.groups > 0 {
        load_options.groups = topology.groups;
    }
    let prepared = load::prepare(&load_options).await?;
    receiver.measure_from(prepared.window_start_ns());
    let cpu_before = running.server().cpu();
    let outcome = prepared.run().await?;

    // Wait for every accepted event to reach every sink that should get it.
    let expect = expectations(&options.system, &topology);
    let group_size = |group: Option<u64>| match group {
        None => outcome.accepted.len(),
        Some(g) => outcome
            .accepted
            .iter()
            .filter(|seq| seq % u64::from(topology.groups) == g)
            .count() as u64,
    };
    let mut targets: Vec<(String, u64)> = Vec::new();
    for (path, group) in &expect {
        targets.push((path.clone(), group_size(*group)));
    }
    // The failing trigger's dead letters are not waited for: its in-flight window narrows
    // while its sink fails, so they trickle in long after the healthy trigger is done.
    // Only this run's events count: a channel shared with an earlier run may deliver
    // some of that run's events again.
    let done = |receiver: &Receiver| {
        (targets.iter()).all(|(p, n)| receiver.unique_of_run(p, &outcome.run) >= *n)
    };
    let mut last_count = receiver.requests();
    let mut last_change = Instant::now();
    while !done(&receiver) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = receiver.requests();
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        } else if last_change.elapsed() >= options.idle_timeout {
            break;
        }
    }
    let cpu_after = running.server().cpu();
    let rss = running.server().rss();

    let mut expected = 0;
    let mut lost = 0;
    let mut last_delivery = outcome.finished;
    for (path, group) in &expect {
        let seen = receiver.seen(path, &outcome.run);
        let (e, l) = expected_and_lost(&outcome.accepted, &seen, *group, topology.groups);
        expected += e;
        lost += l;
        if let Some(at) = receiver.last_new_of_run(path, &outcome.run) {
            last_delivery = last_delivery.max(at);
        }
    }
    let received = receiver.report();
    let healthy: Vec<_> = expect.iter().map(|(p, _)| p.as_str()).collect();
    let duplicates = received
        .paths
        .iter()
        .filter(|(p, _)| healthy.contains(&p.as_str()))
        .map(|(_, r)| r.duplicates)
        .sum();
    let latency = receiver.latency_of(&healthy);
    let delivered = expected - lost;
    let span = last_delivery.saturating_duration_since(outcome.started);
    let cpu_s = cpu_after
        .zip(cpu_before)
        .map(|(after, before)| (after - before).as_secs_f64());
    let dead_letters = topology.failing.then(|| {
        let path = |p: &str| received.paths.get(p).cloned().unwrap_or_default();
        DeadLetters {
            attempts: path("/fail").requests,
            expected: outcome.accepted.len(),
            received: path("/dls").unique,
        }
    });
    running.stop().await;
    Ok(E2eReport {
        system: options.system.label(),
        topology,
        ingest: outcome.report,
        expected,
        delivered,
        lost,
        duplicates,
        delivered_per_s: delivered as f64 / span.as_secs_f64().max(1e-9),
        events_per_s: outcome.accepted.len() as f64 / span.as_secs_f64().max(1e-9),
        latency,
        drain_s: last_delivery
            .saturating_duration_since(outcome.finished)
            .as_secs_f64(),
        cpu_s,
        cpu_s_per_1000: cpu_s
            .filter(|_| delivered > 0)
            .map(|c| c / delivered as f64 * 1000.0),
        rss_mib: rss.map(|b| b as f64 / (1024.0 * 1024.0)),
        dead_letters,
        received,
        load_average: load_average(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_deliveries_follow_the_filter_groups() {
        let mut accepted = SeqSet::new();
        for seq in 0..100 {
            accepted.insert(seq);
        }
        let mut seen = SeqSet::new();
        // Group 3 but for 93.
        for seq in (3..90).step_by(10) {
            seen.insert(seq);
        }
        assert_eq!(expected_and_lost(&accepted, &seen, Some(3), 10), (10, 1));
        assert_eq!(expected_and_lost(&accepted, &seen, None, 0), (100, 91));
        assert_eq!(expected_and_lost(&accepted, &seen, Some(4), 10), (10, 10));
    }

    #[test]
    fn a_hundred_triggers_on_ten_groups_each_match_a_tenth() {
        let topology = Topology {
            triggers: 100,
            groups: 10,
            failing: true,
        };
        let expect = expectations(&System::Weft(ChannelSpec::parse("sqlite")), &topology);
        assert_eq!(expect.len(), 100);
        assert_eq!(expect[0], ("/t0".into(), Some(0)));
        assert_eq!(expect[57], ("/t57".into(), Some(7)));
        assert_eq!(
            expectations(&System::Forwarder, &topology),
            [("/t0".into(), None)]
        );
    }
}
