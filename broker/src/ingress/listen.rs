//! Serving HTTP/1 on a listener with bounds on what one client can hold: a cap on open
//! connections, a time limit for a request's header, and a time limit for an idle
//! kept-alive connection. (The time limit for a request's body, and the limit on header
//! fields with its 431, are the ingress handler's: it can answer with a reason.)
//!
//! [`serve`] replaces `axum::serve` for every port a Weft process listens on. Each
//! connection runs hyper's HTTP/1 state machine under a small driver that knows, from
//! the bytes read and the requests served, which phase the connection is in:
//!
//! - **header**: waiting for a request's header, from its first byte (or from the accept,
//!   for a connection's first request). After `header_read_timeout` the client gets
//!   `408 Request Timeout` if it sent part of a header, and the connection is closed;
//! - **busy**: a request is being served; no time limit here (the handler bounds the body);
//! - **idle**: a response was sent and no byte of the next request arrived yet. After
//!   `idle_timeout` the connection is closed.
//!
//! At `max_connections` the listener stops accepting: new connections wait in the kernel's
//! accept backlog until one closes, and those already open are untouched. An accept error
//! such as `EMFILE` (no file descriptor left) pauses accepting briefly, with backoff, and is
//! logged at WARN at most once per [`WARN_EVERY`]. On shutdown the listener closes,
//! connections between requests close at once, and requests in progress finish before
//! [`serve`] returns.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How often an accept error is logged at most; the others are counted into the next line.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// The connection cap when the file-descriptor limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Extra header fields hyper parses beyond [`ClientLimits::max_headers`], so that a request
/// just over the limit reaches the ingress and gets a 431 that names the limit (hyper's own
/// 431, for requests beyond this, has no body).
const HEADER_HEADROOM: usize = 2;
/// The longest pause after an accept error.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long a connection that timed out may take to receive its 408 and close.
const LINGER: Duration = Duration::from_millis(500);

/// What one client may hold on a Weft port (runtime knobs, never from manifests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Connections served at once; at the cap new ones wait in the accept backlog. `None`:
    /// [`DEFAULT_MAX_CONNECTIONS`], or half the file-descriptor limit if that is lower.
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's header.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once the ingress reads it.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// The most header fields a request to the ingress may carry (each `ce-` extension of
    /// a binary-mode event is one).
    pub max_headers: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_headers: 1000,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and returns once every request in progress has finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ClientLimits,
    shutdown: impl Future<Output = ()>,
) {
    let cap = limits
        .max_connections
        .unwrap_or_else(default_max_connections)
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(cap));
    let (stop, stopping) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.max_headers(limits.max_headers.saturating_mul(HEADER_HEADROOM).max(100));
    let timeouts = Timeouts {
        header: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let mut errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait here: the kernel queues new connections meanwhile.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                errors.succeeded();
                stream
            }
            Err(error) => {
                let pause = errors.failed(&error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let connection = Connection {
            http: http.clone(),
            timeouts,
            stopping: stopping.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(stream, app.clone()));
    }
    drop(listener);
    stop.send_replace(true);
    // Every connection holds a slot until it ends: all slots back means all finished.
    let _ = slots.acquire_many(cap as u32).await;
}

/// [`DEFAULT_MAX_CONNECTIONS`], or half the file-descriptor limit if that is lower (the
/// rest is for the channel, the manifests and outgoing deliveries). The soft limit is
/// raised to the hard limit first, as Go's runtime does, up to 65,536.
pub fn default_max_connections() -> usize {
    match fd_limit() {
        Some(limit) => DEFAULT_MAX_CONNECTIONS.min((limit / 2).max(1) as usize),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

#[cfg(unix)]
fn fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let wanted = limit.maximum.unwrap_or(u64::MAX).min(65_536);
    if wanted > current {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return Some(wanted),
            Err(error) => {
                tracing::debug!(%error, current, wanted, "cannot raise the file-descriptor limit");
            }
        }
    }
    Some(current)
}

#[cfg(not(unix))]
fn fd_limit() -> Option<u64> {
    None
}

/// Accept errors since the last success: how long to pause, and when to log.
#[derive(Default)]
struct AcceptErrors {
    /// The pause after the next error; doubles up to [`MAX_ACCEPT_BACKOFF`].
    backoff: Option<Duration>,
    /// When an accept error was last logged.
    warned: Option<Instant>,
    /// Errors not logged since then.
    unlogged: u64,
}

impl AcceptErrors {
    fn succeeded(&mut self) {
        self.backoff = None;
    }

    /// Logs (at a bounded rate) and returns how long to pause before accepting again. A
    /// connection that failed before it was accepted costs no pause.
    fn failed(&mut self, error: &io::Error) -> Duration {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            return Duration::ZERO;
        }
        let pause = self.backoff.unwrap_or(Duration::from_millis(10));
        self.backoff = Some((pause * 2).min(MAX_ACCEPT_BACKOFF));
        let now = Instant::now();
        if self
            .warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            tracing::warn!(%error, retry_in = ?pause, errors_since_last_warning = self.unlogged, "cannot accept connections");
            self.warned = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        pause
    }
}

#[derive(Clone, Copy, Debug)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// Where a connection is between requests; see the module docs.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's header since this instant.
    Header(Instant),
    /// Serving a request.
    Busy,
    /// A response was sent at this instant; no byte of a next request has arrived.
    Idle(Instant),
}

impl Phase {
    fn deadline(self, timeouts: Timeouts) -> Option<Instant> {
        match self {
            Phase::Header(since) => Some(since + timeouts.header),
            Phase::Busy => None,
            Phase::Idle(since) => Some(since + timeouts.idle),
        }
    }
}

/// One accepted connection and what it needs to run.
struct Connection {
    http: http1::Builder,
    timeouts: Timeouts,
    stopping: watch::Receiver<bool>,
    /// Its place under the connection cap, given back when it is dropped.
    _slot: OwnedSemaphorePermit,
}

type Conn = http1::Connection<TokioIo<Watched>, Tracked>;

impl Connection {
    async fn run(mut self, stream: TcpStream, app: Router) {
        let phase = Arc::new(watch::Sender::new(Phase::Header(Instant::now())));
        let mut changes = phase.subscribe();
        let io = TokioIo::new(Watched {
            stream,
            phase: phase.clone(),
        });
        let mut conn = self.http.serve_connection(io, Tracked { app, phase });
        let mut stopping = false;
        loop {
            let deadline = changes.borrow_and_update().deadline(self.timeouts);
            tokio::select! {
                served = &mut conn => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = changes.changed() => {}
                () = sleep_until(deadline) => break,
                _ = self.stopping.wait_for(|stop| *stop), if !stopping => {
                    // A request in progress finishes (and its connection then closes);
                    // a connection between requests closes now.
                    if !matches!(*changes.borrow(), Phase::Busy) {
                        return;
                    }
                    stopping = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
        // A time limit passed while no request was being served.
        let waiting = *changes.borrow();
        if let Phase::Header(_) = waiting {
            request_timeout(conn, self.timeouts.header).await;
        }
    }
}

/// Sleeps until `deadline`, or forever.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Ends a connection whose request header did not arrive in time: with a 408 if the client
/// sent part of one, else silently (a client may open a connection and never use it).
async fn request_timeout(conn: Conn, timeout: Duration) {
    let parts = conn.into_parts();
    if parts.read_buf.is_empty() {
        return;
    }
    let mut stream = parts.io.into_inner().stream;
    let body = format!(
        "the request header did not arrive within {}\n",
        seconds(timeout)
    );
    // hyper sends no response when a header is late, so this one is written here, whole.
    let response = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client still sends, so that closing does not reset the
        // connection before the client has read the 408.
        let mut rest = [0u8; 4096];
        while stream.read(&mut rest).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A duration as a user would write it in a flag: `10s`, `1.5s`, `500ms`.
pub fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// The TCP stream, noting when the first byte of a request arrives on an idle connection.
struct Watched {
    stream: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && matches!(*self.phase.borrow(), Phase::Idle(_)) {
            self.phase.send_if_modified(|phase| match phase {
                Phase::Idle(_) => {
                    *phase = Phase::Header(Instant::now());
                    true
                }
                _ => false,
            });
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router as hyper calls it: marks the connection busy while a request is served and
/// idle once its response has been sent.
#[derive(Clone)]
struct Tracked {
    app: Router,
    phase: Arc<watch::Sender<Phase>>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.phase.send_replace(Phase::Busy);
        let phase = self.phase.clone();
        let served = self.app.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let response = served.await?;
            Ok(response.map(|body| Body::new(Sending { body, phase })))
        })
    }
}

/// A response body; once it is sent (or dropped), the connection is idle.
struct Sending {
    body: Body,
    phase: Arc<watch::Sender<Phase>>,
}

impl HttpBody for Sending {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.phase.send_replace(Phase::Idle(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_flags_are_written() {
        assert_eq!(seconds(Duration::from_secs(10)), "10s");
        assert_eq!(seconds(Duration::from_millis(500)), "500ms");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn accept_errors_back_off_and_a_reset_connection_does_not() {
        let mut errors = AcceptErrors::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(errors.failed(&reset), Duration::ZERO);
        let emfile = io::Error::other("Too many open files");
        let pauses: Vec<Duration> = (0..10).map(|_| errors.failed(&emfile)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[9], MAX_ACCEPT_BACKOFF);
        assert_eq!(errors.unlogged, 9, "one warning for ten errors");
        errors.succeeded();
        assert_eq!(errors.failed(&emfile), Duration::from_millis(10));
    }
}
