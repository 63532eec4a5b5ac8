//! [`Log`]: a broker's log as this process knows it, its topic and partition count.

use std::sync::Arc;

/// A broker's log as this process knows it.
#[derive(Clone, Debug)]
pub(super) struct Log {
    pub(super) topic: Arc<str>,
    pub(super) partitions: i32,
}
