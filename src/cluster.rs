//! The arguments of the Kubernetes roles: `weft controller`, `weft ingress` and
//! `weft dispatcher`. Each reads its kubeconfig the way kubectl does (`KUBECONFIG`, then
//! `~/.kube/config`, then the in-cluster service account).

use std::time::Duration;

use clap::Args;
use weft_broker::DataPlaneOptions;
use weft_controller::cluster::{BrokerClass, ControllerOptions, LeaseTiming, ReplicaOptions};

use crate::limits::LimitArgs;

/// Settings every Kubernetes role shares.
#[derive(Args)]
pub struct Shared {
    /// Channel URL: kafka://, nats:// or postgres:// (the same for every role).
    #[arg(long, env = "WEFT_CHANNEL")]
    channel: String,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "WEFT_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Also serve Brokers that name no `eventing.knative.dev/broker.class`.
    #[arg(long, env = "WEFT_DEFAULT_BROKER_CLASS")]
    default_broker_class: bool,
}

impl Shared {
    fn class(&self) -> BrokerClass {
        BrokerClass {
            default_class: self.default_broker_class,
        }
    }
}

/// `weft controller`.
#[derive(Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    shared: Shared,
    /// The ingress Service's URL; a Broker's address is <URL>/<namespace>/<name>.
    #[arg(long, env = "WEFT_INGRESS_URL")]
    ingress_url: Option<String>,
    /// Where /healthz and /readyz are served.
    #[arg(long, default_value = "127.0.0.1:8081", env = "WEFT_ADDR")]
    addr: String,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "weft-system")]
    lease_namespace: String,
    /// This replica's name in the Lease (default: the pod's name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a lease lasts without renewal before another replica takes over.
    #[arg(long, default_value_t = 15, env = "WEFT_LEASE_SECONDS")]
    lease_seconds: u64,
    /// How long a deleted Broker or Trigger keeps its log or cursor (and its finalizer)
    /// while that still holds undelivered events (ISO-8601, e.g. PT1H); the annotation
    /// weft.dev/purge=true deletes it sooner.
    #[arg(long, default_value = "PT1H", value_parser = crate::parse_duration, env = "WEFT_RETAIN_DELETED")]
    retain_deleted: Duration,
}

impl ControllerArgs {
    /// The controller's options.
    pub fn options(self) -> ControllerOptions {
        let ingress_url = self.ingress_url.unwrap_or_else(|| {
            format!(
                "http://weft-ingress.{}.svc.cluster.local",
                self.lease_namespace
            )
        });
        let identity = self.identity.unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "weft".into());
            format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        });
        let duration = Duration::from_secs(self.lease_seconds.max(2));
        ControllerOptions {
            channel: self.shared.channel.clone(),
            ingress_url,
            namespace: self.shared.namespace.clone().filter(|n| !n.is_empty()),
            class: self.shared.class(),
            lease_namespace: self.lease_namespace,
            identity,
            lease: LeaseTiming {
                duration,
                retry: (duration / 7).max(Duration::from_millis(500)),
            },
            addr: self.addr,
            retention: self.retain_deleted,
        }
    }
}

/// `weft ingress` and `weft dispatcher`.
#[derive(Args)]
pub struct ReplicaArgs {
    #[command(flatten)]
    shared: Shared,
    /// Listen address for events (ingress), health and metrics.
    #[arg(long, default_value = "127.0.0.1:8080", env = "WEFT_ADDR")]
    addr: String,
    /// Listen address for the admin API (`/_weft/v1/…`, unauthenticated: keep it on
    /// loopback or a private network).
    #[arg(long, default_value = crate::ADMIN_ADDR, env = "WEFT_ADMIN_ADDR")]
    admin_addr: String,
    /// Largest request body the ingress accepts, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, env = "WEFT_MAX_BODY_SIZE")]
    max_body_size: usize,
    /// Events in flight per trigger (a trigger's weft.dev/max-in-flight overrides it).
    #[arg(long, default_value_t = 256, env = "WEFT_MAX_IN_FLIGHT",
          value_parser = crate::delivery::max_in_flight())]
    max_in_flight: usize,
    /// The delivery of triggers whose trigger and broker set none (the dispatcher's).
    #[command(flatten)]
    default_delivery: crate::delivery::DefaultDelivery,
    #[command(flatten)]
    limits: LimitArgs,
}

impl ReplicaArgs {
    /// The replica's options.
    pub fn options(self) -> ReplicaOptions {
        ReplicaOptions {
            class: self.shared.class(),
            channel: self.shared.channel,
            addr: self.addr,
            admin_addr: self.admin_addr,
            namespace: self.shared.namespace.filter(|n| !n.is_empty()),
            dataplane: DataPlaneOptions {
                max_body_size: self.max_body_size,
                max_in_flight: self.max_in_flight,
                default_delivery: self.default_delivery.config(),
                limits: self.limits.into(),
            },
        }
    }
}
