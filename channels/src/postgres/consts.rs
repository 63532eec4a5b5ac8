//! The constants the backend's modules share: its metrics label, the `LISTEN/NOTIFY`
//! channel and its payloads, and the size of its pools.

/// The backend label of this crate's metrics.
pub(super) const BACKEND: &str = "postgres";
/// The `LISTEN/NOTIFY` channel; payloads are `<schema>:<broker id>` followed by
/// [`NOTIFY_NEW`] or [`NOTIFY_TAKEOVER`].
pub(super) const NOTIFY_CHANNEL: &str = "weft_events";
/// The payload's end when a log has new events (or was deleted).
pub(super) const NOTIFY_NEW: &str = "";
/// The payload's end when a lease of the log was released.
pub(super) const NOTIFY_TAKEOVER: &str = "!";
/// Connections in each of the two pools (see `Shared::pool` and
/// `Shared::bookkeeping`).
pub(super) const POOL_SIZE: u32 = 16;
