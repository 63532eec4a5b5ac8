//! `weft up`: every role in one process, desired state from a folder of manifests, the
//! embedded SQLite channel by default.

use std::future::Future;
use std::path::PathBuf;

use weft_broker::DataPlaneOptions;

use crate::ControllerError;
use crate::reconcile::Roles;
use crate::serve::{ServeOptions, serve};
use crate::state::FolderSource;

/// What `weft up` needs to run.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    /// The manifest file or folder to watch.
    pub manifests: PathBuf,
    /// Where the embedded channel keeps its file.
    pub data_dir: PathBuf,
    /// The listen address (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Where the admin API is served (`127.0.0.1:0` picks a free port).
    pub admin_addr: String,
    /// The channel URL; `None` means `sqlite://<data_dir>/weft.db`.
    pub channel: Option<String>,
    /// Data plane knobs.
    pub dataplane: DataPlaneOptions,
    /// At start, delete the logs and cursors no manifest owns even on a channel other than
    /// the embedded default (where that always happens). Off by default: a server may be
    /// shared with other installations, whose logs this one must not delete.
    pub collect_garbage: bool,
}

/// Runs until `shutdown` completes. Once the manifests are applied it prints
/// `weft admin on http://ADMIN_ADDR` and `weft listening on http://ADDR` on stdout.
pub async fn run(
    options: StandaloneOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let (channel, embedded) = match &options.channel {
        Some(url) => (
            url.clone(),
            url.starts_with("sqlite:") || url.starts_with("memory:"),
        ),
        None => {
            std::fs::create_dir_all(&options.data_dir).map_err(|source| ControllerError::Io {
                what: format!("cannot create data dir {}", options.data_dir.display()),
                source,
            })?;
            let url = format!("sqlite://{}", options.data_dir.join("weft.db").display());
            (url, true)
        }
    };
    let source = FolderSource::new(&options.manifests)?;
    let serve_options = ServeOptions {
        addr: options.addr,
        admin_addr: options.admin_addr,
        channel,
        roles: Roles {
            collect_at_start: embedded || options.collect_garbage,
            ..Roles::ALL
        },
        dataplane: options.dataplane,
        desired_state: options.manifests.display().to_string(),
        wait_for_channel: false,
    };
    serve(serve_options, source, shutdown).await
}
