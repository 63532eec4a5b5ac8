//! [`Weft`]: the `weft up` process under test, with its own temporary manifests folder and
//! data directory.
//!
//! The binary is `$WEFT_BIN` if set, else `target/<profile>/weft` next to the test
//! executable. Cargo does not build another package's binary for a test, so the test
//! command is `cargo build --bin weft && cargo test --workspace`.
//!
//! ```no_run
//! # async fn demo() {
//! use weft_e2e::{Weft, broker, trigger};
//! let mut weft = Weft::builder()
//!     .manifest("broker.yaml", broker("default"))
//!     .start()
//!     .await;
//! weft.write_manifest("t1.yaml", trigger("t1").subscriber("http://127.0.0.1:9/"));
//! weft.kill_9().await;
//! weft.restart().await; // same data dir, same port
//! # }
//! ```

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use weft_bench::admin::{BrokerStatus, TriggerStatus};
use weft_bench::process::{ADMIN, LISTENING, await_announcement};

/// How long a debug build may take to load manifests, open the channel and listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which build of the binary to look for next to the running executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `target/debug/weft` (tests).
    Debug,
    /// `target/dist/weft`, the fully optimised build (benchmarks).
    Dist,
}

/// Finds the `weft` binary: `$WEFT_BIN`, else `target/<profile>/weft` relative to this
/// executable (`target/<profile>/deps/<test>-<hash>`). Panics with the command to run if
/// it is absent.
pub(crate) fn find_binary(profile: Profile) -> PathBuf {
    if let Some(bin) = std::env::var_os("WEFT_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the path of the running executable");
    // target/<profile>/deps/<exe> → target
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent())
        .and_then(|profile_dir| profile_dir.parent())
        .map(Path::to_path_buf);
    let (dir, build) = match profile {
        Profile::Debug => ("debug", "cargo build --bin weft"),
        Profile::Dist => ("dist", "cargo build --profile dist --bin weft"),
    };
    let path = target.map(|t| t.join(dir).join("weft"));
    match path {
        Some(p) if p.is_file() => p,
        other => panic!(
            "the weft binary was not found (looked for {other:?}): run `{build}` first, \
             or set WEFT_BIN"
        ),
    }
}

/// The `weft` binary under test (debug build, or `$WEFT_BIN`), for running it other than
/// through [`Weft`] (e.g. a start that must fail).
pub fn binary() -> PathBuf {
    find_binary(Profile::Debug)
}

/// Configures a [`Weft`] before it starts.
pub struct WeftBuilder {
    bin: Option<PathBuf>,
    profile: Profile,
    manifests: Vec<(String, String)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    wait_triggers: bool,
    fd_limit: Option<u32>,
}

impl WeftBuilder {
    /// Writes a manifest file before starting, so it is loaded at startup.
    pub fn manifest(mut self, file: &str, yaml: impl Display) -> Self {
        self.manifests.push((file.into(), yaml.to_string()));
        self
    }

    /// Passes an extra argument to `weft up` (e.g. `--max-body-size`, then its value).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable of the `weft up` process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Uses `target/dist/weft`, the fully optimised build, instead of the debug build
    /// (benchmarks).
    pub fn dist(mut self) -> Self {
        self.profile = Profile::Dist;
        self
    }

    /// Uses this binary.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }

    /// Runs it with at most `n` open file descriptors (with `prlimit`), to test what
    /// happens when they run out.
    pub fn fd_limit(mut self, n: u32) -> Self {
        self.fd_limit = Some(n);
        self
    }

    /// Returns from [`start`](Self::start) as soon as it listens, without waiting for its
    /// triggers to report ready (for tests of not-ready triggers).
    pub fn no_wait_for_triggers(mut self) -> Self {
        self.wait_triggers = false;
        self
    }

    /// Starts `weft up` on `127.0.0.1:0` and waits until it listens and, unless told not to,
    /// until every trigger it knows reports ready. Panics (printing its log) if it does not.
    pub async fn start(self) -> Weft {
        let bin = self.bin.unwrap_or_else(|| find_binary(self.profile));
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-")
            .tempdir()
            .expect("a temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("create the manifests dir");
        for (file, yaml) in &self.manifests {
            std::fs::write(manifests.join(file), yaml).expect("write a manifest");
        }
        let mut weft = Weft {
            bin,
            stderr_log: dir.path().join("weft.log"),
            dir,
            args: self.args,
            env: self.env,
            child: None,
            addr: None,
            admin_addr: None,
            wait_triggers: self.wait_triggers,
            fd_limit: self.fd_limit,
            // Keeps no idle connection to weft, which would count against its
            // `--max-connections` in tests of the cap.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
        };
        weft.spawn().await;
        weft
    }
}

/// A running `weft up`; killed on drop, printing its log if the test is failing.
pub struct Weft {
    bin: PathBuf,
    /// Holds `manifests/`, `data/` and `weft.log`; removed on drop.
    dir: TempDir,
    /// Where the child's stderr (its logs) goes, appended across restarts.
    stderr_log: PathBuf,
    args: Vec<String>,
    /// Extra environment variables.
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Known after the first start; restarts reuse the port so producers keep their URL.
    addr: Option<SocketAddr>,
    /// Where the admin API is served; restarts reuse it too.
    admin_addr: Option<SocketAddr>,
    wait_triggers: bool,
    fd_limit: Option<u32>,
    /// For the admin API and readiness checks.
    http: reqwest::Client,
}

impl Drop for Weft {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGKILL; the kernel reaps nothing we need, and kill_on_drop is set as well.
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- weft log ({}) -----\n{}\n----- end of weft log -----",
                self.stderr_log.display(),
                self.log()
            );
        }
    }
}

impl Weft {
    /// Configures a `weft up` process.
    pub fn builder() -> WeftBuilder {
        WeftBuilder {
            bin: None,
            profile: Profile::Debug,
            manifests: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            wait_triggers: true,
            fd_limit: None,
        }
    }

    /// The path of the binary under test.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the address is known once started")
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The address of the admin API (`--admin-addr`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
            .expect("the admin address is known once started")
    }

    /// `http://ADMIN_HOST:PORT`: the admin API (`/_weft/v1/…`).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr())
    }

    /// The ingress URL of a broker.
    pub fn url(&self, namespace: &str, broker: &str) -> String {
        format!("{}/{namespace}/{broker}", self.base_url())
    }

    /// The folder `weft up -f` watches.
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// The `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the process wrote to stderr so far (its logs), across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Writes (or replaces) a manifest file in the watched folder. The file appears whole:
    /// it is written next to the folder and renamed in.
    pub fn write_manifest(&self, file: &str, yaml: impl Display) {
        let staging = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&staging, yaml.to_string()).expect("write a manifest");
        std::fs::rename(&staging, self.manifests_dir().join(file)).expect("move a manifest in");
    }

    /// Deletes a manifest file from the watched folder.
    pub fn remove_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests_dir().join(file)).expect("remove a manifest");
    }

    /// Whether the process is running (it may have exited on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGKILL (`kill -9`) and waits for the process to be gone.
    pub async fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9 weft");
        }
    }

    /// Starts the process again on the same data dir, manifests and port, killing it first
    /// if it still runs; waits as [`WeftBuilder::start`] does.
    pub async fn restart(&mut self) {
        self.kill_9().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("open the weft log");
        let addr = match self.addr {
            Some(a) => a.to_string(),
            None => "127.0.0.1:0".into(),
        };
        let admin_addr = match self.admin_addr {
            Some(a) => a.to_string(),
            None => "127.0.0.1:0".into(),
        };
        let mut cmd = match self.fd_limit {
            Some(n) => {
                let mut prlimit = Command::new("prlimit");
                prlimit.arg(format!("--nofile={n}:{n}")).arg(&self.bin);
                prlimit
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("up")
            .arg("-f")
            .arg(self.manifests_dir())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--addr")
            .arg(&addr)
            .arg("--admin-addr")
            .arg(&admin_addr)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        let announced = await_announcement(&mut child, LISTENING, START_TIMEOUT)
            .await
            .unwrap_or_else(|reason| panic!("weft up {reason}; log:\n{}", self.log()));
        let addr = announced.addr;
        if let Some(previous) = self.addr {
            assert_eq!(addr, previous, "a restart listens where it was told to");
        }
        let admin = announced.printed_addr(ADMIN).unwrap_or_else(|| {
            panic!(
                "weft up printed `{LISTENING}…` but no usable `{ADMIN}HOST:PORT` before it: {:?}",
                announced.printed
            )
        });
        self.addr = Some(addr);
        self.admin_addr = Some(admin);
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Waits for `/readyz` to answer 200 and, unless disabled, for every trigger to be ready.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let readyz = format!("{}/readyz", self.base_url());
        loop {
            let ok = match self.http.get(&readyz).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "weft /readyz did not answer 200 within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.wait_triggers {
            self.wait_for_triggers(Duration::from_secs(10), |ts| ts.iter().all(|t| t.ready))
                .await;
        }
    }

    /// `GET /_weft/v1/brokers` on the admin address.
    pub async fn get_brokers(&self) -> Vec<BrokerStatus> {
        self.admin("brokers").await
    }

    /// `GET /_weft/v1/triggers` on the admin address.
    pub async fn get_triggers(&self) -> Vec<TriggerStatus> {
        self.admin("triggers").await
    }

    async fn admin<T: serde::de::DeserializeOwned>(&self, what: &str) -> T {
        let url = format!("{}/_weft/v1/{what}", self.admin_url());
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(status.is_success(), "GET {url}: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e} in {body}"))
    }

    /// Asks the admin API until `done` holds for the trigger list, and returns that list.
    /// The status has no push channel, so this polls, every 50 ms. Panics after `timeout`.
    pub async fn wait_for_triggers(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[TriggerStatus]) -> bool,
    ) -> Vec<TriggerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let triggers = self.get_triggers().await;
            if done(&triggers) {
                return triggers;
            }
            assert!(
                Instant::now() < deadline,
                "triggers did not reach the expected state within {timeout:?}: {triggers:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until trigger `default/<name>` satisfies `done`, and returns its status.
    pub async fn wait_for_trigger(
        &self,
        name: &str,
        timeout: Duration,
        mut done: impl FnMut(&TriggerStatus) -> bool,
    ) -> TriggerStatus {
        let all = self
            .wait_for_triggers(timeout, |ts| {
                ts.iter()
                    .any(|t| t.namespace == "default" && t.name == name && done(t))
            })
            .await;
        all.into_iter()
            .find(|t| t.namespace == "default" && t.name == name)
            .expect("found by the wait")
    }

    /// Runs the `weft` CLI (e.g. `["get", "triggers", "--admin-addr", …]`) and returns its
    /// output.
    pub async fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let run = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the weft CLI finishes within 30 s")
            .expect("run the weft CLI")
    }
}
