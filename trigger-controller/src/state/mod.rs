//! Desired state: the brokers and triggers that should exist, from wherever they are kept.
//!
//! A source yields a complete snapshot each time something changes; the reconciler works
//! out the difference. The folder source serves `weft up`; the Kubernetes source
//! (`cluster::source`, watching Broker and Trigger resources) serves `weft ingress` and
//! `weft dispatcher` behind the same trait.

mod folder;

use async_trait::async_trait;
pub use folder::FolderSource;
use url::Url;
pub use weft_config::manifest::Manifests;

/// A stream of desired-state snapshots.
#[async_trait]
pub trait StateSource: Send {
    /// The first snapshot at once, then one each time the desired state changes; `None`
    /// when the source has ended.
    async fn next(&mut self) -> Option<Manifests>;

    /// Tells the source the base URL this process's ingress answers on, once it listens and
    /// before the first snapshot, so that a `ref` to a Broker can resolve to that broker's
    /// address. Sources whose refs are resolved elsewhere ignore it.
    fn set_ingress_url(&mut self, _url: &Url) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_source_is_object_safe() {
        fn _f(_: &dyn super::StateSource) {}
    }
}
