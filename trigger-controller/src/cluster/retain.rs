//! On Kubernetes, the same rule as `weft up` for storage that holds events: a Broker or
//! Trigger deleted while its log or cursor still holds undelivered events keeps its
//! finalizer, and so its storage, for a grace period counted from its
//! `deletionTimestamp`, as a PersistentVolumeClaim in use waits for its pod. Annotating
//! it `weft.dev/purge: "true"` deletes the storage at once; so does the end of the grace
//! period (both deliberate, and logged as such).

use std::time::Duration;

use crate::readiness::{Readiness, Reason};
use crate::reconcile::retained::retained_message;
use chrono::{DateTime, Utc};
use kube::Resource;
use weft_channels::Channel;
use weft_config::ObjectKey;

/// The annotation that deletes a deleted object's storage without waiting.
pub const PURGE_ANNOTATION: &str = "weft.dev/purge";

/// The most a held object waits before its backlog is looked at again.
const RECHECK: Duration = Duration::from_secs(10);

/// How long to wait before deleting the storage of an object deleted at `deleted_at`;
/// `None` to delete it now. `backlog` is what the storage holds (`None`: unknown, so
/// assumed not empty).
pub fn hold_for(
    deleted_at: DateTime<Utc>,
    now: DateTime<Utc>,
    backlog: Option<u64>,
    purge: bool,
    grace: Duration,
) -> Option<Duration> {
    if purge || backlog == Some(0) {
        return None;
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let left = (deleted_at + grace - now).to_std().ok()?;
    (!left.is_zero()).then(|| left.min(RECHECK))
}

/// What a deleted object's storage holds: a cursor's backlog, or for a log the backlog of
/// every cursor on it. `None` when the channel cannot tell.
pub async fn backlog(
    channel: &dyn Channel,
    broker: &ObjectKey,
    trigger: Option<&ObjectKey>,
) -> Option<u64> {
    match trigger {
        Some(trigger) => channel.backlog(broker, trigger).await.ok(),
        None => {
            let mut total = 0;
            for sub in channel.subscriptions(broker).await.ok()? {
                total += channel.backlog(broker, &sub).await.ok()?;
            }
            Some(total)
        }
    }
}

/// A deleted object whose storage is kept: when to look again, and the `Ready` condition
/// it shows meanwhile (reason `Retained`, as `weft get` shows it standalone).
pub struct Held {
    /// When to look at its backlog again.
    pub wait: Duration,
    /// `Ready=False` with reason `Retained`.
    pub readiness: Readiness,
}

/// How long the deleted `object` keeps its storage, given its backlog; `None` to delete it
/// now. Logs why it waits, or why it deletes events.
pub fn hold(
    object: &impl Resource,
    what: &str,
    backlog: Option<u64>,
    grace: Duration,
) -> Option<Held> {
    let meta = object.meta();
    let purge = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(PURGE_ANNOTATION))
        .is_some_and(|v| v == "true");
    let deleted_at = meta
        .deletion_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond() as u32))
        .unwrap_or_else(Utc::now);
    let wait = hold_for(deleted_at, Utc::now(), backlog, purge, grace);
    let until = deleted_at + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    match (wait, backlog) {
        (Some(_), _) => tracing::warn!(
            storage = what,
            backlog,
            %until,
            "deleted while events wait: its storage is retained (annotate {PURGE_ANNOTATION}=true to delete it now)"
        ),
        (None, Some(0)) => {}
        (None, _) if purge => {
            tracing::warn!(
                storage = what,
                backlog,
                "purged on request: deleting its storage and the events it holds"
            )
        }
        (None, _) => tracing::warn!(
            storage = what,
            backlog,
            "the grace period of a deleted object ended: deleting its storage and the events it holds"
        ),
    }
    let purge = format!("annotate {PURGE_ANNOTATION}=true");
    let message = retained_message(backlog.unwrap_or(0), what, until, &purge);
    wait.map(|wait| Held {
        wait,
        readiness: Readiness::only_ready(Reason::Retained, message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn storage_waits_only_while_it_holds_events_within_the_grace_period() {
        let deleted = Utc::now();
        let later = |secs| deleted + chrono::Duration::seconds(secs);
        assert_eq!(hold_for(deleted, later(5), Some(0), false, HOUR), None);
        assert_eq!(
            hold_for(deleted, later(5), Some(3), false, HOUR),
            Some(RECHECK)
        );
        assert_eq!(
            hold_for(deleted, later(5), None, false, HOUR),
            Some(RECHECK),
            "unknown counts as waiting"
        );
        assert_eq!(
            hold_for(deleted, later(3595), Some(3), false, HOUR),
            Some(Duration::from_secs(5))
        );
        assert_eq!(hold_for(deleted, later(3600), Some(3), false, HOUR), None);
        assert_eq!(
            hold_for(deleted, later(5), Some(3), true, HOUR),
            None,
            "purge"
        );
    }
}
