//! The `weft` command: parses arguments and hands over to the crates. No logic lives here.

mod bench;
mod cluster;
mod delivery;
mod duration;
mod limits;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use weft_broker::DataPlaneOptions;
use weft_controller::client::{self, SendMode, SendRequest};
use weft_controller::standalone::{self, StandaloneOptions};

/// Where the admin API listens unless told otherwise: loopback, since it is
/// unauthenticated, and a port of its own beside the ingress's 8080.
const ADMIN_ADDR: &str = "127.0.0.1:8090";

/// Weft: a CloudEvents eventing fabric that runs Knative Brokers and Triggers.
#[derive(Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "WEFT_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process from a folder of Knative manifests.
    Up {
        /// A manifest file or folder (watched for changes).
        #[arg(short = 'f', long = "filename", env = "WEFT_MANIFESTS")]
        manifests: PathBuf,
        /// Where the embedded channel keeps its data.
        #[arg(long, default_value = "./.weft", env = "WEFT_DATA_DIR")]
        data_dir: PathBuf,
        /// Listen address for the ingress, health and metrics.
        #[arg(long, default_value = "127.0.0.1:8080", env = "WEFT_ADDR")]
        addr: String,
        /// Listen address for the admin API (`/_weft/v1/…`, what `weft get` reads; also
        /// health and metrics). It is unauthenticated: keep it on loopback.
        #[arg(long, default_value = ADMIN_ADDR, env = "WEFT_ADMIN_ADDR")]
        admin_addr: String,
        /// Channel URL (default: sqlite://<data-dir>/weft.db).
        #[arg(long, env = "WEFT_CHANNEL")]
        channel: Option<String>,
        /// Largest request body the ingress accepts, in bytes.
        #[arg(long, default_value_t = 1024 * 1024, env = "WEFT_MAX_BODY_SIZE")]
        max_body_size: usize,
        /// Events in flight per trigger at most (a trigger's weft.dev/max-in-flight overrides
        /// it); the window narrows while a sink keeps failing.
        #[arg(long, default_value_t = 256, env = "WEFT_MAX_IN_FLIGHT",
              value_parser = delivery::max_in_flight())]
        max_in_flight: usize,
        #[command(flatten)]
        default_delivery: delivery::DefaultDelivery,
        /// At start, delete logs and cursors no manifest owns on a shared server too (the
        /// embedded SQLite file is always cleaned; a server may hold other installations' logs).
        #[arg(long, env = "WEFT_COLLECT_GARBAGE")]
        collect_garbage: bool,
        /// How long the log or cursor of a broker or trigger deleted from the manifests is
        /// kept while it still holds undelivered events (ISO-8601, e.g. PT1H, P1D); `weft
        /// purge` deletes it sooner, restoring the manifest resumes it.
        #[arg(long, default_value = "PT1H", value_parser = parse_duration, env = "WEFT_RETAIN_DELETED")]
        retain_deleted: Duration,
        #[command(flatten)]
        limits: limits::LimitArgs,
    },
    /// Delete now the log or cursor a deleted broker or trigger left behind with undelivered
    /// events (`weft get` shows it as Retained). The events it holds are lost.
    Purge {
        /// What was deleted.
        #[arg(value_enum)]
        what: PurgeWhat,
        /// The deleted object, as NAMESPACE/NAME.
        object: String,
        /// The instance's admin address (`weft up --admin-addr`).
        #[arg(long, default_value = ADMIN_ADDR, env = "WEFT_ADMIN_ADDR")]
        admin_addr: String,
    },
    /// Send one CloudEvent and print the response status.
    Send {
        /// The broker URL, e.g. http://127.0.0.1:8080/default/default.
        url: String,
        /// The event type.
        #[arg(long = "type")]
        ty: String,
        /// The event source.
        #[arg(long)]
        source: String,
        /// The event id (default: a random UUID).
        #[arg(long)]
        id: Option<String>,
        /// JSON data.
        #[arg(long)]
        data: Option<String>,
        /// An extension attribute as name=value (repeatable).
        #[arg(long = "extension", short = 'e', value_parser = parse_pair)]
        extensions: Vec<(String, String)>,
        /// Content mode.
        #[arg(long, value_enum, default_value = "binary")]
        mode: Mode,
    },
    /// Show brokers or triggers of a running instance.
    Get {
        /// What to show.
        #[arg(value_enum)]
        what: Kind,
        /// The instance's admin address (`weft up --admin-addr`).
        #[arg(long, default_value = ADMIN_ADDR, env = "WEFT_ADMIN_ADDR")]
        admin_addr: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Measure Weft against its baselines: load generator, receiver, end-to-end runs, suite.
    Bench(bench::BenchArgs),
    /// Print the Broker and Trigger CRDs as YAML, for `kubectl apply -f -`.
    Crds,
    /// On Kubernetes: create channel storage, resolve refs and write status (leader-elected).
    Controller(cluster::ControllerArgs),
    /// On Kubernetes: accept events for Weft's Brokers (scale out freely).
    Ingress(cluster::ReplicaArgs),
    /// On Kubernetes: deliver events to Weft's Triggers (scale out freely).
    Dispatcher(cluster::ReplicaArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Binary,
    Structured,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Brokers,
    Triggers,
}

#[derive(Clone, Copy, ValueEnum)]
enum PurgeWhat {
    Broker,
    Trigger,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    weft_config::manifest::parse_duration(s)
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected name=value, got `{s}`"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a URL given on the command line; never its credentials.
            eprintln!("error: {}", logging::scrub(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up {
            manifests,
            data_dir,
            addr,
            admin_addr,
            channel,
            max_body_size,
            max_in_flight,
            default_delivery,
            collect_garbage,
            retain_deleted,
            limits,
        } => {
            let options = StandaloneOptions {
                collect_garbage,
                retention: retain_deleted,
                manifests,
                data_dir,
                addr,
                admin_addr,
                channel,
                dataplane: DataPlaneOptions {
                    max_body_size,
                    max_in_flight,
                    default_delivery: default_delivery.config(),
                    limits: limits.into(),
                },
            };
            standalone::run(options, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Send {
            url,
            ty,
            source,
            id,
            data,
            extensions,
            mode,
        } => {
            let request = SendRequest {
                url,
                ty,
                source,
                id,
                data,
                extensions,
                mode: match mode {
                    Mode::Binary => SendMode::Binary,
                    Mode::Structured => SendMode::Structured,
                },
            };
            let (status, body) = client::send(&request).await?;
            println!("{status}");
            if !body.trim().is_empty() {
                println!("{}", body.trim_end());
            }
            Ok(if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Get {
            what,
            admin_addr: addr,
            output,
        } => {
            let text = match (what, output) {
                (Kind::Brokers, Output::Table) => {
                    client::brokers_table(&client::get_brokers(&addr).await?)
                }
                (Kind::Triggers, Output::Table) => {
                    client::triggers_table(&client::get_triggers(&addr).await?)
                }
                (Kind::Brokers, Output::Json) => {
                    serde_json::to_string_pretty(&client::get_brokers(&addr).await?)? + "\n"
                }
                (Kind::Triggers, Output::Json) => {
                    serde_json::to_string_pretty(&client::get_triggers(&addr).await?)? + "\n"
                }
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge {
            what,
            object,
            admin_addr: addr,
        } => {
            let Some((namespace, name)) = object.split_once('/') else {
                anyhow::bail!("expected NAMESPACE/NAME, got `{object}`");
            };
            let key = weft_config::ObjectKey::new(namespace, name);
            let kind = match what {
                PurgeWhat::Broker => "brokers",
                PurgeWhat::Trigger => "triggers",
            };
            let purged = client::purge(&addr, kind, &key).await?;
            for deleted in purged.deleted {
                println!("deleted {deleted}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args, shutdown_signal()).await,
        Command::Crds => {
            print!("{}", weft_config::crd::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            weft_controller::cluster::run_controller(args.options(), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingress(args) => {
            let roles = weft_controller::reconcile::Roles::INGRESS;
            weft_controller::cluster::run_replica(roles, args.options(), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dispatcher(args) => {
            let roles = weft_controller::reconcile::Roles::DISPATCHER;
            weft_controller::cluster::run_replica(roles, args.options(), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logging::ScrubbedStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
