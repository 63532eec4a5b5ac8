//! [`Sink`]: a subscriber for tests. It listens on `127.0.0.1:0`, records every request it
//! gets, answers from a script, and lets a test wait for what it expects without sleeping.
//!
//! ```no_run
//! # async fn demo() {
//! use weft_e2e::{Reply, Sink, secs};
//! let sink = Sink::builder()
//!     .replies("/flaky", [Reply::status(503), Reply::status(503)]) // then the default, 202
//!     .start()
//!     .await;
//! let url = sink.url("/flaky"); // goes into a Trigger's subscriber.uri
//! let attempts = sink.wait_for_path("/flaky", 3, secs(10)).await;
//! # }
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weft_config::Event;
use weft_config::event::http::{STRUCTURED_JSON, decode_one, encode_binary, encode_structured};

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request method (Weft always POSTs).
    pub method: Method,
    /// The request path, without the query.
    pub path: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The body, exactly as received.
    pub body: Bytes,
    /// The CloudEvent the request carried, decoded with the HTTP binding (binary or
    /// structured); `None` if it was not a valid event.
    pub event: Option<Event>,
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
}

impl Received {
    /// The decoded event; panics (failing the test) if the request did not carry one.
    pub fn event(&self) -> &Event {
        match &self.event {
            Some(e) => e,
            None => panic!(
                "{} {} did not carry a valid CloudEvent (headers {:?}, body {:?})",
                self.method, self.path, self.headers, self.body
            ),
        }
    }

    /// The event's id; panics if the request carried no event.
    pub fn id(&self) -> &str {
        self.event().id()
    }

    /// An extension attribute as a string, if present.
    pub fn ext(&self, name: &str) -> Option<String> {
        self.event()
            .extension(name)
            .map(|v| v.as_str().into_owned())
    }

    /// A header as a string, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    /// Held before answering, to make the sink slow.
    delay: Option<Duration>,
}

impl Reply {
    /// A response with this status and an empty body. Panics on a code outside 100..=999.
    pub fn status(code: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(code).expect("a valid status code"),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
        }
    }

    /// A 200 carrying `event` in binary mode: a reply event for the broker.
    pub fn event(event: &Event) -> Self {
        let mut headers = HeaderMap::new();
        let body = encode_binary(event, &mut headers);
        let mut reply = Reply::status(200).body(body);
        reply.headers.extend(
            headers
                .into_iter()
                .filter_map(|(name, value)| Some((name?, value))),
        );
        reply
    }

    /// A 200 carrying `event` in structured mode.
    pub fn structured_event(event: &Event) -> Self {
        Reply::status(200)
            .header("content-type", STRUCTURED_JSON)
            .body(encode_structured(event))
    }

    /// Changes the status, keeping headers and body (e.g. an event body with a 202).
    pub fn status_code(mut self, code: u16) -> Self {
        self.status = StatusCode::from_u16(code).expect("a valid status code");
        self
    }

    /// Adds a response header. Panics on an invalid name or value.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::try_from(name).expect("a valid header name"),
            HeaderValue::try_from(value).expect("a valid header value"),
        ));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// Computes a response from the request: for replies that depend on the event.
pub type Responder = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// How one path answers: queued replies first, then its responder if it has one.
#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    responder: Option<Responder>,
}

/// Requests currently being answered on one path, and the most ever at once.
#[derive(Clone, Copy, Debug, Default)]
struct InFlight {
    now: usize,
    max: usize,
}

struct Shared {
    /// Every request so far, in arrival order (empty when recording is off).
    received: Mutex<Vec<Received>>,
    /// Bumped on every arrival; waiters watch it instead of polling.
    arrivals: watch::Sender<u64>,
    routes: Mutex<HashMap<String, Route>>,
    default: Responder,
    /// Applied to every reply that has no delay of its own.
    delay: Option<Duration>,
    /// Off for benchmarks, where storing millions of requests would cost more than the
    /// thing measured.
    record: bool,
    /// In flight per path; the key `""` counts all paths together.
    in_flight: Mutex<HashMap<String, InFlight>>,
}

impl Shared {
    fn enter(&self, path: &str) {
        let mut map = self.in_flight.lock().unwrap();
        for key in ["", path] {
            let f = map.entry(key.to_owned()).or_default();
            f.now += 1;
            f.max = f.max.max(f.now);
        }
    }

    fn leave(&self, path: &str) {
        let mut map = self.in_flight.lock().unwrap();
        for key in ["", path] {
            if let Some(f) = map.get_mut(key) {
                f.now -= 1;
            }
        }
    }

    fn reply_for(&self, req: &Received) -> Reply {
        let mut routes = self.routes.lock().unwrap();
        if let Some(route) = routes.get_mut(&req.path) {
            if let Some(reply) = route.queue.pop_front() {
                return reply;
            }
            if let Some(responder) = route.responder.clone() {
                drop(routes);
                return responder(req);
            }
        }
        drop(routes);
        (self.default)(req)
    }
}

/// Leaves the in-flight count however the handler ends (including a dropped connection).
struct InFlightGuard<'a> {
    shared: &'a Shared,
    path: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.shared.leave(&self.path);
    }
}

/// Configures a [`Sink`] before it starts.
pub struct SinkBuilder {
    routes: HashMap<String, Route>,
    default: Responder,
    delay: Option<Duration>,
    record: bool,
    addr: SocketAddr,
}

impl SinkBuilder {
    /// Queues replies for `path`, used one per request in order; after them the path answers
    /// with its responder, else the default.
    pub fn replies(mut self, path: &str, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.routes
            .entry(path.into())
            .or_default()
            .queue
            .extend(replies);
        self
    }

    /// Answers requests to `path` (after its queued replies) with `reply`.
    pub fn always(self, path: &str, reply: Reply) -> Self {
        self.respond(path, move |_| reply.clone())
    }

    /// Answers requests to `path` (after its queued replies) with what `f` computes.
    pub fn respond(
        mut self,
        path: &str,
        f: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.routes.entry(path.into()).or_default().responder = Some(Arc::new(f));
        self
    }

    /// The reply for paths without a script; `202 Accepted` unless set.
    pub fn default_reply(mut self, reply: Reply) -> Self {
        self.default = Arc::new(move |_| reply.clone());
        self
    }

    /// Holds every reply that has no delay of its own for this long: a slow sink.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Counts requests without keeping them (for benchmarks); waiters then see nothing.
    pub fn without_recording(mut self) -> Self {
        self.record = false;
        self
    }

    /// Listens on this address instead of `127.0.0.1:0`: for a sink that comes up at a URL
    /// a trigger already points to.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Binds (`127.0.0.1:0` unless told otherwise) and starts serving.
    pub async fn start(self) -> Sink {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("bind {}: {e}", self.addr));
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            arrivals: watch::channel(0).0,
            routes: Mutex::new(self.routes),
            default: self.default,
            delay: self.delay,
            record: self.record,
            in_flight: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Serving only ends with an accept error on a loopback listener, which a test
            // cannot recover from anyway; the sink then simply stops answering.
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            addr,
            shared,
            server,
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    shared.enter(&path);
    let _guard = InFlightGuard {
        shared: &shared,
        path: path.clone(),
    };
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return status_response(StatusCode::BAD_REQUEST),
    };
    let event = decode_one(&parts.headers, body.clone()).ok();
    let received = Received {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        event,
        at,
    };
    let reply = shared.reply_for(&received);
    if shared.record {
        shared.received.lock().unwrap().push(received);
    }
    shared.arrivals.send_modify(|n| *n += 1);
    if let Some(delay) = reply.delay.or(shared.delay) {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    for (name, value) in reply.headers {
        response.headers_mut().append(name, value);
    }
    response
}

fn status_response(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// A recording HTTP sink on `127.0.0.1`; see the module docs. Stops serving on drop.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sink {
    /// A sink that answers `202 Accepted` to everything.
    pub async fn start() -> Sink {
        Sink::builder().start().await
    }

    /// Configures a sink.
    pub fn builder() -> SinkBuilder {
        SinkBuilder {
            routes: HashMap::new(),
            default: Arc::new(|_| Reply::status(202)),
            delay: None,
            record: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` on this sink, e.g. `url("/a")` → `http://127.0.0.1:PORT/a`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived so far (counted even without recording).
    pub fn count(&self) -> u64 {
        *self.shared.arrivals.borrow()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests to `path` so far, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        let all = self.shared.received.lock().unwrap();
        all.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// The most requests to `path` that were being answered at the same time.
    pub fn max_in_flight(&self, path: &str) -> usize {
        let map = self.shared.in_flight.lock().unwrap();
        map.get(path).map_or(0, |f| f.max)
    }

    /// The most requests, over all paths, that were being answered at the same time.
    pub fn max_in_flight_total(&self) -> usize {
        self.max_in_flight("")
    }

    /// Waits until `done` holds for the requests received so far (in arrival order), and
    /// returns them. `done` runs again after each arrival (arrivals in a burst are seen
    /// together), so it may keep state to work incrementally. Panics, listing what arrived,
    /// if it does not hold within `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        match self.try_wait_until(timeout, done).await {
            Some(all) => all,
            None => {
                let all = self.requests();
                panic!(
                    "sink: condition not met within {timeout:?}; {} requests arrived: {}",
                    all.len(),
                    summary(&all)
                );
            }
        }
    }

    /// Like [`wait_until`](Self::wait_until), but returns `None` on timeout instead of
    /// panicking, for tests that explain the failure themselves.
    pub async fn try_wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Option<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        let mut arrivals = self.shared.arrivals.subscribe();
        loop {
            // Mark the current value seen before looking, so an arrival after the check
            // wakes the wait below.
            arrivals.borrow_and_update();
            {
                let all = self.shared.received.lock().unwrap();
                if done(&all) {
                    return Some(all.clone());
                }
            }
            // The sender lives in `self.shared`, so `changed` cannot fail; only time out.
            if let Err(_) | Ok(Err(_)) = tokio::time::timeout_at(deadline, arrivals.changed()).await
            {
                return None;
            }
        }
    }

    /// Waits until at least `n` requests arrived in all, counting without recording (so it
    /// works for [`SinkBuilder::without_recording`]); returns whether they did in time.
    pub async fn wait_count(&self, n: u64, timeout: Duration) -> bool {
        let mut arrivals = self.shared.arrivals.subscribe();
        matches!(
            tokio::time::timeout(timeout, arrivals.wait_for(|c| *c >= n)).await,
            Ok(Ok(_))
        )
    }

    /// Waits until at least `n` requests arrived in all, and returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, |all| all.len() >= n).await
    }

    /// Waits until at least `n` requests to `path` arrived, and returns those.
    pub async fn wait_for_path(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, |all| {
            all.iter().filter(|r| r.path == path).count() >= n
        })
        .await
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
    }

    /// Waits until an event with each of `ids` has arrived, looking only at the new arrivals
    /// each time (so it stays cheap for many thousands), and returns the ids still missing
    /// when `timeout` ran out: none when every one arrived in time.
    pub async fn wait_for_ids(&self, ids: &HashSet<String>, timeout: Duration) -> HashSet<String> {
        let mut missing = ids.clone();
        let mut scanned = 0;
        self.try_wait_until(timeout, |all| {
            for event in all[scanned..].iter().filter_map(|r| r.event.as_ref()) {
                missing.remove(event.id());
            }
            scanned = all.len();
            missing.is_empty()
        })
        .await;
        missing
    }

    /// Waits until no request arrived for `quiet` in a row, and returns them all. Panics if
    /// requests keep coming for longer than `timeout`.
    pub async fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut arrivals = self.shared.arrivals.subscribe();
        arrivals.borrow_and_update();
        loop {
            match tokio::time::timeout(quiet, arrivals.changed()).await {
                Err(_) => return self.requests(),
                Ok(_) if Instant::now() >= deadline => {
                    panic!(
                        "sink: requests kept arriving for {timeout:?} ({} so far)",
                        self.count()
                    )
                }
                Ok(_) => {}
            }
        }
    }
}

/// One line per request, at most 20: for failure messages.
fn summary(all: &[Received]) -> String {
    let mut out = String::new();
    for r in all.iter().take(20) {
        let what = match &r.event {
            Some(e) => format!("id={} type={}", e.id(), e.ty()),
            None => format!("{} body bytes, not an event", r.body.len()),
        };
        out.push_str(&format!("\n  {} {} {what}", r.method, r.path));
    }
    if all.len() > 20 {
        out.push_str(&format!("\n  … and {} more", all.len() - 20));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Producer, event, ms, secs};

    #[tokio::test]
    async fn scripted_replies_come_first_then_the_default() {
        let sink = Sink::builder()
            .replies("/a", [Reply::status(503).body("down"), Reply::status(400)])
            .default_reply(Reply::status(204))
            .start()
            .await;
        let producer = Producer::new();
        let e = event("t").ext("color", "red").build();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(producer.send(&sink.url("/a"), &e).await.unwrap().status);
        }
        assert_eq!(statuses, [503, 400, 204]);
        let got = sink.wait_for_path("/a", 3, secs(5)).await;
        assert_eq!(got[0].event(), &e, "decoded with the HTTP binding");
        assert_eq!(got[2].ext("color").as_deref(), Some("red"));
        assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[tokio::test]
    async fn responders_see_the_request_and_replies_carry_events() {
        let sink = Sink::builder()
            .respond("/echo", |req| Reply::structured_event(req.event()))
            .start()
            .await;
        let e = event("t").build();
        let sent = Producer::new().send(&sink.url("/echo"), &e).await.unwrap();
        assert_eq!(sent.status, 200);
        assert_eq!(sent.header("content-type"), Some(STRUCTURED_JSON));
        let echoed = decode_one(&sent.headers, sent.body.into()).unwrap();
        assert_eq!(echoed, e);
    }

    #[tokio::test]
    async fn in_flight_requests_are_counted_per_path() {
        let sink = Sink::builder().delay(ms(200)).start().await;
        let producer = Producer::new();
        let e = event("t").build();
        let (a, b) = (sink.url("/a"), sink.url("/b"));
        let sends = [&a, &a, &a, &b].map(|url| producer.send(url, &e));
        for sent in futures::future::join_all(sends).await {
            assert_eq!(sent.unwrap().status, 202);
        }
        assert_eq!(sink.max_in_flight("/a"), 3);
        assert_eq!(sink.max_in_flight("/b"), 1);
        assert_eq!(sink.max_in_flight_total(), 4);
        assert_eq!(sink.count(), 4);
    }

    #[tokio::test]
    async fn waiters_wake_on_arrival_and_time_out_without_one() {
        let sink = Sink::start().await;
        assert!(
            sink.try_wait_until(ms(100), |all| !all.is_empty())
                .await
                .is_none()
        );
        let url = sink.url("/x");
        let send = tokio::spawn(async move {
            tokio::time::sleep(ms(50)).await;
            Producer::new()
                .send(&url, &event("t").build())
                .await
                .unwrap()
        });
        let got = sink.wait_for(1, secs(5)).await;
        assert_eq!(got.len(), 1);
        assert!(sink.wait_count(1, ms(10)).await);
        assert!(!sink.wait_count(2, ms(50)).await);
        let quiet_from = Instant::now();
        sink.wait_quiet(ms(100), secs(5)).await;
        assert!(quiet_from.elapsed() >= ms(100));
        send.await.unwrap();
    }
}
