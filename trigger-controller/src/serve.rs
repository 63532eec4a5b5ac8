//! One data-plane process: listens, opens the channel, and applies every snapshot a
//! desired-state source yields with a [`Reconciler`] running the process's [`Roles`].
//!
//! `weft up` serves with every role from a folder; `weft ingress` and `weft dispatcher`
//! serve one role each from the Kubernetes API. Those replicas may start before their
//! Kafka, NATS or PostgreSQL: they listen at once (`/healthz` 200, everything else 503)
//! and open the channel with backoff, rather than exit and crash-loop.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;
use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::{Channel, ChannelError, ChannelOptions};
use weft_config::redact::Secrets;

use crate::ControllerError;
use crate::reconcile::{Reconciler, Roles};
use crate::state::StateSource;
use crate::status::PurgeRequest;
use crate::status::{self, StatusBoard};

/// What a data-plane process needs to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The listen address (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Where the admin API (`/_weft/v1/…`) is served, apart from the ingress; loopback by
    /// default, since it is unauthenticated.
    pub admin_addr: String,
    /// The channel URL.
    pub channel: String,
    /// The roles this process runs.
    pub roles: Roles,
    /// Data plane knobs.
    pub dataplane: DataPlaneOptions,
    /// Where the desired state comes from, for the log line once it is applied.
    pub desired_state: String,
    /// Retry opening the channel while its server cannot be reached (replicas), instead
    /// of failing at once (`weft up`).
    pub wait_for_channel: bool,
    /// How long storage that holds events outlives its deleted object (with
    /// `roles.manage_storage`).
    pub retention: Duration,
}

/// Runs until `shutdown` completes or the source ends. Once the first snapshot is applied
/// it prints `weft admin on http://ADMIN_ADDR`, then `weft listening on http://ADDR` on
/// stdout and `/readyz` answers 200; a replica that waits for its channel prints
/// `weft starting on http://ADDR; …` first. The admin address serves the admin API with
/// `/healthz`, `/readyz` and `/metrics`; the ingress address answers 404 under `/_weft/`.
pub async fn serve(
    options: ServeOptions,
    mut source: impl StateSource + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let url = weft_channels::redact(&options.channel);
    let stopping = stop_signal(shutdown);
    let listener = bind(&options.addr).await?;
    let local = local_addr(&listener)?;
    let admin = bind(&options.admin_addr).await?;
    let admin_local = local_addr(&admin)?;
    source.set_ingress_url(&ingress_url(local));
    if options.wait_for_channel {
        println!("weft starting on http://{local}; opening the channel");
    }
    let Some((channel, listener)) =
        open_while_listening(listener, &options, stopped(stopping.clone())).await?
    else {
        return Ok(()); // shut down before the channel opened
    };
    let dataplane = Arc::new(DataPlane::new(channel, options.dataplane.clone()));
    let board = Arc::new(StatusBoard::default());
    board.set_base_url(format!("http://{local}"));
    let routes = if options.roles.ingress {
        dataplane.router()
    } else {
        dataplane.health_router()
    };
    let (purges, mut purge_requests) = tokio::sync::mpsc::channel(8);
    let app = routes.merge(status::not_on_ingress());
    let admin_app =
        dataplane
            .health_router()
            .merge(status::router(board.clone(), dataplane.clone(), purges));
    let admin_server =
        axum::serve(admin, admin_app).with_graceful_shutdown(stopped(stopping.clone()));
    tokio::spawn(async move {
        if let Err(error) = admin_server.await {
            tracing::error!(%error, "the admin API server failed");
        }
    });

    let mut reconciler = Reconciler::with_roles(dataplane.clone(), board.clone(), options.roles)
        .retain_deleted_for(options.retention);
    let closing = dataplane.clone();
    let control = async move {
        let mut first = true;
        loop {
            // Retained storage is looked at when its grace period ends.
            let expiry = reconciler.next_expiry();
            let expired = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                desired = source.next() => {
                    let Some(desired) = desired else { break };
                    reconciler.reconcile(&desired).await;
                    if first {
                        first = false;
                        dataplane.set_ready(true);
                        tracing::info!(addr = %local, admin_addr = %admin_local, channel = %url, desired = %options.desired_state, roles = ?options.roles, "weft is up");
                        println!("weft admin on http://{admin_local}");
                        println!("weft listening on http://{local}");
                    }
                }
                () = expired => reconciler.expire().await,
                Some(request) = purge_requests.recv() => {
                    let request: PurgeRequest = request;
                    let answer = reconciler.purge(request.kind, &request.key).await;
                    let _ = request.reply.send(answer);
                }
            }
        }
    };
    let limits = options.dataplane.limits.clone();
    let server = weft_broker::ingress::listen::serve(listener, app, &limits, stopped(stopping));
    let result = tokio::select! {
        () = server => Ok(()),
        () = control => Ok(()),
    };
    // Save the latest cursors so a clean restart redelivers as little as possible.
    if let Err(e) = closing.channel().close().await {
        tracing::warn!(error = %e, "closing the channel failed");
    }
    result
}

/// Turns `shutdown` into a flag several waiters can watch with [`stopped`].
pub(crate) fn stop_signal(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> watch::Receiver<bool> {
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop.send_replace(true);
    });
    stopping
}

/// Completes once `stopping` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

pub(crate) async fn bind(addr: &str) -> Result<TcpListener, ControllerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Io {
            what: format!("cannot listen on {addr}"),
            source,
        })
}

/// The base URL this process's own deliveries reach its ingress at: the listen address,
/// with a wildcard (`0.0.0.0`, `::`) replaced by loopback.
fn ingress_url(local: SocketAddr) -> Url {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}", SocketAddr::new(ip, local.port()));
    // An IP address and a port always make a valid http URL.
    Url::parse(&text).expect("a socket address is a valid URL host")
}

pub(crate) fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ControllerError> {
    listener.local_addr().map_err(|source| ControllerError::Io {
        what: "cannot read the listen address".into(),
        source,
    })
}

/// Opens the channel while a stand-in server answers on `listener`: `/healthz` 200 (the
/// process is alive), everything else 503. Returns the channel and the listener for the
/// real routes, or `None` if `stop` completed first.
async fn open_while_listening(
    listener: TcpListener,
    options: &ServeOptions,
    stop: impl Future<Output = ()>,
) -> Result<Option<(Arc<dyn Channel>, TcpListener)>, ControllerError> {
    let share = |source| ControllerError::Io {
        what: "cannot share the listener".into(),
        source,
    };
    let socket = listener.into_std().map_err(share)?;
    let early = TcpListener::from_std(socket.try_clone().map_err(share)?).map_err(share)?;
    let (opened, opening) = tokio::sync::oneshot::channel::<()>();
    let starting = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::SERVICE_UNAVAILABLE, "opening the channel\n") });
    let early = tokio::spawn(
        axum::serve(early, starting)
            .with_graceful_shutdown(async {
                let _ = opening.await;
            })
            .into_future(),
    );
    let channel = tokio::select! {
        channel = open_channel(&options.channel, options.wait_for_channel) => channel,
        () = stop => Ok(None),
    };
    let _ = opened.send(());
    // Requests already taken finish; connections queued meanwhile go to the real routes.
    if tokio::time::timeout(Duration::from_secs(5), early)
        .await
        .is_err()
    {
        tracing::warn!("the stand-in server did not stop within 5 s");
    }
    let Some(channel) = channel? else {
        return Ok(None);
    };
    let listener = TcpListener::from_std(socket).map_err(share)?;
    Ok(Some((channel, listener)))
}

/// Opens the channel at `url`. With `wait`, a server that cannot be reached (or a store
/// that cannot be opened yet) is retried with backoff up to 30 s, logging each failure;
/// a URL that can never work fails at once.
pub(crate) async fn open_channel(
    url: &str,
    wait: bool,
) -> Result<Option<Arc<dyn Channel>>, ControllerError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match weft_channels::open(url, ChannelOptions::default()).await {
            Ok(channel) => return Ok(Some(channel)),
            Err(error @ (ChannelError::Open { .. } | ChannelError::Unavailable { .. })) if wait => {
                let chain = Secrets::of(url).scrub(&error.describe()).into_owned();
                tracing::warn!(channel = %weft_channels::redact(url), error = %chain, retry_in = ?backoff, "cannot open the channel; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(source) => {
                return Err(ControllerError::Channel(source));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_url_replaces_a_wildcard_address_with_loopback() {
        let url = |addr: &str| ingress_url(addr.parse().unwrap()).to_string();
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000/");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3/");
    }
}
