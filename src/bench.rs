//! `weft bench …`: arguments only; the work is done by the `weft-bench` crate.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use http::StatusCode;
use weft_bench::baseline;
use weft_bench::e2e::{self, E2eOptions, System, Topology};
use weft_bench::load::{self, LoadOptions, Loop};
use weft_bench::process::ChannelSpec;
use weft_bench::receive::{Receiver, ReceiverOptions};
use weft_bench::suite::{self, SuiteOptions};

/// Measure Weft against its baselines.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// POST binary-mode CloudEvents to a URL; report events/s accepted, status codes and
    /// latency (p50/p90/p99/p99.9/max).
    Ingest {
        /// The URL, e.g. http://127.0.0.1:8080/default/default.
        #[arg(long)]
        target: String,
        #[command(flatten)]
        load: LoadArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Receive events, counting them, duplicates (by id) and end-to-end latency (from the
    /// sender's `benchts` extension), until Ctrl-C or --duration.
    Receive {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        addr: String,
        /// Status code to answer with.
        #[arg(long, default_value_t = 202)]
        status: u16,
        /// Stop after this long (e.g. 30s).
        #[arg(long, value_parser = crate::duration::parse)]
        duration: Option<Duration>,
        /// No progress line on stderr.
        #[arg(long)]
        no_progress: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sender, receiver and system under test in one command: reports lost events,
    /// duplicates, throughput and end-to-end latency.
    E2e {
        /// What carries the events.
        #[arg(long, value_enum, default_value = "weft")]
        system: SystemArg,
        /// Channel for `weft up`: sqlite (default), memory, or a channel URL.
        #[arg(long, default_value = "sqlite")]
        channel: String,
        /// Healthy triggers (sinks /t0, /t1, …).
        #[arg(long, default_value_t = 1)]
        triggers: usize,
        /// When above 0, trigger i matches only events with benchgroup = i % groups.
        #[arg(long, default_value_t = 0)]
        groups: u32,
        /// Add a trigger whose sink answers 503, with a dead-letter sink.
        #[arg(long)]
        failing: bool,
        /// Passed to `weft up --max-in-flight`.
        #[arg(long)]
        max_in_flight: Option<usize>,
        #[command(flatten)]
        load: LoadArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve a bare handler that answers 202 without storing anything.
    BaselineHttp {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9091")]
        addr: String,
    },
    /// Serve a stateless forwarder: POSTs each event to the sink, then answers 202.
    BaselineForwarder {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9092")]
        addr: String,
        /// Where to forward, e.g. http://127.0.0.1:9090/.
        #[arg(long)]
        sink: String,
    },
    /// Run the standard scenarios on each channel and write BENCHMARKS.md, an SVG chart
    /// per channel and results.json.
    Suite {
        /// A channel to run every scenario on (repeatable): sqlite, memory or a URL.
        #[arg(long = "channel", default_value = "sqlite")]
        channels: Vec<String>,
        /// Measured time per run.
        #[arg(long, default_value = "5s", value_parser = crate::duration::parse)]
        duration: Duration,
        /// Warm-up per run.
        #[arg(long, default_value = "1s", value_parser = crate::duration::parse)]
        warmup: Duration,
        /// Connections of closed-loop runs.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Connections of open-loop runs.
        #[arg(long, default_value_t = 64)]
        open_connections: usize,
        /// Closed-loop pairs (baseline, weft) measured alternately for each ratio target;
        /// the pair with the median ratio is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Offered rates of the open-loop sweeps, events/s (1000 is always included).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "500,1000,2000,4000,8000,16000"
        )]
        rates: Vec<f64>,
        /// Trigger counts of the fan-out scenario.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        fanout: Vec<usize>,
        /// Offered rate of the fan-out and failing-sink open loops, events/s.
        #[arg(long, default_value_t = 500.0)]
        fixed_rate: f64,
        /// Brokers of the idle-memory scenario.
        #[arg(long, default_value_t = 100)]
        idle_brokers: usize,
        /// Triggers of the idle-memory scenario, spread over the brokers.
        #[arg(long, default_value_t = 1000)]
        idle_triggers: usize,
        /// Data bytes per event.
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// The markdown file whose generated section is replaced.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Where the charts and results.json go.
        #[arg(long, default_value = "bench")]
        charts_dir: PathBuf,
        /// No progress lines on stderr.
        #[arg(long)]
        no_progress: bool,
        /// Print all figures as JSON on stdout as well.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SystemArg {
    Weft,
    Forwarder,
}

/// How the load is offered.
#[derive(Args)]
struct LoadArgs {
    /// Open loop at this many events/s (default: a closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Connections (default 32 in a closed loop, 64 in an open loop).
    #[arg(long)]
    connections: Option<usize>,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse)]
    duration: Duration,
    /// Warm-up before the measurement.
    #[arg(long, default_value = "2s", value_parser = crate::duration::parse)]
    warmup: Duration,
    /// Data bytes per event.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,
}

impl LoadArgs {
    fn options(&self, target: String, label: &str) -> LoadOptions {
        let mode = match self.rate {
            Some(rate) => Loop::Open { rate },
            None => Loop::Closed,
        };
        let default_connections = if self.rate.is_some() { 64 } else { 32 };
        LoadOptions {
            target,
            mode,
            connections: self.connections.unwrap_or(default_connections),
            duration: self.duration,
            warmup: self.warmup,
            size: self.size,
            groups: 0,
            progress: !self.no_progress,
            label: label.into(),
        }
    }
}

fn print(json: bool, value: &impl serde::Serialize, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Prints the listening line a parent process waits for.
fn announce(addr: std::net::SocketAddr) {
    println!("{}{addr}", baseline::LISTENING);
    let _ = std::io::stdout().flush();
}

/// Runs a `weft bench` subcommand; servers stop when `shutdown` completes.
pub async fn run(
    args: BenchArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let weft = || std::env::current_exe().map_err(anyhow::Error::from);
    match args.command {
        BenchCommand::Ingest { target, load, json } => {
            let outcome = load::run(&load.options(target, "ingest")).await?;
            print(json, &outcome.report, outcome.report.text())?;
        }
        BenchCommand::Receive {
            addr,
            status,
            duration,
            no_progress,
            json,
        } => {
            let receiver = Receiver::start(ReceiverOptions {
                addr: addr.parse()?,
                status: StatusCode::from_u16(status)?,
                ..ReceiverOptions::default()
            })
            .await?;
            eprintln!("receiving on http://{}", receiver.addr());
            let report = receiver.run_until(shutdown, duration, !no_progress).await;
            print(json, &report, report.text())?;
        }
        BenchCommand::E2e {
            system,
            channel,
            triggers,
            groups,
            failing,
            max_in_flight,
            load,
            json,
        } => {
            let options = E2eOptions {
                bin: weft()?,
                system: match system {
                    SystemArg::Weft => System::Weft(ChannelSpec::parse(&channel)),
                    SystemArg::Forwarder => System::Forwarder,
                },
                topology: Topology {
                    triggers,
                    groups,
                    failing,
                },
                load: load.options(String::new(), "e2e"),
                max_in_flight,
                idle_timeout: Duration::from_secs(15),
            };
            let report = e2e::run(&options).await?;
            print(json, &report, report.text())?;
            if report.lost > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        BenchCommand::BaselineHttp { addr } => {
            baseline::serve_http(&addr, announce, shutdown).await?;
        }
        BenchCommand::BaselineForwarder { addr, sink } => {
            baseline::serve_forwarder(&addr, &sink, announce, shutdown).await?;
        }
        BenchCommand::Suite {
            channels,
            duration,
            warmup,
            connections,
            open_connections,
            repeat,
            rates,
            fanout,
            fixed_rate,
            idle_brokers,
            idle_triggers,
            size,
            out,
            charts_dir,
            no_progress,
            json,
        } => {
            let mut options = SuiteOptions::new(
                weft()?,
                channels.iter().map(|c| ChannelSpec::parse(c)).collect(),
            );
            options.duration = duration;
            options.warmup = warmup;
            options.connections = connections;
            options.open_connections = open_connections;
            options.repeat = repeat;
            options.rates = rates;
            options.fanout = fanout;
            options.fixed_rate = fixed_rate;
            options.idle = (idle_brokers, idle_triggers);
            options.size = size;
            options.progress = !no_progress;
            options.command = std::iter::once("weft".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            let report = suite::run(&options).await?;
            suite::write(&report, &out, &charts_dir)?;
            let mut text = String::new();
            for r in &report.channels {
                for (target, measured, ok) in suite::targets(r) {
                    let status = if ok { "met" } else { "MISSED" };
                    text.push_str(&format!("{status:<7} {target}: {measured}\n"));
                }
            }
            text.push_str(&format!(
                "wrote {} and {}\n",
                out.display(),
                charts_dir.display()
            ));
            print(json, &report, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
