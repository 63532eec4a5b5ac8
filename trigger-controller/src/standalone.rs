//! `weft up`: every role in one process, desired state from a folder of manifests, the
//! embedded SQLite channel by default.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// How long the storage of a deleted broker or trigger that still holds events is kept
    /// before it is deleted (`weft purge` deletes it sooner).
    pub retention: Duration,
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
    // Held until the process ends: a second `weft up` on the same file would deliver every
    // event twice and race the first for each append.
    let _lock = match sqlite_file(&channel) {
        Some(file) => Some(lock(&file)?),
        None => None,
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
        retention: options.retention,
    };
    serve(serve_options, source, shutdown).await
}

/// The database file of a `sqlite:` channel URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    weft_channels::sqlite::database_file(url).ok()
}

/// Takes the lock beside `database` (`weft.db.lock`), or fails saying who holds it.
fn lock(database: &Path) -> Result<File, ControllerError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let io_error = |source| ControllerError::Io {
        what: format!("cannot open the lock file {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_error)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ControllerError::InvalidArgument {
            what: "data dir",
            reason: format!(
                "{} is in use by another weft process (it holds {}); stop that one, or give \
                 this one another --data-dir",
                database.display(),
                path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_error(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("weft.db");
        let first = lock(&db).unwrap();
        let second = lock(&db).unwrap_err().to_string();
        assert!(
            second.contains("in use by another weft process"),
            "{second}"
        );
        drop(first);
        lock(&db).expect("free again once the first holder is gone");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite:///tmp/x/weft.db?synchronous=normal"),
            Some(PathBuf::from("/tmp/x/weft.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://.weft/weft.db"),
            Some(PathBuf::from(".weft/weft.db"))
        );
        assert_eq!(sqlite_file("postgres://h/db"), None);
        assert_eq!(sqlite_file("memory://"), None);
    }
}
