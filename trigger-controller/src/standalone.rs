//! `weft up`: every role in one process, desired state from a folder of manifests, the
//! embedded SQLite channel by default.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use weft_broker::{DataPlane, DataPlaneOptions};
use weft_channels::ChannelOptions;

use crate::ControllerError;
use crate::reconcile::Reconciler;
use crate::state::{FolderSource, StateSource};
use crate::status::{self, StatusBoard};

/// What `weft up` needs to run.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    /// The manifest file or folder to watch.
    pub manifests: PathBuf,
    /// Where the embedded channel keeps its file.
    pub data_dir: PathBuf,
    /// The listen address (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// The channel URL; `None` means `sqlite://<data_dir>/weft.db`.
    pub channel: Option<String>,
    /// Data plane knobs.
    pub dataplane: DataPlaneOptions,
}

/// Runs until `shutdown` completes. Once the manifests are applied it prints
/// `weft listening on http://ADDR` on stdout.
pub async fn run(
    options: StandaloneOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let url = match &options.channel {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&options.data_dir).map_err(|source| ControllerError::Io {
                what: format!("cannot create data dir {}", options.data_dir.display()),
                source,
            })?;
            format!("sqlite://{}", options.data_dir.join("weft.db").display())
        }
    };
    let channel = weft_channels::open(&url, ChannelOptions::default())
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
    let app = dataplane
        .router()
        .merge(status::router(board.clone(), dataplane.clone()));

    let mut source = FolderSource::new(&options.manifests)?;
    let mut reconciler = Reconciler::new(dataplane.clone(), board.clone());
    let closing = dataplane.clone();
    let control = async move {
        let mut first = true;
        while let Some(desired) = source.next().await {
            reconciler.reconcile(&desired).await;
            if first {
                first = false;
                dataplane.set_ready(true);
                tracing::info!(addr = %local, channel = %url, manifests = %options.manifests.display(), "weft is up");
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
