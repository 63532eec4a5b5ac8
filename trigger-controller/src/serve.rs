//! One data-plane process: opens the channel, listens, and applies every snapshot a
//! desired-state source yields with a [`Reconciler`] running the process's [`Roles`].
//!
//! `weft up` serves with every role from a folder; `weft ingress` and `weft dispatcher`
//! serve one role each from the Kubernetes API.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::ChannelOptions;

use crate::ControllerError;
use crate::reconcile::{Reconciler, Roles};
use crate::state::StateSource;
use crate::status::{self, StatusBoard};

/// What a data-plane process needs to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The listen address (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// The channel URL.
    pub channel: String,
    /// The roles this process runs.
    pub roles: Roles,
    /// Data plane knobs.
    pub dataplane: DataPlaneOptions,
    /// Where the desired state comes from, for the log line once it is applied.
    pub desired_state: String,
}

/// Runs until `shutdown` completes or the source ends. Once the first snapshot is applied
/// it prints `weft listening on http://ADDR` on stdout and `/readyz` answers 200.
pub async fn serve(
    options: ServeOptions,
    mut source: impl StateSource + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let url = redact(&options.channel);
    let channel = weft_channels::open(&options.channel, ChannelOptions::default())
        .await
        .map_err(|source| ControllerError::Channel {
            url: url.clone(),
            source,
        })?;
    let dataplane = Arc::new(DataPlane::new(channel, options.dataplane.clone()));
    let board = Arc::new(StatusBoard::default());

    let listener =
        TcpListener::bind(&options.addr)
            .await
            .map_err(|source| ControllerError::Io {
                what: format!("cannot listen on {}", options.addr),
                source,
            })?;
    let local = listener
        .local_addr()
        .map_err(|source| ControllerError::Io {
            what: "cannot read the listen address".into(),
            source,
        })?;
    board.set_base_url(format!("http://{local}"));
    let routes = if options.roles.ingress {
        dataplane.router()
    } else {
        dataplane.health_router()
    };
    let app = routes.merge(status::router(board.clone(), dataplane.clone()));

    let mut reconciler = Reconciler::with_roles(dataplane.clone(), board.clone(), options.roles);
    let closing = dataplane.clone();
    let control = async move {
        let mut first = true;
        while let Some(desired) = source.next().await {
            reconciler.reconcile(&desired).await;
            if first {
                first = false;
                dataplane.set_ready(true);
                tracing::info!(addr = %local, channel = %url, desired = %options.desired_state, roles = ?options.roles, "weft is up");
                println!("weft listening on http://{local}");
            }
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let result = tokio::select! {
        served = server => served.map_err(|source| ControllerError::Io { what: "server failed".into(), source }),
        () = control => Ok(()),
    };
    // Save the latest cursors so a clean restart redelivers as little as possible.
    if let Err(e) = closing.channel().close().await {
        tracing::warn!(error = %e, "closing the channel failed");
    }
    result
}

/// The channel URL fit for logs and errors: a password in it becomes `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only a URL that cannot have a password refuses one; this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_in_the_channel_url_is_not_logged() {
        assert_eq!(
            redact("postgres://weft:s3cret@db:5432/weft?lease=PT10S"),
            "postgres://weft:***@db:5432/weft?lease=PT10S"
        );
        assert_eq!(redact("kafka://k:9092"), "kafka://k:9092");
        assert_eq!(redact("not a url"), "not a url");
    }
}
