//! [`Cluster`]: the real Kubernetes API server that `e2e/services/up kube` runs (etcd and
//! kube-apiserver on loopback, no kubelet), driven with `kubectl` as a user would; and
//! [`Role`], one `weft controller`, `weft ingress` or `weft dispatcher` process pointed at it.
//!
//! A test finds the server through `WEFT_KUBECONFIG` (CI exports what `up kube` prints).
//! Without it the test skips, unless `WEFT_REQUIRE_BACKENDS=1`. `kubectl` is taken from
//! `WEFT_KUBECTL`, else from `bin/kubectl` beside the kubeconfig, else from `PATH`.
//!
//! With no kubelet, Pods never run and namespaces never finish terminating: the Weft roles
//! run as local processes, and each test works in a namespace of its own that it leaves
//! behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The Kubernetes API server under test.
#[derive(Clone, Debug)]
pub struct Cluster {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

/// What one `kubectl` run did.
#[derive(Debug)]
pub struct Kubectl {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (errors, including admission rejections).
    pub stderr: String,
}

impl Cluster {
    /// The cluster from `WEFT_KUBECONFIG`, or `None` (printing why) when it is unset and
    /// `WEFT_REQUIRE_BACKENDS` is not `1`.
    pub fn from_env() -> Option<Cluster> {
        let kubeconfig = PathBuf::from(crate::backend::server_from_env(
            "WEFT_KUBECONFIG",
            "the API server with `e2e/services/up kube`",
            "<the path it prints>",
        )?);
        let beside = kubeconfig
            .parent()
            .map(|dir| dir.join("bin/kubectl"))
            .filter(|p| p.is_file());
        let kubectl = std::env::var_os("WEFT_KUBECTL")
            .map(PathBuf::from)
            .or(beside)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        Some(Cluster {
            kubeconfig,
            kubectl,
        })
    }

    /// The kubeconfig the Weft roles are given.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl ARGS`, feeding `stdin` if given.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Kubectl {
        let mut command = Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.kubectl.display()));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .await
                .expect("write kubectl's stdin");
            drop(pipe);
        }
        let output: Output =
            tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60 s"))
                .expect("wait for kubectl");
        Kubectl {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `kubectl apply -f -` of `yaml`; panics with kubectl's message if it fails.
    pub async fn apply(&self, yaml: &str) {
        let out = self.kubectl(&["apply", "-f", "-"], Some(yaml)).await;
        assert!(out.ok, "kubectl apply failed: {}\n{yaml}", out.stderr);
    }

    /// `kubectl apply -f -` of `yaml`, returning what happened (for admission tests).
    pub async fn try_apply(&self, yaml: &str) -> Kubectl {
        self.kubectl(&["apply", "-f", "-"], Some(yaml)).await
    }

    /// Installs Weft's CRDs from `config/crds/` and waits until the API server serves them.
    pub async fn install_crds(&self) {
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crds");
        let crds = crds.to_string_lossy().into_owned();
        let out = self
            .kubectl(
                &["apply", "--server-side", "--force-conflicts", "-k", &crds],
                None,
            )
            .await;
        assert!(out.ok, "installing the CRDs failed: {}", out.stderr);
        let out = self
            .kubectl(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/brokers.eventing.knative.dev",
                    "crd/triggers.eventing.knative.dev",
                ],
                None,
            )
            .await;
        assert!(
            out.ok,
            "the CRDs did not become established: {}",
            out.stderr
        );
    }

    /// Kills the API server and etcd (`e2e/services/stop --kill kube`, like a crash; etcd
    /// keeps its data). The returned [`ApiOutage`] starts them again, on drop at the latest.
    pub async fn kill_api_server(&self) -> ApiOutage {
        let outage = ApiOutage { down: true };
        crate::backend::run_services(&["stop", "--kill", "kube"]).await;
        outage
    }

    /// Creates the namespace `name`.
    pub async fn create_namespace(&self, name: &str) {
        let out = self.kubectl(&["create", "namespace", name], None).await;
        assert!(out.ok, "creating namespace {name} failed: {}", out.stderr);
    }

    /// The object as JSON, or `None` if it does not exist.
    pub async fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let out = self
            .kubectl(&["get", kind, name, "-n", namespace, "-o", "json"], None)
            .await;
        if !out.ok {
            assert!(
                out.stderr.contains("NotFound") || out.stderr.contains("not found"),
                "kubectl get {kind} {namespace}/{name} failed: {}",
                out.stderr
            );
            return None;
        }
        Some(serde_json::from_str(&out.stdout).expect("kubectl prints JSON"))
    }

    /// `kubectl delete KIND NAME -n NAMESPACE --wait=false`.
    pub async fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let out = self
            .kubectl(
                &["delete", kind, name, "-n", namespace, "--wait=false"],
                None,
            )
            .await;
        assert!(
            out.ok,
            "kubectl delete {kind} {namespace}/{name} failed: {}",
            out.stderr
        );
    }

    /// Polls the object until `check` accepts it; panics after `timeout` with `what` and the
    /// object's last state.
    pub async fn wait_for(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let object = self.get(kind, namespace, name).await;
            if check(object.as_ref()) {
                return object;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} {namespace}/{name}: {what} within {timeout:?}; last seen:\n{}",
                object
                    .map(|o| serde_json::to_string_pretty(&o).unwrap_or_default())
                    .unwrap_or_else(|| "(absent)".into())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The API server killed by [`Cluster::kill_api_server`].
#[must_use = "the API server stays down until the outage is started (or dropped)"]
pub struct ApiOutage {
    down: bool,
}

impl ApiOutage {
    /// Starts the API server again (`e2e/services/start kube`) and returns once it is ready.
    pub async fn start(mut self) {
        self.down = false;
        crate::backend::run_services(&["start", "kube"]).await;
    }
}

impl Drop for ApiOutage {
    fn drop(&mut self) {
        if self.down {
            eprintln!("bringing the API server back up after a failed test");
            let _ = std::process::Command::new(crate::backend::services_script())
                .args(["start", "kube"])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// The `status` and `reason` of condition `type_` of `object`.
pub fn condition(object: &Value, type_: &str) -> Option<(String, String)> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Whether `object` exists and its condition `type_` has status `True`.
pub fn is_true(object: Option<&Value>, type_: &str) -> bool {
    object
        .and_then(|o| condition(o, type_))
        .is_some_and(|(status, _)| status == "True")
}

/// One Weft role (`controller`, `ingress` or `dispatcher`) as a local process against the
/// cluster; killed on drop, printing its log if the test is failing.
pub struct Role {
    name: String,
    dir: TempDir,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    /// Every line the process printed on stdout.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Role {
    /// Starts `weft ROLE ARGS` with the cluster's kubeconfig on `127.0.0.1:0` and waits
    /// until it is up: listening (ingress, dispatcher) or leading (controller).
    pub async fn start(cluster: &Cluster, role: &str, args: &[String]) -> Role {
        Self::start_until(cluster, role, args, "weft controller leading").await
    }

    /// Starts a controller that may not lead (another holds the lease): returns once it
    /// stands by as a candidate.
    pub async fn start_candidate(cluster: &Cluster, args: &[String]) -> Role {
        Self::start_until(cluster, "controller", args, "weft controller standing by").await
    }

    /// Whether a controller has printed that it leads.
    pub fn has_led(&self) -> bool {
        self.stdout.lock().is_ok_and(|lines| {
            lines
                .iter()
                .any(|l| l.starts_with("weft controller leading"))
        })
    }

    /// Starts `weft ROLE ARGS` and returns once it printed a line starting with `up`
    /// (`weft starting`: listening, before its channel is open).
    pub async fn start_until(cluster: &Cluster, role: &str, args: &[String], up: &str) -> Role {
        let bin = crate::weft::find_binary(crate::weft::Profile::Debug);
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-role-")
            .tempdir()
            .expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("weft.log")).expect("create the log");
        // Replicas serve the admin API on an address of their own; several run here at once.
        let admin: &[&str] = if role == "controller" {
            &[]
        } else {
            &["--admin-addr", "127.0.0.1:0"]
        };
        let mut child = Command::new(&bin)
            .arg(role)
            .arg("--addr")
            .arg("127.0.0.1:0")
            .args(admin)
            .args(args)
            .env("KUBECONFIG", cluster.kubeconfig())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut role = Role {
            name: role.to_string(),
            dir,
            child: None,
            addr: None,
            stdout: Arc::default(),
        };
        let stdout = role.stdout.clone();
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            // A controller says where its health and metrics are before it leads.
            let mut health = None;
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Ok(mut seen) = stdout.lock() {
                    seen.push(line.clone());
                }
                if let Some(addr) =
                    line.strip_prefix("weft controller serving /healthz and /metrics on http://")
                {
                    health = addr.trim().parse::<SocketAddr>().ok();
                }
                if let Some(addr) = line.strip_prefix("weft listening on http://") {
                    return Some(addr.trim().parse::<SocketAddr>().ok());
                }
                if line.starts_with(up) {
                    let addr = line
                        .split_once("http://")
                        .and_then(|(_, rest)| {
                            rest.split(|c: char| c == ';' || c.is_whitespace()).next()
                        })
                        .and_then(|addr| addr.parse::<SocketAddr>().ok());
                    return Some(addr.or(health));
                }
            }
            None
        })
        .await;
        match started {
            Ok(Some(addr)) => role.addr = addr,
            Ok(None) => panic!(
                "weft {} exited before it was up; log:\n{}",
                role.name,
                role.log()
            ),
            Err(_) => panic!(
                "weft {} was not up within 60 s; log:\n{}",
                role.name,
                role.log()
            ),
        }
        let stdout = role.stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut seen) = stdout.lock() {
                    seen.push(line);
                }
            }
        });
        role.child = Some(child);
        role
    }

    /// Where an ingress or dispatcher listens; a controller's health and metrics.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| panic!("weft {} does not listen", self.name))
    }

    /// `http://ADDR` of an ingress or dispatcher.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The identity a controller leads as, once it has led.
    pub fn led_as(&self) -> Option<String> {
        let lines = self.stdout.lock().ok()?;
        lines.iter().find_map(|l| {
            l.strip_prefix("weft controller leading as ")
                .map(|identity| identity.trim().to_string())
        })
    }

    /// Sends SIGTERM, as Kubernetes does to a pod it stops, and waits up to 30 s for the
    /// process to exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        match weft_bench::process::sigterm(&mut child, Duration::from_secs(30)).await {
            Some(status) => status.success(),
            None => panic!(
                "weft {} did not exit within 30 s of SIGTERM; log:\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub async fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9 weft");
        }
    }

    /// Waits until one line of the process's log holds every one of `parts` (fields are
    /// coloured, so match a message and a value, not `key=value`); panics after `timeout`.
    pub async fn wait_for_log(&self, parts: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log
                .lines()
                .any(|line| parts.iter().all(|p| line.contains(p)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "weft {} did not log {parts:?} within {timeout:?}; log:\n{log}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weft.log")).unwrap_or_default()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- weft {} log -----\n{}\n----- end of weft {} log -----",
                self.name,
                self.log(),
                self.name
            );
        }
    }
}
