//! [`Backend`]: the real servers a channel runs on (PostgreSQL, NATS JetStream, Kafka), as
//! `e2e/services/` starts them on loopback, and the way a test stops and starts one.
//!
//! A test finds its server's URL in the environment (`WEFT_POSTGRES_URL`, `WEFT_NATS_URL`,
//! `WEFT_KAFKA_URL`; CI exports what `e2e/services/up` prints). Without it the test skips,
//! unless `WEFT_REQUIRE_BACKENDS=1`, which makes a missing server a failure.
//!
//! ```no_run
//! # async fn demo() {
//! use weft_e2e::{Backend, Weft};
//! let Some(server) = Backend::Postgres.url() else { return }; // skipped, with a note
//! let names = weft_e2e::backend::unique_name();
//! let weft = Weft::builder()
//!     .arg("--channel")
//!     .arg(Backend::Postgres.channel_url(&server, &names))
//!     .start()
//!     .await;
//! let outage = Backend::Postgres.stop(false).await; // the server is down…
//! outage.start().await; // …and up again on the same data
//! # }
//! ```

use std::fmt::{self, Display, Formatter};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;

/// How long a `services` command may take: Kafka's start alone waits up to 180 s for its
/// JVM and then for metadata.
const SERVICES_TIMEOUT: Duration = Duration::from_secs(300);

/// A server a channel backend stores its logs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL: tables and row leases (`postgres://`).
    Postgres,
    /// NATS JetStream: a stream per broker, a durable consumer per trigger (`nats://`).
    Nats,
    /// Kafka: a topic per broker, a consumer group per trigger (`kafka://`).
    Kafka,
}

impl Display for Backend {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Backend {
    /// Every backend, in the order tests list them.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::Nats, Backend::Kafka];

    /// The service's name for `e2e/services` (`postgres`, `nats`, `kafka`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Nats => "nats",
            Backend::Kafka => "kafka",
        }
    }

    /// The environment variable that holds the server's URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Backend::Postgres => "WEFT_POSTGRES_URL",
            Backend::Nats => "WEFT_NATS_URL",
            Backend::Kafka => "WEFT_KAFKA_URL",
        }
    }

    /// The server's URL from the environment. Unset, it prints a note and returns `None`
    /// (the caller skips), unless `WEFT_REQUIRE_BACKENDS=1`, where it panics saying how
    /// to start the server.
    pub fn url(self) -> Option<String> {
        let name = self.name();
        server_from_env(
            self.env_var(),
            &format!("the server with `e2e/services/up {name}`"),
            &format!("$(e2e/services/{name}.sh url)"),
        )
    }

    /// The channel URL for one test on `server`:
    /// - names of its own where the backend has a prefix for them (Kafka topics and
    ///   groups, NATS streams), so that this test's processes never see another test's
    ///   logs. PostgreSQL has no such prefix short of a schema, which would need a client
    ///   to create: its tests share the database's schema, kept apart by a unique
    ///   namespace (`weft up` deletes leftover logs at start only on the embedded SQLite
    ///   file, or with `--collect-garbage`).
    /// - a 10 s takeover of a dead process's events (PostgreSQL `lease`, NATS `ack_wait`,
    ///   both 30 s by default; Kafka's session timeout is 10 s already), so that crash
    ///   tests finish well within a minute.
    ///
    /// `names` is a short unique word, e.g. from [`unique_name`].
    pub fn channel_url(self, server: &str, names: &str) -> String {
        let params = match self {
            Backend::Postgres => "lease=PT10S".to_owned(),
            Backend::Nats => format!("prefix={names}&ack_wait=10s"),
            Backend::Kafka => format!("prefix={names}"),
        };
        let separator = if server.contains('?') { '&' } else { '?' };
        format!("{server}{separator}{params}")
    }

    /// Whether `e2e/services/status` reports this server running.
    pub async fn is_running(self) -> bool {
        services(&["status", self.name()]).await.status.success()
    }

    /// Stops the server (`e2e/services/stop`), keeping its data; with `kill`, like a
    /// crash (SIGKILL; `pg_ctl -m immediate` for PostgreSQL). Returns once it is down.
    /// The returned [`Outage`] starts it again, on drop at the latest.
    pub async fn stop(self, kill: bool) -> Outage {
        let mut args = vec!["stop"];
        if kill {
            args.push("--kill");
        }
        args.push(self.name());
        // From here on the server may be down: the guard exists before the command runs,
        // so that a failing stop still brings it back.
        let outage = Outage {
            backend: self,
            down: true,
        };
        run_services(&args).await;
        outage
    }
}

/// A server stopped by [`Backend::stop`]. [`start`](Self::start) brings it back; if the
/// test ends first (a failed assertion), dropping it starts the server synchronously, so
/// that the tests after it find the server up.
#[must_use = "the server stays down until the outage is started (or dropped)"]
pub struct Outage {
    backend: Backend,
    down: bool,
}

impl Outage {
    /// Starts the server again on its data (`e2e/services/start`) and returns once it
    /// serves.
    pub async fn start(mut self) {
        self.down = false;
        run_services(&["start", self.backend.name()]).await;
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.down {
            return;
        }
        eprintln!("bringing {} back up after a failed test", self.backend);
        let status = std::process::Command::new(services_script())
            .args(["start", self.backend.name()])
            .stdout(Stdio::null())
            .status();
        if !matches!(&status, Ok(s) if s.success()) {
            eprintln!("e2e/services start {} failed: {status:?}", self.backend);
        }
    }
}

/// The value of `var`, which names a test server (its URL, its kubeconfig). Unset, it prints
/// a note and returns `None` (the caller skips), unless `WEFT_REQUIRE_BACKENDS=1`, where it
/// panics saying how to `start` the server and what to `export` as `var`.
pub(crate) fn server_from_env(var: &str, start: &str, export: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("WEFT_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") => panic!(
            "WEFT_REQUIRE_BACKENDS=1 but {var} is not set: start {start} and export \
             {var}={export}"
        ),
        _ => {
            println!("skipped: {var} is not set (start {start} and export {var})");
            None
        }
    }
}

/// A short word unique to this call (`e2e-` and 12 hex digits), for namespaces and name
/// prefixes: distinct across test processes and runs, and a DNS label.
pub fn unique_name() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ CALLS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64's finalizer: neighbouring inputs give unrelated outputs.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("e2e-{:012x}", x & 0xFFFF_FFFF_FFFF)
}

/// `e2e/services/services`, next to this crate.
pub(crate) fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("services/services")
}

/// Runs `e2e/services/services ARGS…` and returns its output.
async fn services(args: &[&str]) -> Output {
    let run = Command::new(services_script())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(SERVICES_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            panic!("e2e/services {args:?} did not finish within {SERVICES_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("run e2e/services {args:?}: {e}"))
}

/// Runs `e2e/services/services ARGS…` and panics, with its output, unless it succeeds.
pub(crate) async fn run_services(args: &[&str]) {
    let out = services(args).await;
    assert!(
        out.status.success(),
        "e2e/services {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_urls_add_their_parameters() {
        let names = "e2e-0123456789ab";
        assert_eq!(
            Backend::Kafka.channel_url("kafka://127.0.0.1:19092", names),
            "kafka://127.0.0.1:19092?prefix=e2e-0123456789ab"
        );
        assert_eq!(
            Backend::Nats.channel_url("nats://127.0.0.1:14222?timeout=5s", names),
            "nats://127.0.0.1:14222?timeout=5s&prefix=e2e-0123456789ab&ack_wait=10s"
        );
        assert_eq!(
            Backend::Postgres.channel_url("postgres://postgres@127.0.0.1:15432/weft", names),
            "postgres://postgres@127.0.0.1:15432/weft?lease=PT10S"
        );
    }

    #[test]
    fn unique_names_are_dns_labels_and_differ() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        for name in [a, b] {
            assert_eq!(name.len(), 16);
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            );
        }
    }
}
