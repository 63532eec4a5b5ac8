//! The systems under test as child processes: `weft up` on a channel, and the baselines
//! (`weft bench baseline-…`) started from the same binary, so each one's CPU time and
//! memory can be read from `/proc/<pid>` on its own, apart from the load generator's.
//!
//! What a child prints once it serves ([`LISTENING`], [`ADMIN`], [`await_announcement`]) and
//! stopping it as an operator does ([`sigterm`]) are shared with the e2e tests' `Weft`.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::BenchError;
use crate::admin::TriggerStatus;
use crate::report::{cpu_time, rss_bytes};

/// What `weft up` prints on stdout, followed by `HOST:PORT`, once it serves.
pub const LISTENING: &str = "weft listening on http://";

/// What `weft up` prints on stdout, followed by `HOST:PORT`, before [`LISTENING`]: where
/// the admin API is served.
pub const ADMIN: &str = "weft admin on http://";

/// How a channel named on the command line is passed to `weft up`, and what reports call
/// it: `sqlite` (the default, a file in the data dir), `memory` (`memory://`), or any
/// channel URL (`postgres://…`, `nats://…`), called by its scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The `--channel` argument; `None` for the default.
    pub url: Option<String>,
    /// The name in reports.
    pub label: String,
}

impl ChannelSpec {
    /// Reads `sqlite`, `memory` or a URL.
    pub fn parse(spec: &str) -> Self {
        match spec {
            "sqlite" | "" => ChannelSpec {
                url: None,
                label: "sqlite".into(),
            },
            "memory" => ChannelSpec {
                url: Some("memory://".into()),
                label: "memory".into(),
            },
            url => ChannelSpec {
                url: Some(url.to_owned()),
                label: url
                    .split_once("://")
                    .map_or(url, |(scheme, _)| scheme)
                    .to_owned(),
            },
        }
    }
}

/// A child process serving HTTP; killed (SIGKILL) on drop.
pub struct Server {
    child: Child,
    pid: u32,
    /// Where it serves, and what it printed before.
    announced: Announced,
    /// Where its stderr goes, to show when it fails.
    log: PathBuf,
}

impl Server {
    /// Starts `bin args…`, with stderr to `log`, and waits up to `timeout` for a stdout line
    /// `<marker>HOST:PORT`.
    pub async fn spawn(
        what: &str,
        bin: &Path,
        args: &[String],
        marker: &str,
        log: PathBuf,
        timeout: Duration,
    ) -> Result<Server, BenchError> {
        let fail = |reason: String| BenchError::Start {
            what: what.to_owned(),
            reason,
        };
        let stderr = std::fs::File::create(&log)
            .map_err(|e| fail(format!("create {}: {e}", log.display())))?;
        let mut child = Command::new(bin)
            .args(args)
            .env(
                "WEFT_LOG",
                std::env::var("WEFT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("run {}: {e}", bin.display())))?;
        let pid = child.id().ok_or_else(|| fail("it exited at once".into()))?;
        let announced = await_announcement(&mut child, marker, timeout)
            .await
            .map_err(|reason| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                fail(format!("{reason}; log:\n{log}"))
            })?;
        Ok(Server {
            child,
            pid,
            announced,
            log,
        })
    }

    /// The address it printed after `marker` before it served (e.g. the admin address).
    pub fn printed_addr(&self, marker: &str) -> Option<SocketAddr> {
        self.announced.printed_addr(marker)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.announced.addr
    }

    /// CPU time (user + system) it used so far.
    pub fn cpu(&self) -> Option<Duration> {
        cpu_time(self.pid)
    }

    /// Its resident memory, bytes.
    pub fn rss(&self) -> Option<u64> {
        rss_bytes(self.pid)
    }

    /// What it wrote on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it as an operator would (SIGTERM: `weft up` saves its cursors and gives its
    /// leases up, so the next run on the same channel starts clean), and SIGKILL after
    /// 10 s; waits for it to be gone.
    pub async fn stop(mut self) {
        if sigterm(&mut self.child, Duration::from_secs(10))
            .await
            .is_none()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// What a child printed on stdout up to the line that says where it serves.
#[derive(Clone, Debug)]
pub struct Announced {
    /// The address on that line, after the marker.
    pub addr: SocketAddr,
    /// The lines before it (e.g. `weft admin on http://…`).
    pub printed: Vec<String>,
}

impl Announced {
    /// The address printed after `marker` at the start of a line before the announcement.
    pub fn printed_addr(&self, marker: &str) -> Option<SocketAddr> {
        self.printed
            .iter()
            .find_map(|line| line.strip_prefix(marker))
            .and_then(|addr| addr.trim().parse().ok())
    }
}

/// Reads `child`'s piped stdout until a line `<marker>HOST:PORT`, for at most `timeout`,
/// then keeps reading it in a task so the child never blocks on a full pipe. The error says
/// what happened instead (the caller adds the child's log).
pub async fn await_announcement(
    child: &mut Child,
    marker: &str,
    timeout: Duration,
) -> Result<Announced, String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "its stdout is not piped".to_owned())?;
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let waited = tokio::time::timeout(timeout, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(marker) {
                return Ok(Some(rest.trim().to_owned()));
            }
            printed.push(line);
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let listening = match waited {
        Ok(Ok(Some(addr))) => addr,
        Ok(_) => {
            let status = child.wait().await;
            return Err(format!("exited ({status:?}) before printing `{marker}…`"));
        }
        Err(_) => return Err(format!("did not print `{marker}…` within {timeout:?}")),
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = listening
        .parse()
        .map_err(|e| format!("printed an unusable address {listening:?}: {e}"))?;
    Ok(Announced { addr, printed })
}

/// Sends SIGTERM to `child`, as Kubernetes or an operator stops a process, and waits up
/// to `within` for it to exit. `None` if it could not be signalled or is still running.
pub async fn sigterm(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let pid = child.id()?.to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().await;
    if !sent.is_ok_and(|status| status.success()) {
        return None;
    }
    tokio::time::timeout(within, child.wait()).await.ok()?.ok()
}

/// A baseline started from `bin` (normally the running `weft`): `weft bench <args…>`.
pub async fn start_baseline(bin: &Path, args: &[&str], dir: &Path) -> Result<Server, BenchError> {
    let mut all = vec!["bench".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all.extend(["--addr".into(), "127.0.0.1:0".into()]);
    let log = dir.join(format!(
        "{}.log",
        args.first().copied().unwrap_or("baseline")
    ));
    Server::spawn(
        args.first().copied().unwrap_or("baseline"),
        bin,
        &all,
        crate::baseline::LISTENING,
        log,
        Duration::from_secs(10),
    )
    .await
}

/// `weft up` on a channel, with manifests in a temporary folder.
pub struct WeftUp {
    server: Server,
    /// Holds `manifests/`, `data/` and the log; removed on drop.
    _dir: TempDir,
    http: reqwest::Client,
}

impl WeftUp {
    /// Writes `manifests`, starts `bin up` on `channel` with `extra` arguments, and waits
    /// until it serves and all its triggers are ready (at most `ready_timeout`).
    pub async fn start(
        bin: &Path,
        channel: &ChannelSpec,
        manifests: &[(String, String)],
        extra: &[String],
        ready_timeout: Duration,
    ) -> Result<WeftUp, BenchError> {
        let fail = |reason: String| BenchError::Start {
            what: "weft up".into(),
            reason,
        };
        let dir = tempfile::Builder::new()
            .prefix("weft-bench-")
            .tempdir()
            .map_err(|e| fail(format!("a temp dir: {e}")))?;
        let manifests_dir = dir.path().join("manifests");
        std::fs::create_dir(&manifests_dir).map_err(|e| fail(e.to_string()))?;
        for (file, yaml) in manifests {
            std::fs::write(manifests_dir.join(file), yaml)
                .map_err(|e| fail(format!("write {file}: {e}")))?;
        }
        let mut args: Vec<String> = vec![
            "up".into(),
            "-f".into(),
            manifests_dir.display().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
        ];
        if let Some(url) = &channel.url {
            // The suite owns what it creates on the server (give it a prefix of its own):
            // each start clears what an earlier scenario left, as on the embedded file.
            args.extend(["--channel".into(), url.clone(), "--collect-garbage".into()]);
        }
        args.extend(extra.iter().cloned());
        let server = Server::spawn(
            "weft up",
            bin,
            &args,
            LISTENING,
            dir.path().join("weft.log"),
            Duration::from_secs(30),
        )
        .await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| fail(format!("an HTTP client: {e}")))?;
        let weft = WeftUp {
            server,
            _dir: dir,
            http,
        };
        weft.wait_ready(ready_timeout).await?;
        Ok(weft)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let readyz = format!("{}/readyz", self.base_url());
        loop {
            let ready = match self.http.get(&readyz).send().await {
                Ok(r) if r.status().is_success() => match self.triggers().await {
                    Ok(ts) => ts.iter().all(|t| t.ready),
                    Err(_) => false,
                },
                _ => false,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("weft up becoming ready; log:\n{}", self.server.log()),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The ingress URL of a broker.
    pub fn broker_url(&self, namespace: &str, broker: &str) -> String {
        format!("{}/{namespace}/{broker}", self.base_url())
    }

    /// `GET /_weft/v1/triggers` on the admin address.
    pub async fn triggers(&self) -> Result<Vec<TriggerStatus>, BenchError> {
        let admin = self.server.printed_addr(ADMIN).map_or_else(
            || "(no admin address printed)".to_owned(),
            |a| a.to_string(),
        );
        let url = format!("http://{admin}/_weft/v1/triggers");
        let admin = |reason: String| BenchError::Admin {
            url: url.clone(),
            reason,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| admin(e.to_string()))?;
        if !response.status().is_success() {
            return Err(admin(format!("status {}", response.status())));
        }
        response.json().await.map_err(|e| admin(e.to_string()))
    }

    /// Stops it.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A manifest file name and its YAML.
pub fn manifest(file: &str, yaml: impl Display) -> (String, String) {
    (file.to_owned(), yaml.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            // Stdin stays open and empty: `read` waits on it, silent, until the child is
            // dropped (and killed).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run sh")
    }

    #[tokio::test]
    async fn the_announcement_gives_the_address_and_what_came_before() {
        let mut child = sh(&format!(
            "echo '{ADMIN}127.0.0.1:7001'; echo '{LISTENING}127.0.0.1:7000'; echo more; read _"
        ));
        let announced = await_announcement(&mut child, LISTENING, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(announced.addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            announced.printed_addr(ADMIN),
            Some("127.0.0.1:7001".parse().unwrap())
        );
        assert_eq!(announced.printed.len(), 1);
    }

    #[tokio::test]
    async fn a_child_that_exits_or_stays_silent_is_an_error_that_says_which() {
        let mut exits = sh("echo starting; exit 3");
        let error = await_announcement(&mut exits, LISTENING, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.starts_with("exited ("), "{error}");
        let mut silent = sh("read _");
        let error = await_announcement(&mut silent, LISTENING, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(error.starts_with("did not print"), "{error}");
        let mut garbled = sh(&format!("echo '{LISTENING}nowhere'"));
        let error = await_announcement(&mut garbled, LISTENING, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.contains("unusable address"), "{error}");
    }

    #[test]
    fn channels_are_named_by_their_scheme() {
        assert_eq!(ChannelSpec::parse("sqlite").url, None);
        assert_eq!(
            ChannelSpec::parse("memory").url.as_deref(),
            Some("memory://")
        );
        let pg = ChannelSpec::parse("postgres://u@127.0.0.1/weft");
        assert_eq!(pg.label, "postgres");
        assert_eq!(pg.url.as_deref(), Some("postgres://u@127.0.0.1/weft"));
        assert_eq!(ChannelSpec::parse("memory://").label, "memory");
    }
}
