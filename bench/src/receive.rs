//! The receiver: an HTTP sink that counts events per path, finds duplicates by id, and
//! measures end-to-end latency from the sender's timestamp (extension `benchts`, ns since
//! the Unix epoch; sender and receiver read the same clock on one machine).
//!
//! Bench events (ids `<run>-<seq>`, see [`load`](super::load)) are tracked in a bitmap per
//! run, so millions of ids cost little; other ids are kept in a set. Each path answers with
//! its own status (202 unless told otherwise), so one receiver can play a healthy sink, a
//! failing one and a dead-letter sink at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use hdrhistogram::Histogram;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use tokio::task::JoinHandle;
use weft_config::event::http::decode_one;

use super::BenchError;
use super::load::{TIMESTAMP_EXT, parse_id};
use super::report::{Latency, Progress, SeqSet, histogram, micros, thousands};

/// What one path received.
struct PathCounts {
    requests: u64,
    duplicates: u64,
    /// Requests that carried no event id.
    invalid: u64,
    /// Bench events: sequence numbers seen, per run prefix.
    runs: HashMap<String, SeqSet>,
    /// Other ids seen.
    others: HashSet<String>,
    /// End-to-end latency of first arrivals that carried a timestamp, µs.
    latency: Histogram<u64>,
    /// When each run's latest new (non-duplicate) event arrived.
    last_new_of_run: HashMap<String, Instant>,
}

impl PathCounts {
    fn new() -> Self {
        PathCounts {
            requests: 0,
            duplicates: 0,
            invalid: 0,
            runs: HashMap::new(),
            others: HashSet::new(),
            latency: histogram(),
            last_new_of_run: HashMap::new(),
        }
    }

    fn unique(&self) -> u64 {
        self.runs.values().map(SeqSet::len).sum::<u64>() + self.others.len() as u64
    }

    /// Counts one arrival; `latency` is known when the event carried a timestamp.
    fn record(&mut self, id: Option<&str>, latency: Option<Duration>, at: Instant) {
        self.requests += 1;
        let Some(id) = id else {
            self.invalid += 1;
            return;
        };
        let (new, run) = match parse_id(id) {
            Some((run, seq)) => match self.runs.get_mut(run) {
                Some(set) => (set.insert(seq), Some(run)),
                None => (
                    self.runs.entry(run.to_owned()).or_default().insert(seq),
                    Some(run),
                ),
            },
            None => (self.others.insert(id.to_owned()), None),
        };
        if !new {
            self.duplicates += 1;
            return;
        }
        if let Some(run) = run {
            match self.last_new_of_run.get_mut(run) {
                Some(last) => *last = at,
                None => {
                    self.last_new_of_run.insert(run.to_owned(), at);
                }
            }
        }
        if let Some(latency) = latency {
            self.latency.saturating_record(micros(latency));
        }
    }
}

/// What a path, or the whole receiver, got.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Received {
    /// Requests, duplicates included.
    pub requests: u64,
    /// Distinct event ids.
    pub unique: u64,
    /// Requests whose id had been seen before on the same path.
    pub duplicates: u64,
    /// Requests without an event id.
    pub invalid: u64,
    /// From the sender's `benchts` to arrival, first arrivals only.
    pub latency: Latency,
}

/// A snapshot of everything received so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiveReport {
    /// All paths together.
    #[serde(flatten)]
    pub total: Received,
    /// Per request path.
    pub paths: BTreeMap<String, Received>,
}

impl ReceiveReport {
    /// The report as text for a person.
    pub fn text(&self) -> String {
        let mut out = format!(
            "received    {} requests, {} distinct events, {} duplicates, {} without an id\n\
             latency     {}\n",
            self.total.requests,
            self.total.unique,
            self.total.duplicates,
            self.total.invalid,
            self.total.latency.line()
        );
        if self.paths.len() > 1 {
            for (path, r) in &self.paths {
                out.push_str(&format!(
                    "  {path:<12} {} distinct, {} duplicates, p99 {:.2} ms\n",
                    r.unique, r.duplicates, r.latency.p99_ms
                ));
            }
        }
        out
    }
}

struct Shared {
    paths: Mutex<HashMap<String, PathCounts>>,
    /// Status per path; others get `default_status`.
    statuses: HashMap<String, StatusCode>,
    default_status: StatusCode,
    /// Requests so far, for the progress line.
    arrivals: AtomicU64,
    /// Latency is recorded only for events stamped at or after this (ns since the epoch):
    /// the warm-up is left out.
    measure_from_ns: AtomicU64,
}

/// Configures a [`Receiver`].
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    /// Where to listen; port 0 picks one.
    pub addr: SocketAddr,
    /// The answer of paths without their own.
    pub status: StatusCode,
    /// Paths with their own answer, e.g. `/fail` → 503.
    pub statuses: HashMap<String, StatusCode>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            status: StatusCode::ACCEPTED,
            statuses: HashMap::new(),
        }
    }
}

/// A running receiver; stops serving on drop.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Binds and starts serving.
    pub async fn start(options: ReceiverOptions) -> Result<Receiver, BenchError> {
        let bind = |source| BenchError::Bind {
            addr: options.addr.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(Shared {
            paths: Mutex::new(HashMap::new()),
            statuses: options.statuses,
            default_status: options.status,
            arrivals: AtomicU64::new(0),
            measure_from_ns: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Serving ends only on an accept error, after which the receiver stops answering
            // and the run reports the events as lost.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            addr,
            shared,
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests so far, all paths.
    pub fn requests(&self) -> u64 {
        self.shared.arrivals.load(Ordering::Relaxed)
    }

    /// The sequence numbers of run `run` that arrived on `path`.
    pub fn seen(&self, path: &str, run: &str) -> SeqSet {
        let paths = self.shared.paths.lock().unwrap();
        paths
            .get(path)
            .and_then(|p| p.runs.get(run))
            .cloned()
            .unwrap_or_default()
    }

    /// How many distinct events of `run` arrived on `path`.
    pub fn unique_of_run(&self, path: &str, run: &str) -> u64 {
        let paths = self.shared.paths.lock().unwrap();
        paths
            .get(path)
            .and_then(|p| p.runs.get(run))
            .map_or(0, SeqSet::len)
    }

    /// When the latest new event of `run` arrived on `path`. Events of an earlier run
    /// (delivered again after that run's process was killed) do not count.
    pub fn last_new_of_run(&self, path: &str, run: &str) -> Option<Instant> {
        let paths = self.shared.paths.lock().unwrap();
        paths
            .get(path)
            .and_then(|p| p.last_new_of_run.get(run).copied())
    }

    /// Everything received so far.
    pub fn report(&self) -> ReceiveReport {
        let paths = self.shared.paths.lock().unwrap();
        let mut total = Received::default();
        let mut latency = histogram();
        let mut per_path = BTreeMap::new();
        for (path, p) in paths.iter() {
            let r = Received {
                requests: p.requests,
                unique: p.unique(),
                duplicates: p.duplicates,
                invalid: p.invalid,
                latency: Latency::of(&p.latency),
            };
            total.requests += r.requests;
            total.unique += r.unique;
            total.duplicates += r.duplicates;
            total.invalid += r.invalid;
            // Same bounds on both sides: adding cannot fail.
            latency.add(&p.latency).expect("same bounds");
            per_path.insert(path.clone(), r);
        }
        total.latency = Latency::of(&latency);
        ReceiveReport {
            total,
            paths: per_path,
        }
    }

    /// Records latency only for events stamped at or after `epoch_ns` (ns since the Unix
    /// epoch): see [`Prepared::window_start_ns`](super::load::Prepared::window_start_ns).
    pub fn measure_from(&self, epoch_ns: u64) {
        self.shared
            .measure_from_ns
            .store(epoch_ns, Ordering::Relaxed);
    }

    /// The end-to-end latency over these paths together.
    pub fn latency_of(&self, paths: &[&str]) -> Latency {
        let all = self.shared.paths.lock().unwrap();
        let mut latency = histogram();
        for path in paths {
            if let Some(p) = all.get(*path) {
                // Same bounds on both sides: adding cannot fail.
                latency.add(&p.latency).expect("same bounds");
            }
        }
        Latency::of(&latency)
    }

    /// Forgets everything received, between runs that share a receiver.
    pub fn reset(&self) {
        self.shared.paths.lock().unwrap().clear();
        self.shared.arrivals.store(0, Ordering::Relaxed);
    }

    /// Serves until `stop` completes (or `duration` passes), showing progress, and returns
    /// what arrived.
    pub async fn run_until(
        &self,
        stop: impl Future<Output = ()>,
        duration: Option<Duration>,
        progress: bool,
    ) -> ReceiveReport {
        let shared = self.shared.clone();
        let last = Mutex::new((Duration::ZERO, 0u64));
        let display = Progress::start("receive".into(), progress, move |elapsed| {
            let n = shared.arrivals.load(Ordering::Relaxed);
            let mut last = last.lock().unwrap();
            let rate = (n - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-3);
            *last = (elapsed, n);
            format!(
                "{:>4.0} s · {} requests ({} /s)",
                elapsed.as_secs_f64(),
                thousands(n as f64),
                thousands(rate)
            )
        });
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = stop => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            None => stop.await,
        }
        drop(display);
        self.report()
    }
}

/// The sender timestamp of a request: `ce-benchts` in binary mode, else the extension of a
/// structured event.
fn timestamp_and_id(headers: &HeaderMap, body: axum::body::Bytes) -> (Option<String>, Option<u64>) {
    if let Some(id) = headers.get("ce-id").and_then(|v| v.to_str().ok()) {
        let ts = headers
            .get("ce-benchts")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return (Some(id.to_owned()), ts);
    }
    match decode_one(headers, body) {
        Ok(event) => {
            let ts = event
                .extension(TIMESTAMP_EXT)
                .and_then(|v| v.as_str().parse().ok());
            (Some(event.id().to_owned()), ts)
        }
        Err(_) => (None, None),
    }
}

fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let now_ns = epoch_ns();
    let (parts, body) = request.into_parts();
    let status = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => {
            let (id, ts) = timestamp_and_id(&parts.headers, body);
            let from = shared.measure_from_ns.load(Ordering::Relaxed);
            let latency = ts
                .filter(|sent| *sent >= from)
                .map(|sent| Duration::from_nanos(now_ns.saturating_sub(sent)));
            let path = parts.uri.path();
            let mut paths = shared.paths.lock().unwrap();
            let counts = match paths.get_mut(path) {
                Some(c) => c,
                None => paths.entry(path.to_owned()).or_insert_with(PathCounts::new),
            };
            counts.record(id.as_deref(), latency, at);
            drop(paths);
            shared
                .statuses
                .get(path)
                .copied()
                .unwrap_or(shared.default_status)
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    shared.arrivals.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_per_path_by_id() {
        let mut p = PathCounts::new();
        let now = Instant::now();
        p.record(Some("wbA-1"), Some(Duration::from_millis(2)), now);
        p.record(Some("wbA-2"), None, now);
        p.record(Some("wbA-1"), Some(Duration::from_millis(9)), now);
        p.record(Some("wbB-1"), None, now);
        p.record(Some("not-a-bench-id"), None, now);
        p.record(Some("not-a-bench-id"), None, now);
        p.record(None, None, now);
        assert_eq!(p.requests, 7);
        assert_eq!(p.unique(), 4);
        assert_eq!(p.duplicates, 2);
        assert_eq!(p.invalid, 1);
        assert_eq!(p.latency.len(), 1, "only first arrivals with a timestamp");
        assert_eq!(p.runs["wbA"].iter().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn binary_and_structured_events_give_their_id_and_timestamp() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-id", "wbX-7".parse().unwrap());
        headers.insert("ce-benchts", "123".parse().unwrap());
        assert_eq!(
            timestamp_and_id(&headers, Default::default()),
            (Some("wbX-7".into()), Some(123))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/cloudevents+json".parse().unwrap(),
        );
        let body = r#"{"specversion":"1.0","id":"wbX-8","source":"/s","type":"t","benchts":"456"}"#;
        assert_eq!(
            timestamp_and_id(&headers, body.into()),
            (Some("wbX-8".into()), Some(456))
        );
        assert_eq!(
            timestamp_and_id(&HeaderMap::new(), "junk".into()),
            (None, None)
        );
    }
}
