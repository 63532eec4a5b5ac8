//! The real servers the backend tests run against (`e2e/services/up postgres nats kafka`
//! starts them): their URLs from the environment, names no other test uses on them, and
//! the small plumbing every server's tests share. One helper each, used by every backend.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use weft_channels::ChannelError;

/// A server some tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// PostgreSQL, `WEFT_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:15432/weft`).
    Postgres,
    /// NATS with JetStream, `WEFT_NATS_URL` (e.g. `nats://127.0.0.1:14222`).
    Nats,
    /// Kafka, `WEFT_KAFKA_URL` (e.g. `kafka://127.0.0.1:19092`).
    Kafka,
}

impl Server {
    /// The service's name for `e2e/services`.
    pub fn name(self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::Nats => "nats",
            Server::Kafka => "kafka",
        }
    }

    /// The environment variable that holds the server's URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Server::Postgres => "WEFT_POSTGRES_URL",
            Server::Nats => "WEFT_NATS_URL",
            Server::Kafka => "WEFT_KAFKA_URL",
        }
    }

    /// The server's URL from [`env_var`](Self::env_var). Unset, tests that need it skip
    /// (`None`), unless `WEFT_REQUIRE_BACKENDS=1` makes that a failure.
    pub fn url(self) -> Option<String> {
        let var = self.env_var();
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Some(url),
            _ if backends_required() => panic!(
                "WEFT_REQUIRE_BACKENDS=1 but {var} is not set: start the server with \
                 `e2e/services/up {name}` and export {var}=$(e2e/services/{name}.sh url)",
                name = self.name()
            ),
            _ => None,
        }
    }
}

/// Whether `WEFT_REQUIRE_BACKENDS=1` (CI sets it): a server that is absent fails the test
/// rather than skipping it.
pub fn backends_required() -> bool {
    std::env::var("WEFT_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// A name no other test uses, in this process or another running at the same time:
/// `prefix`, then the process id, the clock's nanoseconds and a counter, in hex.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}x{nanos:x}x{next:x}", std::process::id())
}

/// `url` with `params` (`a=1&b=2`) added to its query.
pub fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// The channel a backend's `open` returned, or a panic naming the URL and the cause.
pub fn opened<T>(url: &str, result: Result<T, ChannelError>) -> T {
    result.unwrap_or_else(|e| {
        panic!(
            "cannot open {url}: {e} ({:?})",
            std::error::Error::source(&e)
        )
    })
}

/// A multi-threaded runtime with two workers, for tests that drop a whole runtime (as a
/// crash would) and start another.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the future `cleanup` makes to its end on a thread and runtime of its own, and waits
/// for it: how a `Drop` (which may run inside a test's runtime, where it cannot block)
/// removes what a test created on a server.
pub fn clean_up<F>(cleanup: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(cleanup());
    });
    let _ = thread.join();
}
