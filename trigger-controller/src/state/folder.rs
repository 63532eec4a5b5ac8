//! Desired state from a file or folder of YAML manifests, reloaded when it changes.
//!
//! File-system notifications trigger a reload after a short quiet period (editors write
//! files in several steps). A periodic look at the files' sizes and modification times
//! backs them up on file systems that do not deliver notifications; it re-reads the
//! manifests only when that [`Fingerprint`] changed, so an idle instance with a thousand
//! objects does not parse them every few seconds. A snapshot is only yielded when its
//! content changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use weft_config::manifest::{Fingerprint, fingerprint, load_path};

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
}

impl FolderSource {
    /// Starts watching `path` (a file or a folder).
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, ControllerError> {
        let path = path.into();
        let (tx, changes) = mpsc::channel(1);
        let watch_error = |source| ControllerError::Watch {
            path: path.clone(),
            source,
        };
        let mut watcher = notify::recommended_watcher(move |_event| {
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
        })
    }

    /// Reads the manifests, and the fingerprint of the files just before.
    async fn load(&mut self) -> Manifests {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || (fingerprint(&path), load_path(&path)));
        match read.await {
            Ok((stamp, manifests)) => {
                self.stamp = stamp;
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
            if self.last.as_ref() != Some(&loaded) {
                self.last = Some(loaded.clone());
                return Some(loaded);
            }
        }
    }
}
