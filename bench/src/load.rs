//! The load generator: binary-mode CloudEvents POSTed over keep-alive HTTP/1.1 connections,
//! one connection per producer, in an open loop (a fixed rate, whatever the answers) or a
//! closed loop (each producer sends its next event once the last is answered).
//!
//! It shares the machine with the system under test, so it is lean: hyper's connection API
//! without a pool, headers built once per run and only the id and timestamp replaced per
//! event, bodies as shared [`Bytes`].
//!
//! **Open loop without coordinated omission.** Event `i` is due at `start + i / rate`. A
//! dedicated thread releases events at their due time (tokio's timer has 1 ms granularity,
//! a thread sleep is accurate to tens of µs) into a queue that the producers take from.
//! Latency runs from the *due* time: if the target stalls, every event queued behind the
//! stall is charged for it, as a real client at that rate would see. The sender timestamp
//! (`benchts`) is the due time as well, so end-to-end latency is measured the same way.
//!
//! **Events.** Ids are `<run>-<seq>`: a run prefix and a sequence number from 0, so a
//! receiver can tell events of this run apart and find duplicates and losses with a bitmap.
//! Extension `benchts` holds the due (open loop) or send (closed loop) time in ns since the
//! Unix epoch; with `groups > 0`, extension `benchgroup` holds `seq % groups` so triggers
//! can filter a known fraction of the events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use weft_config::event::http::encode_binary;
use weft_config::{AttributeValue, Event};

use super::BenchError;
use super::report::{Latency, Progress, SeqSet, StatusCounts, histogram, micros, thousands};

/// The extension that carries the sender's timestamp, ns since the Unix epoch.
pub const TIMESTAMP_EXT: &str = "benchts";
/// The extension that carries `seq % groups`, for filters that match a known fraction.
pub const GROUP_EXT: &str = "benchgroup";
/// The type of every bench event.
pub const EVENT_TYPE: &str = "dev.weft.bench";

const CE_ID: HeaderName = HeaderName::from_static("ce-id");
const CE_TIMESTAMP: HeaderName = HeaderName::from_static("ce-benchts");
const CE_GROUP: HeaderName = HeaderName::from_static("ce-benchgroup");

/// How the load is offered.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "loop")]
pub enum Loop {
    /// This many events per second on a fixed schedule, over `connections` connections.
    Open {
        /// Events per second.
        rate: f64,
    },
    /// Each connection sends its next event as soon as the last is answered.
    Closed,
}

/// One load run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The URL events are POSTed to, e.g. `http://127.0.0.1:8080/default/default`.
    pub target: String,
    /// Open or closed loop.
    pub mode: Loop,
    /// Connections (producers). In an open loop they bound how many requests are in
    /// flight; events wait in the queue beyond that, and their wait counts as latency.
    pub connections: usize,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time before the measurement whose results are not counted (events still are sent,
    /// and their ids are returned with the others).
    pub warmup: Duration,
    /// Size of the event data in bytes (JSON).
    pub size: usize,
    /// When above 0, events carry `benchgroup = seq % groups`.
    pub groups: u32,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// What the progress line calls this run.
    pub label: String,
}

impl LoadOptions {
    /// A closed loop of 32 connections for 10 s after 2 s of warm-up, 256 B of data.
    pub fn new(target: impl Into<String>) -> Self {
        LoadOptions {
            target: target.into(),
            mode: Loop::Closed,
            connections: 32,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            size: 256,
            groups: 0,
            progress: false,
            label: "ingest".into(),
        }
    }
}

/// What a load run measured. Counts and latency cover the measured window only.
#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    /// The URL.
    pub target: String,
    /// Open (with its rate) or closed loop.
    #[serde(flatten)]
    pub mode: Loop,
    /// Connections used.
    pub connections: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Data bytes per event.
    pub size: usize,
    /// Requests due (open loop) or sent (closed loop) in the window.
    pub sent: u64,
    /// Of those, answered 2xx.
    pub accepted: u64,
    /// Of those, answered otherwise or not at all.
    pub failed: u64,
    /// Accepted events per second: accepted in the window, over the time from the start of
    /// the window to the last of their answers.
    pub accepted_per_s: f64,
    /// Responses by status code; 0 counts connection and protocol errors.
    pub status: StatusCounts,
    /// Time from due (open loop) or sent (closed loop) to the end of the answer.
    pub latency: Latency,
    /// Events sent in all, warm-up included.
    pub total_sent: u64,
    /// Events answered 2xx in all, warm-up included.
    pub total_accepted: u64,
}

impl IngestReport {
    /// The offered rate of an open loop, or the accepted rate of a closed one.
    pub fn mode_rate(&self) -> f64 {
        match self.mode {
            Loop::Open { rate } => rate,
            Loop::Closed => self.accepted_per_s,
        }
    }

    /// The report as text for a person.
    pub fn text(&self) -> String {
        let mode = match self.mode {
            Loop::Open { rate } => format!("open loop at {} events/s", thousands(rate)),
            Loop::Closed => "closed loop".into(),
        };
        format!(
            "target      {}\n\
             load        {mode}, {} connections, {:.1} s after {:.1} s warm-up, {} B data\n\
             accepted    {} events/s ({} of {} sent; {} failed)\n\
             status      {}\n\
             latency     {}\n",
            self.target,
            self.connections,
            self.duration_s,
            self.warmup_s,
            self.size,
            thousands(self.accepted_per_s),
            self.accepted,
            self.sent,
            self.failed,
            self.status.line(),
            self.latency.line(),
        )
    }
}

/// A run's report with the ids it got accepted, for loss accounting.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The figures.
    pub report: IngestReport,
    /// The run prefix of every event id.
    pub run: String,
    /// Sequence numbers answered 2xx, warm-up included.
    pub accepted: SeqSet,
    /// When the first event was due.
    pub started: Instant,
    /// When the last answer came.
    pub finished: Instant,
}

/// Splits a bench event id into its run prefix and sequence number.
pub fn parse_id(id: &str) -> Option<(&str, u64)> {
    let (run, seq) = id.rsplit_once('-')?;
    Some((run, seq.parse().ok()?))
}

/// A fresh run prefix: unlikely to repeat across processes and runs.
fn run_prefix() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "wb{:x}{:x}",
        (nanos / 1000) & 0xff_ffff_ffff,
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Maps monotonic instants to ns since the Unix epoch, from one reading of both clocks.
#[derive(Clone, Copy, Debug)]
struct Clock {
    instant: Instant,
    epoch_ns: u64,
}

impl Clock {
    fn now() -> Self {
        let epoch_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Clock {
            instant: Instant::now(),
            epoch_ns,
        }
    }

    fn epoch_ns(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.epoch_ns + after.as_nanos() as u64,
            None => self
                .epoch_ns
                .saturating_sub(self.instant.duration_since(at).as_nanos() as u64),
        }
    }
}

/// Everything a request needs except its id and timestamp, built once.
struct Template {
    /// Resolved address of the target.
    addr: SocketAddr,
    /// Path and query, the request target of an HTTP/1.1 request.
    path: Uri,
    headers: HeaderMap,
    body: Bytes,
    run: String,
    groups: u32,
}

impl Template {
    async fn new(options: &LoadOptions) -> Result<Self, BenchError> {
        let bad = |reason: &str| BenchError::Url {
            url: options.target.clone(),
            reason: reason.into(),
        };
        let uri: Uri = options.target.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// targets are supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        let host_port = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .map_err(|e| bad(&format!("cannot resolve {host_port}: {e}")))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| bad("invalid path"))?;

        let mut event =
            Event::new("0", "/weft/bench", EVENT_TYPE).map_err(|e| bad(&e.to_string()))?;
        // Fixed, valid attribute values: these cannot fail.
        event
            .set_datacontenttype(Some("application/json".into()))
            .expect("a valid content type");
        event
            .set_extension(TIMESTAMP_EXT, AttributeValue::String("0".into()))
            .expect("a valid extension name");
        event.set_data(Some(json_data(options.size)));
        let mut headers = HeaderMap::new();
        let body = encode_binary(&event, &mut headers);
        headers.insert(
            HOST,
            HeaderValue::from_str(authority.as_str()).map_err(|_| bad("invalid host"))?,
        );
        Ok(Template {
            addr,
            path,
            headers,
            body,
            run: run_prefix(),
            groups: options.groups,
        })
    }

    fn request(&self, seq: u64, timestamp_ns: u64) -> Request<Full<Bytes>> {
        let mut headers = self.headers.clone();
        // `<run>-<seq>` is ASCII letters, digits and a dash: always a valid header value.
        let id = HeaderValue::from_str(&format!("{}-{seq}", self.run)).expect("an ascii id");
        headers.insert(CE_ID, id);
        headers.insert(CE_TIMESTAMP, HeaderValue::from(timestamp_ns));
        if self.groups > 0 {
            headers.insert(CE_GROUP, HeaderValue::from(seq % u64::from(self.groups)));
        }
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = headers;
        request
    }
}

/// JSON data of exactly `size` bytes where possible (`{"pad":"xxx…"}`, at least 12 B).
fn json_data(size: usize) -> Bytes {
    let pad = size.saturating_sub(r#"{"pad":""}"#.len());
    Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)))
}

/// One keep-alive connection, reopened after an error.
struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends one request and reads the whole answer; the status, or 0 on any error.
    async fn send(&mut self, request: Request<Full<Bytes>>) -> u16 {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => match Self::open(self.addr).await {
                Ok(s) => self.sender.insert(s),
                Err(_) => {
                    // Do not spin against a refused port.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return 0;
                }
            },
        };
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            // Reading the body to its end lets the connection carry the next request.
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        match answer.await {
            Ok(status) => status,
            Err(_) => {
                self.sender = None;
                0
            }
        }
    }
}

/// Live counters for the progress line.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    /// Released by the schedule (open loop).
    due: AtomicU64,
}

/// What one producer measured.
struct Tally {
    latency: Histogram<u64>,
    status: StatusCounts,
    accepted: SeqSet,
    sent_in_window: u64,
    accepted_in_window: u64,
    total_sent: u64,
    last_answer_in_window: Option<Instant>,
    last_answer: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: histogram(),
            status: StatusCounts::default(),
            accepted: SeqSet::new(),
            sent_in_window: 0,
            accepted_in_window: 0,
            total_sent: 0,
            last_answer_in_window: None,
            last_answer: None,
        }
    }

    /// Counts one answered request that was due (or sent) at `from`.
    fn record(&mut self, seq: u64, status: u16, from: Instant, window: (Instant, Instant)) {
        let now = Instant::now();
        let ok = (200..300).contains(&status);
        self.total_sent += 1;
        self.last_answer = Some(now);
        if ok {
            self.accepted.insert(seq);
        }
        if from < window.0 || from >= window.1 {
            return;
        }
        self.sent_in_window += 1;
        self.status.add(status);
        self.last_answer_in_window = Some(now);
        if ok {
            self.accepted_in_window += 1;
            self.latency.saturating_record(micros(now - from));
        }
    }

    fn merge(&mut self, other: Tally) {
        // Same bounds on both sides: adding cannot fail.
        self.latency.add(&other.latency).expect("same bounds");
        self.status.merge(&other.status);
        self.accepted.union(&other.accepted);
        self.sent_in_window += other.sent_in_window;
        self.accepted_in_window += other.accepted_in_window;
        self.total_sent += other.total_sent;
        self.last_answer_in_window = self.last_answer_in_window.max(other.last_answer_in_window);
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}

/// Runs the load and returns what it measured, with the accepted ids.
pub async fn run(options: &LoadOptions) -> Result<LoadOutcome, BenchError> {
    prepare(options).await?.run().await
}

/// A load whose connections are open, ready to start.
pub struct Prepared {
    options: LoadOptions,
    template: Arc<Template>,
    connections: Vec<Connection>,
    clock: Clock,
    start: Instant,
}

/// Resolves the target and opens every connection, so that connecting is not measured;
/// the first event is due 5 ms after this returns.
pub async fn prepare(options: &LoadOptions) -> Result<Prepared, BenchError> {
    let template = Arc::new(Template::new(options).await?);
    let mut connections = Vec::with_capacity(options.connections.max(1));
    for _ in 0..options.connections.max(1) {
        let sender =
            Connection::open(template.addr)
                .await
                .map_err(|source| BenchError::Connect {
                    url: options.target.clone(),
                    source,
                })?;
        connections.push(Connection {
            addr: template.addr,
            sender: Some(sender),
        });
    }
    Ok(Prepared {
        options: options.clone(),
        template,
        connections,
        clock: Clock::now(),
        // A short delay lets every producer task reach its first wait before the first event.
        start: Instant::now() + Duration::from_millis(5),
    })
}

impl Prepared {
    /// When the measured window starts, in ns since the Unix epoch: events stamped earlier
    /// belong to the warm-up.
    pub fn window_start_ns(&self) -> u64 {
        self.clock.epoch_ns(self.start + self.options.warmup)
    }

    /// Runs the load and returns what it measured, with the accepted ids.
    pub async fn run(self) -> Result<LoadOutcome, BenchError> {
        let Prepared {
            options,
            template,
            connections: opened,
            clock,
            start,
        } = self;
        let options = &options;
        let connections = opened.len();
        let outcome = drive(options, &template, opened, clock, start).await;
        Ok(LoadOutcome {
            report: outcome.0.report(options, &template, connections, outcome.1),
            run: template.run.clone(),
            accepted: outcome.0.accepted,
            started: start,
            finished: outcome.2,
        })
    }
}

async fn drive(
    options: &LoadOptions,
    template: &Arc<Template>,
    opened: Vec<Connection>,
    clock: Clock,
    start: Instant,
) -> (Tally, Duration, Instant) {
    let live = Arc::new(Live::default());
    let window = (
        start + options.warmup,
        start + options.warmup + options.duration,
    );

    let progress = {
        let live = live.clone();
        let total = options.warmup + options.duration;
        let open = matches!(options.mode, Loop::Open { .. });
        let last = std::sync::Mutex::new((Duration::ZERO, 0u64));
        Progress::start(options.label.clone(), options.progress, move |elapsed| {
            let accepted = live.accepted.load(Ordering::Relaxed);
            let mut last = last.lock().unwrap();
            let rate = (accepted - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-3);
            *last = (elapsed, accepted);
            let queued = if open {
                let due = live.due.load(Ordering::Relaxed);
                format!(
                    " · queued {}",
                    due.saturating_sub(live.sent.load(Ordering::Relaxed))
                )
            } else {
                String::new()
            };
            format!(
                "{:>4.0}/{:.0} s · accepted {} ({} /s) · failed {}{queued}",
                elapsed.as_secs_f64(),
                total.as_secs_f64(),
                thousands(accepted as f64),
                thousands(rate),
                live.failed.load(Ordering::Relaxed),
            )
        })
    };

    let tally = match options.mode {
        Loop::Open { rate } => open_loop(template, opened, rate, start, window, clock, &live).await,
        Loop::Closed => closed_loop(template, opened, start, window, clock, &live).await,
    };
    drop(progress);
    let finished = tally.last_answer.unwrap_or(window.1);
    let span = tally
        .last_answer_in_window
        .map_or(options.duration, |last| last.max(window.1) - window.0);
    (tally, span, finished)
}

impl Tally {
    fn report(
        &self,
        options: &LoadOptions,
        template: &Template,
        connections: usize,
        span: Duration,
    ) -> IngestReport {
        IngestReport {
            target: options.target.clone(),
            mode: options.mode,
            connections,
            duration_s: options.duration.as_secs_f64(),
            warmup_s: options.warmup.as_secs_f64(),
            size: template.body.len(),
            sent: self.sent_in_window,
            accepted: self.accepted_in_window,
            failed: self.sent_in_window - self.accepted_in_window,
            accepted_per_s: self.accepted_in_window as f64 / span.as_secs_f64().max(1e-9),
            status: self.status.clone(),
            latency: Latency::of(&self.latency),
            total_sent: self.total_sent,
            total_accepted: self.accepted.len(),
        }
    }
}

/// When event `i` of an open loop at `rate` per second is due, after the start.
pub fn due_offset(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// How many events an open loop at `rate` sends in `length`.
pub fn scheduled_events(rate: f64, length: Duration) -> u64 {
    (rate * length.as_secs_f64()).round() as u64
}

async fn open_loop(
    template: &Arc<Template>,
    connections: Vec<Connection>,
    rate: f64,
    start: Instant,
    window: (Instant, Instant),
    clock: Clock,
    live: &Arc<Live>,
) -> Tally {
    let total = scheduled_events(rate, window.1 - start);
    let (due_tx, due_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    // Producers take due events in turn; the lock is held only while one waits for the next.
    let due_rx = Arc::new(Mutex::new(due_rx));
    let schedule = {
        let live = live.clone();
        std::thread::Builder::new()
            .name("bench-schedule".into())
            .spawn(move || {
                for i in 0..total {
                    let due = start + due_offset(i, rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    live.due.fetch_add(1, Ordering::Relaxed);
                    if due_tx.send((i, due)).is_err() {
                        break;
                    }
                }
            })
    };
    let mut producers = Vec::with_capacity(connections.len());
    for mut connection in connections {
        let (template, due_rx, live) = (template.clone(), due_rx.clone(), live.clone());
        producers.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let next = due_rx.lock().await.recv().await;
                let Some((seq, due)) = next else { break };
                live.sent.fetch_add(1, Ordering::Relaxed);
                let status = connection
                    .send(template.request(seq, clock.epoch_ns(due)))
                    .await;
                count(&live, status);
                tally.record(seq, status, due, window);
            }
            tally
        }));
    }
    let mut tally = Tally::new();
    for producer in producers {
        // A producer only ends by finishing its loop; a panic there is a bug worth showing.
        tally.merge(producer.await.expect("a producer task"));
    }
    if let Ok(schedule) = schedule {
        let _ = schedule.join();
    }
    tally
}

async fn closed_loop(
    template: &Arc<Template>,
    connections: Vec<Connection>,
    start: Instant,
    window: (Instant, Instant),
    clock: Clock,
    live: &Arc<Live>,
) -> Tally {
    let next_seq = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::with_capacity(connections.len());
    for mut connection in connections {
        let (template, next_seq, live) = (template.clone(), next_seq.clone(), live.clone());
        producers.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            tokio::time::sleep_until(start.into()).await;
            loop {
                let sent = Instant::now();
                if sent >= window.1 {
                    break;
                }
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                live.sent.fetch_add(1, Ordering::Relaxed);
                let status = connection
                    .send(template.request(seq, clock.epoch_ns(sent)))
                    .await;
                count(&live, status);
                tally.record(seq, status, sent, window);
            }
            tally
        }));
    }
    let mut tally = Tally::new();
    for producer in producers {
        tally.merge(producer.await.expect("a producer task"));
    }
    tally
}

fn count(live: &Live, status: u16) {
    if (200..300).contains(&status) {
        live.accepted.fetch_add(1, Ordering::Relaxed);
    } else {
        live.failed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_loop_schedule_is_evenly_spaced_from_the_start() {
        assert_eq!(due_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(due_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(due_offset(2500, 1000.0), Duration::from_millis(2500));
        assert_eq!(due_offset(3, 4.0), Duration::from_millis(750));
        assert_eq!(scheduled_events(1000.0, Duration::from_secs(12)), 12_000);
        assert_eq!(scheduled_events(250.0, Duration::from_millis(1500)), 375);
    }

    #[test]
    fn ids_carry_the_run_and_the_sequence_number() {
        let run = run_prefix();
        let id = format!("{run}-42");
        assert_eq!(parse_id(&id), Some((run.as_str(), 42)));
        assert_eq!(parse_id("no-number-here"), None);
        assert_ne!(run_prefix(), run_prefix(), "each run has its own prefix");
    }

    #[test]
    fn data_has_the_asked_size() {
        assert_eq!(json_data(256).len(), 256);
        assert_eq!(json_data(0), Bytes::from_static(br#"{"pad":""}"#));
        let parsed: serde_json::Value = serde_json::from_slice(&json_data(100)).unwrap();
        assert!(parsed["pad"].is_string());
    }

    #[test]
    fn the_clock_maps_instants_to_epoch_nanoseconds() {
        let clock = Clock::now();
        let later = clock.instant + Duration::from_millis(3);
        assert_eq!(clock.epoch_ns(later), clock.epoch_ns + 3_000_000);
        let earlier = clock.instant - Duration::from_millis(1);
        assert_eq!(clock.epoch_ns(earlier), clock.epoch_ns - 1_000_000);
    }

    #[test]
    fn only_the_window_is_counted_but_every_accepted_id_is_kept() {
        let now = Instant::now();
        let window = (now, now + Duration::from_secs(10));
        let mut t = Tally::new();
        t.record(0, 202, now - Duration::from_secs(1), window); // warm-up
        t.record(1, 202, now, window);
        t.record(2, 503, now, window);
        t.record(3, 0, now, window);
        assert_eq!(t.total_sent, 4);
        assert_eq!(t.sent_in_window, 3);
        assert_eq!(t.accepted_in_window, 1);
        assert_eq!(t.accepted.iter().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(t.status.line(), "error×1 202×1 503×1");
        assert_eq!(t.latency.len(), 1);
    }
}
