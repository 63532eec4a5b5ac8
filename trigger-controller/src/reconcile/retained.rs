//! Storage kept after its object left the desired state: a deleted broker's log or a
//! deleted trigger's cursor that still holds undelivered events.
//!
//! Deleting storage that holds events is a deliberate act. When an object leaves valid
//! manifests with events waiting, its storage is kept for a grace period (`weft up
//! --retain-deleted`), shown by `weft get` as `Retained` with its backlog, and deleted when
//! the period ends or on an explicit `weft purge`. An object that comes back in time picks
//! its log or cursor up again, with every event it held.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;
use weft_config::ObjectKey;

/// A piece of storage an object owned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stored {
    /// A broker's log (with every cursor on it).
    Log(ObjectKey),
    /// A trigger's cursor on a broker's log.
    Cursor {
        /// The trigger.
        trigger: ObjectKey,
        /// The broker whose log the cursor is on.
        broker: ObjectKey,
    },
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::Log(broker) => write!(f, "the log of broker {broker}"),
            Stored::Cursor { trigger, broker } => {
                write!(f, "the cursor of trigger {trigger} on broker {broker}")
            }
        }
    }
}

/// Why storage is kept, and until when.
#[derive(Clone, Debug)]
pub struct Retention {
    /// Undelivered events it held when it was kept.
    pub backlog: u64,
    /// When it is deleted unless its object comes back.
    pub until: Instant,
    /// The same moment on the wall clock, for people.
    pub until_wall: chrono::DateTime<chrono::Utc>,
}

impl Retention {
    /// Kept for `grace` from now.
    pub fn new(backlog: u64, grace: Duration) -> Self {
        Retention {
            backlog,
            until: Instant::now() + grace,
            until_wall: chrono::Utc::now()
                + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// The status message of the object that owned `stored`.
    pub fn message(&self, stored: &Stored) -> String {
        let (what, kind, key) = match stored {
            Stored::Log(broker) => ("its log", "broker", broker),
            Stored::Cursor { trigger, .. } => ("its cursor", "trigger", trigger),
        };
        let purge = format!("restore the manifest to resume, or `weft purge {kind} {key}`");
        retained_message(self.backlog, what, self.until_wall, &purge)
    }
}

/// The message of the `Retained` reason, the same on both control planes: `purge` says how
/// to delete the storage sooner.
pub fn retained_message(
    backlog: u64,
    what: &str,
    until: chrono::DateTime<chrono::Utc>,
    purge: &str,
) -> String {
    format!(
        "deleted while {backlog} events waited; {what} is kept until {} ({purge} to delete \
         it now)",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Everything kept, by what it is.
pub type RetainedStorage = BTreeMap<Stored, Retention>;
