//! Desired state from a file or folder of YAML manifests, reloaded when it changes.
//!
//! File-system notifications trigger a reload after a short quiet period (editors write
//! files in several steps). A periodic look at the files' sizes and modification times
//! backs them up on file systems that do not deliver notifications; it re-reads the
//! manifests only when that [`Fingerprint`] changed, so an idle instance with a thousand
//! objects does not parse them every few seconds. A snapshot is only yielded when its
//! content changed.
//!
//! A file or folder that cannot be read or parsed (a typo saved mid-edit, a wrong path, no
//! file descriptors left) changes nothing it held: the objects it held last time are carried
//! over, invalid with the reason ([`Manifests::carry_over`]), so the reconciler keeps their
//! storage and their last valid version. A root that cannot be read at start is an error.
//!
//! A `ref` to a Broker resolves to the ingress URL [`StateSource::set_ingress_url`] gave;
//! other refs to objects in the folder annotated with `weft.dev/url`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use url::Url;
use weft_config::manifest::{Fingerprint, fingerprint, load_path_with};

use super::{Manifests, StateSource};
use crate::ControllerError;

/// How long the folder must be quiet before a reload.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the files are looked at even without notifications.
const POLL: Duration = Duration::from_secs(2);

/// Watches a manifest file or folder.
pub struct FolderSource {
    path: PathBuf,
    changes: mpsc::Receiver<()>,
    /// Kept alive for as long as the source; dropping it stops notifications.
    _watcher: notify::RecommendedWatcher,
    last: Option<Manifests>,
    /// The files as they were when `last` was read.
    stamp: Fingerprint,
    /// How many times the manifests were read.
    loads: u64,
    /// The ingress's base URL, which a ref to a Broker resolves against.
    ingress: Option<Url>,
}

/// Whether a file-system event may have changed what the manifests say: not a read, nor
/// the access time a read updates.
fn changes_content(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))
    )
}

impl FolderSource {
    /// Starts watching `path` (a file or a folder). Fails if `path` cannot be read: a
    /// wrong path is a mistake to report, not an empty desired state.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, ControllerError> {
        let path = path.into();
        let readable = std::fs::metadata(&path).and_then(|meta| match meta.is_dir() {
            true => std::fs::read_dir(&path).map(drop),
            false => std::fs::File::open(&path).map(drop),
        });
        if let Err(source) = readable {
            return Err(ControllerError::Io {
                what: format!("cannot read the manifests at {}", path.display()),
                source,
            });
        }
        let (tx, changes) = mpsc::channel(1);
        let watch_error = |source| ControllerError::Watch {
            path: path.clone(),
            source,
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reading the files is an event too: reacting to it would reload forever. An
                // error may hide a change, so it reloads.
                if event.is_ok_and(|e| !changes_content(&e.kind)) {
                    return;
                }
                // A full channel already holds a pending reload; one is enough.
                let _ = tx.try_send(());
            })
            .map_err(watch_error)?;
        // Watch a file's folder rather than the file: editors replace files by renaming,
        // which ends a watch on the file itself.
        let (target, mode) = if path.is_dir() {
            (path.clone(), RecursiveMode::Recursive)
        } else {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (parent.to_path_buf(), RecursiveMode::NonRecursive)
        };
        watcher.watch(&target, mode).map_err(watch_error)?;
        Ok(FolderSource {
            path,
            changes,
            _watcher: watcher,
            last: None,
            stamp: Fingerprint::default(),
            loads: 0,
            ingress: None,
        })
    }

    /// Reads the manifests, and the fingerprint of the files just before.
    async fn load(&mut self) -> Manifests {
        self.loads += 1;
        let path = self.path.clone();
        let ingress = self.ingress.clone();
        let read = tokio::task::spawn_blocking(move || {
            (fingerprint(&path), load_path_with(&path, ingress.as_ref()))
        });
        match read.await {
            Ok((stamp, mut manifests)) => {
                self.stamp = stamp;
                if let Some(last) = &self.last {
                    manifests.carry_over(last);
                }
                manifests
            }
            // The loader does not panic on bad input; if it did, report nothing new.
            Err(_) => self.last.clone().unwrap_or_default(),
        }
    }

    /// Whether the files look different from when they were last read.
    async fn touched(&self) -> bool {
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || fingerprint(&path)).await {
            Ok(stamp) => stamp != self.stamp,
            Err(_) => true,
        }
    }
}

#[async_trait]
impl StateSource for FolderSource {
    fn set_ingress_url(&mut self, url: &Url) {
        self.ingress = Some(url.clone());
    }

    async fn next(&mut self) -> Option<Manifests> {
        if self.last.is_none() {
            let first = self.load().await;
            self.last = Some(first.clone());
            return Some(first);
        }
        loop {
            tokio::select! {
                change = self.changes.recv() => {
                    change?;
                    // Let a burst of writes settle.
                    while let Ok(Some(())) = tokio::time::timeout(SETTLE, self.changes.recv()).await {}
                }
                _ = tokio::time::sleep(POLL) => {
                    if !self.touched().await {
                        continue;
                    }
                }
            }
            let loaded = self.load().await;
            if !loaded.unread.is_empty() {
                // Try again soon: what could not be read (say, for want of file
                // descriptors) may be readable in a moment without touching the files.
                self.stamp = Fingerprint::default();
            }
            if self.last.as_ref() != Some(&loaded) {
                self.last = Some(loaded.clone());
                return Some(loaded);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const BROKER: &str = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\n";

    #[tokio::test]
    async fn reads_when_a_file_changes_and_not_because_it_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), BROKER).unwrap();
        let mut source = FolderSource::new(dir.path()).unwrap();
        let first = source.next().await.unwrap();
        assert_eq!(first.brokers.len(), 1);

        // Nothing changes: no snapshot, and the reads themselves cause no further reads.
        let quiet = tokio::time::timeout(Duration::from_millis(1500), source.next()).await;
        assert!(quiet.is_err(), "no snapshot while nothing changes");
        assert_eq!(
            source.loads, 1,
            "the folder was read again without a change"
        );

        let trigger = "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\n\
                       metadata: {name: t}\nspec: {broker: b, subscriber: {uri: http://x/}}\n";
        std::fs::write(dir.path().join("b.yaml"), format!("{BROKER}{trigger}")).unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("a snapshot after the change")
            .unwrap();
        assert_eq!(changed.triggers.len(), 1);
    }
}
