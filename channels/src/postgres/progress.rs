//! What consumers tell the keeper, and what the channel asks of it: a lease's progress,
//! the leases of a consumer that ended, flushes and the close. Below both `consumer` and
//! `keeper`, so that neither needs the other's types for their messages.

use tokio::sync::oneshot;
use weft_config::ObjectKey;

use crate::ChannelError;

/// A lease's progress as the keeper writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Progress {
    pub(super) id: i64,
    pub(super) epoch: i64,
    /// Every event of the lease below this is done; above `hi`, the lease is finished.
    pub(super) lo: i64,
    /// Give the lease up for another consumer.
    pub(super) release: bool,
}

/// What the keeper is asked to do.
pub(super) enum Message {
    /// A consumer ended: write its progress and give its leases up.
    Release(Release),
    /// Write progress now.
    Flush(oneshot::Sender<Result<(), ChannelError>>),
    /// Write progress and apply retention now.
    Compact(oneshot::Sender<Result<(), ChannelError>>),
    /// Write progress, release every lease still held, and stop.
    Close(oneshot::Sender<()>),
}

/// The leases of a consumer that ended, with its last progress.
pub(super) struct Release {
    pub(super) broker_id: i64,
    pub(super) trigger: ObjectKey,
    pub(super) leases: Vec<Progress>,
}
